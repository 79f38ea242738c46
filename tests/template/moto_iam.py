"""moto's IAM enforcement, completed where moto 5.1.10 authorizes differently from AWS.

With ``INITIAL_NO_AUTH_ACTION_COUNT`` reached, moto checks each request's signature and the
caller's identity policies (``moto/iam/access_control.py``): an action is allowed when an
Allow statement matches it by ``Action`` and ``Resource`` and no Deny does. What it does not
do, read in its source, and what :func:`aws_like_authorization` adds (AWS's rule cited):

* **Conditions.** For identity policies moto passes no request context, and its condition
  code knows only ``StringEquals``: every ``Condition`` holds. Added: ``s3:prefix``
  (``StringLike``/``StringEquals``), from the request's ``prefix``; a condition on it holds
  only when the request has one. Other condition keys are still ignored (the template's
  ``kms:ViaService``, ``cloudwatch:namespace``, ``aws:SourceAccount`` are never reached here).
* **DeleteObjects** (``POST ?delete``) is checked once, as ``s3:DeleteObject`` on the
  *bucket* ARN, so an object-scoped grant denies every key. AWS checks ``s3:DeleteObject``
  per key and reports each refused key in ``Errors`` (AccessDenied). Added: that.
* **CopyObject** checks only ``s3:PutObject`` on the destination. AWS also needs
  ``s3:GetObject`` on the source, and when the source has tags (the default
  ``x-amz-tagging-directive: COPY`` copies them) ``s3:GetObjectTagging`` on the source and
  ``s3:PutObjectTagging`` on the destination. Added: those three.
* **A missing key** answers 404 to anyone allowed ``s3:GetObject``. AWS answers 404 only
  to a caller also allowed ``s3:ListBucket`` (with the key as ``s3:prefix``, as Ceph's
  rgw reproduces it, ceph/ceph#68577), else 403. Added: that, for HEAD and GET.
* **Secrets Manager** authorizes every call against ``Resource: "*"``, so a grant on the
  secret's ARN never matches. Added: the secret's ARN as the resource.

Not modelled at all: KMS (``kms:Decrypt`` of the secret or of an SSE-KMS object), bucket
policies (the per-key DeleteObjects above checks identity policies only), permission
boundaries and SCPs, ``s3:AbortMultipartUpload`` (a multipart upload that fails), the
``s3:delimiter``/``s3:max-keys`` keys, ``NotAction``/``NotResource`` beyond moto's own, and
every other service's resource matching.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Iterator
from unittest import mock
from urllib.parse import parse_qs, unquote, urlparse

from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.s3.exceptions import MissingKey
from moto.s3.responses import S3_DELETE_KEYS_RESPONSE, S3Response
from moto.secretsmanager.responses import SecretsManagerResponse

# The request context keys this module supplies (moto supplies none for identity policies).
_CONTEXT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("m7_iam_context",
                                                                      default=None)
SUPPLIED_KEYS = {"s3:prefix"}
_ORIGINAL = {
    "statement": IAMPolicyStatement.is_action_permitted,
    "authorize": S3Response._authenticate_and_authorize_s3_action,
    "head": S3Response.head_object,
    "get": S3Response._key_response_get,
    "copy": S3Response.copy_object,
}


def iam_like(pattern: str, value: str) -> bool:
    """IAM's ``StringLike``: ``*`` any run of characters (``/`` included), ``?`` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in SUPPLIED_KEYS:
                continue  # as moto: not evaluated
            value = context.get(key)
            if value is None:
                return False  # AWS: a condition on a key the request lacks does not hold
            patterns = expected if isinstance(expected, list) else [expected]
            if operator == "StringLike":
                ok = any(iam_like(p, value) for p in patterns)
            elif operator == "StringEquals":
                ok = value in patterns
            else:
                raise NotImplementedError(f"{operator} on {key}: not emulated, extend moto_iam")
            if not ok:
                return False
    return True


def _statement_permits(self, action, resource="*", principal=None,
                       incoming_condition_values=None):
    context = _CONTEXT.get()
    condition = self._statement.get("Condition")
    if (context is not None and condition and incoming_condition_values is None
            and not _condition_holds(condition, context)):
        return PermissionResult.NEUTRAL  # the statement does not apply
    return _ORIGINAL["statement"](self, action, resource, principal, incoming_condition_values)


def _authorize(self, bucket_name=None, key_name=None):
    """Every S3 authorization, with ``s3:prefix`` in the context of a ListBucket."""
    context = {}
    if self.data.get("Action") == "ListBucket":
        prefix = parse_qs(urlparse(self.uri).query, keep_blank_values=True).get("prefix")
        if prefix is not None:
            context["s3:prefix"] = prefix[0]
    token = _CONTEXT.set(context)
    try:
        _ORIGINAL["authorize"](self, bucket_name=bucket_name, key_name=key_name)
    finally:
        _CONTEXT.reset(token)


def _authorize_as(response, action: str, bucket: str, key: str | None = None,
                  context: dict | None = None) -> None:
    saved = response.data.get("Action")
    response.data["Action"] = action
    token = _CONTEXT.set(context or {})
    try:
        _ORIGINAL["authorize"](response, bucket_name=bucket, key_name=key)
    finally:
        _CONTEXT.reset(token)
        response.data["Action"] = saved


def _missing_needs_list(response, bucket: str, key: str) -> None:
    _authorize_as(response, "ListBucket", bucket, context={"s3:prefix": key})


def _head_object(self, bucket_name, query, key_name, headers):
    answer = _ORIGINAL["head"](self, bucket_name, query, key_name, headers)
    if answer[0] == 404:
        _missing_needs_list(self, bucket_name, key_name)
    return answer


def _key_response_get(self, query, key_name):
    try:
        return _ORIGINAL["get"](self, query, key_name)
    except MissingKey:
        _missing_needs_list(self, self.bucket_name, key_name)
        raise


def _copy_object(self):
    source = self.headers.get("x-amz-copy-source")
    source = source.decode() if isinstance(source, bytes) else source
    src_bucket, src_key = unquote(urlparse(source).path).lstrip("/").split("/", 1)
    _authorize_as(self, "GetObject", src_bucket, src_key)
    key = self.backend.get_object(src_bucket, src_key)
    directive = self.headers.get("x-amz-tagging-directive", "COPY")
    if key is not None and directive == "COPY" and self.backend.get_object_tagging(key)["Tags"]:
        _authorize_as(self, "GetObjectTagging", src_bucket, src_key)
        _authorize_as(self, "PutObjectTagging", self.bucket_name, self.parse_key_name())
    return _ORIGINAL["copy"](self)


def _delete_keys(self, bucket_name, authenticated=True):
    """DeleteObjects, authorized key by key (``authenticated`` is moto's bucket-level
    verdict, replaced here by the per-key one)."""
    import xmltodict
    from moto.s3.exceptions import MalformedXML

    body = xmltodict.parse(self.body, strip_whitespace=False)
    objects = body["Delete"].get("Object", [])
    objects = objects if isinstance(objects, list) else [objects]
    if not objects:
        raise MalformedXML()
    allowed, errors = [], []
    for obj in objects:
        try:
            _authorize_as(self, "DeleteObject", bucket_name, obj["Key"])
        except Exception as exc:  # moto's AccessDenied errors share no base but their code
            if getattr(exc, "code", None) != 403:
                raise
            errors.append((obj["Key"], "AccessDenied", "Access Denied"))
        else:
            allowed.append(obj)
    deleted, locked = self.backend.delete_objects(bucket_name, allowed, False) if allowed \
        else ([], [])
    errors += [(k, "AccessDenied", "Access Denied because object protected by object lock.")
               for k in locked]
    template = self.response_template(S3_DELETE_KEYS_RESPONSE)
    return 200, {}, template.render(deleted=deleted, delete_errors=errors)


def _secret_arn(self) -> str:
    secret_id = json.loads(self.body or "{}").get("SecretId")
    if not secret_id:
        return "*"
    secret = self.backend.secrets.get(secret_id)
    if secret is None:
        return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{secret_id}"
    return secret.arn


@contextlib.contextmanager
def aws_like_authorization() -> Iterator[None]:
    """Apply the additions above (to moto in this process) for the duration."""
    patches = [
        mock.patch.object(IAMPolicyStatement, "is_action_permitted", _statement_permits),
        mock.patch.object(S3Response, "_authenticate_and_authorize_s3_action", _authorize),
        mock.patch.object(S3Response, "head_object", _head_object),
        mock.patch.object(S3Response, "_key_response_get", _key_response_get),
        mock.patch.object(S3Response, "copy_object", _copy_object),
        mock.patch.object(S3Response, "_bucket_response_delete_keys", _delete_keys),
        mock.patch.object(SecretsManagerResponse, "_determine_resource", _secret_arn,
                          create=True),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield
