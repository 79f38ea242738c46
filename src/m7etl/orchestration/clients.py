"""The S3 client of one execution environment, created on first use, and storage over it.

A Lambda execution environment serves many invocations: the client (from
:func:`m7etl.storage.aws.client`, the one place that makes boto3 clients) is made on the
first call that needs it, not at import, and reused after.
"""

from __future__ import annotations

from typing import Any

from m7etl.storage import S3Storage

_clients: dict[str, Any] = {}


def s3_client():
    """One S3 client per execution environment, created on first use (not at import)."""
    if "s3" not in _clients:
        from m7etl.storage.aws import client

        _clients["s3"] = client("s3")
    return _clients["s3"]


def storage(bucket: str) -> S3Storage:
    return S3Storage(bucket, client=s3_client())


def reset() -> None:
    """Forget the cached clients (as a new execution environment would); for tests."""
    _clients.clear()
