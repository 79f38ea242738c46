"""One classification of AWS and storage errors: what kind of failure, and can a retry help.

Every place that turns an AWS error into its own message (S3 storage, the upload, the change
set, doctor, the MWAA client) takes the category from :func:`classify`, so "throttled" or
"transient" means the same everywhere and nobody matches message text. A category is a plain
string; :data:`RETRYABLE` holds the two a later attempt can get past.

botocore is imported only when an exception is classified: importing this module costs
nothing to code that never talks to AWS. Python 3.9-clean (the Glue job).
"""

from __future__ import annotations

import errno

TRANSIENT = "transient"  # a timeout, a reset connection, a 5xx, a failing disk: try again
THROTTLED = "throttled"  # the service asks the caller to slow down: try again later
DENIED = "access_denied"
NOT_FOUND = "not_found"
EXPIRED = "expired_credentials"
BAD_CREDENTIALS = "bad_credentials"
OTHER = "other"
RETRYABLE = frozenset({TRANSIENT, THROTTLED})

THROTTLED_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "TooManyRequestsException", "RequestThrottled", "RequestThrottledException",
    "ProvisionedThroughputExceededException", "BandwidthLimitExceeded", "EC2ThrottledException",
    "PriorRequestNotComplete", "429",
})
TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure",
    "InternalServerError", "InternalServerException", "InternalServiceError",
    "InternalServiceException", "ServiceUnavailable", "ServiceUnavailableException",
    "ServiceException", "RequestTimeTooSkewed", "500", "502", "503", "504",
})
DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AllAccessDisabled",
    "Forbidden", "403",
})
NOT_FOUND_CODES = frozenset({
    "NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound", "ResourceNotFoundException", "404",
})
EXPIRED_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired",
})
BAD_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "InvalidClientTokenId", "InvalidToken", "SignatureDoesNotMatch",
    "UnrecognizedClientException",
})
_BY_CODE = ((THROTTLED_CODES, THROTTLED), (TRANSIENT_CODES, TRANSIENT), (DENIED_CODES, DENIED),
            (NOT_FOUND_CODES, NOT_FOUND), (EXPIRED_CODES, EXPIRED),
            (BAD_CREDENTIAL_CODES, BAD_CREDENTIALS))
# Socket and disk failures: the same call can work on another attempt (or another host).
_TRANSIENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ECONNRESET", "ECONNABORTED", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH",
    "ENETUNREACH", "ENETDOWN", "ENETRESET", "EAGAIN", "EINTR", "EIO", "ENOSPC", "EDQUOT",
    "EMFILE", "ENFILE", "ESTALE") if hasattr(errno, name))


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", "") or "")


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ``ClientError`` (maybe ``""``), else the exception's text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "") or "")
    return str(exc)


def classify_code(code: str, http_status: int | None = None) -> str:
    """The category of an AWS error code; an unknown code falls back on its HTTP status."""
    for codes, category in _BY_CODE:
        if code in codes:
            return category
    if http_status == 429:
        return THROTTLED
    if http_status is not None and 500 <= http_status <= 599:
        return TRANSIENT
    return OTHER


def classify(exc: BaseException) -> str:
    """The category of an exception raised while talking to AWS or to a storage.

    A ``ClientError`` by its code (then its HTTP status); botocore's connection errors
    (``ReadTimeoutError``, ``ConnectionClosedError``, ``EndpointConnectionError``,
    ``ResponseStreamingError``, ``IncompleteReadError``...) and socket or disk ``OSError``s
    are transient; ``PermissionError`` is access denied, ``FileNotFoundError`` not found.
    """
    code = error_code(exc)
    if code:
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        return classify_code(code, status if isinstance(status, int) else None)
    if isinstance(exc, _connection_errors()):
        return TRANSIENT
    if isinstance(exc, PermissionError):
        return DENIED
    if isinstance(exc, FileNotFoundError):
        return NOT_FOUND
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return TRANSIENT
    return OTHER


def is_retryable(exc: BaseException) -> bool:
    """A later attempt of the same call can succeed (transient or throttled)."""
    return classify(exc) in RETRYABLE


def _connection_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - botocore ships with boto3, a dependency
        pass
    else:
        # A body cut short or corrupted on the wire (its checksum fails) reads fine next time.
        found += [boto.HTTPClientError, boto.ConnectionError, boto.IncompleteReadError,
                  boto.ChecksumError, getattr(boto, "FlexibleChecksumError", boto.ChecksumError)]
    return tuple(found)
