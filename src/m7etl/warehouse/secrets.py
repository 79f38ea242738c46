"""The Snowflake password, read at run time from AWS Secrets Manager.

The stack stores the ``SnowflakePassword`` parameter in the secret
``m7-etl/snowflake-<env>`` as ``{"password": "..."}``, and that is the only form read: a
plain string, broken JSON or JSON without the key is an error naming the secret and what
it holds (the keys, never a value), not a password that fails the login with no clue. The
password is returned to the caller and never logged or put in a message.

AWS errors are sorted by the one classification in :mod:`m7etl.storage.errors`.

This module must stay valid on Python 3.9 (the Glue job imports it).
"""

from __future__ import annotations

import json

from m7etl.exceptions import ConfigurationError
from m7etl.storage import errors

PASSWORD_KEY = "password"
JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
              type(None): "null"}
STORE_HINT = ('Store {"password": "<Snowflake password>"} in it (redeploy the stack with '
              "SnowflakePassword, or aws secretsmanager put-secret-value --secret-id <id> "
              "--secret-string file://secret.json).")


def default_secret_id(environment: str) -> str:
    """The secret the stack creates for an environment."""
    return f"m7-etl/snowflake-{environment}"


def _error(message: str, hint: str, retryable: bool = False) -> ConfigurationError:
    err = ConfigurationError(message, hint=hint)
    err.retryable = retryable
    return err


def parse_secret(secret_id: str, text: str) -> str:
    """The password in a secret's text, which must be the JSON object ``{"password": ...}``."""
    if not text.strip():
        raise _error(f"Secret {secret_id} is empty.", hint=STORE_HINT)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # its position only: the text may be the password
        raise _error(f"Secret {secret_id} is not JSON (it does not parse at line {exc.lineno} "
                     f"column {exc.colno}); a JSON object with a '{PASSWORD_KEY}' key is "
                     "expected.", hint=STORE_HINT) from None
    if not isinstance(data, dict):
        kind = JSON_KINDS.get(type(data), type(data).__name__)
        raise _error(f"Secret {secret_id} is a JSON {kind}, not an object with a "
                     f"'{PASSWORD_KEY}' key.", hint=STORE_HINT)
    password = data.get(PASSWORD_KEY)
    if not isinstance(password, str) or not password:
        keys = ", ".join(sorted(str(k) for k in data)) or "none"
        raise _error(f"Secret {secret_id} is JSON without a non-empty '{PASSWORD_KEY}' key "
                     f"(keys found: {keys}).", hint=STORE_HINT)
    return password


def read_password(secret_id: str, *, client=None) -> str:
    """Read the Snowflake password from Secrets Manager; errors name the secret and next step."""
    if not secret_id:
        raise _error("No Snowflake secret is configured (--snowflake_secret_id is empty).",
                     hint="Pass --snowflake_secret_id m7-etl/snowflake-<env> (the stack's secret).")
    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        from m7etl.storage.aws import client as make_client

        client = make_client("secretsmanager")
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = errors.error_code(exc)
        if code == "ResourceNotFoundException":
            raise _error(
                f"Secret {secret_id} does not exist (or has no current value).",
                hint="Deploy the stack (it stores SnowflakePassword in m7-etl/snowflake-<env>) "
                     "or pass the right --snowflake_secret_id.") from None
        if code in ("AccessDeniedException", "AccessDenied"):
            raise _error(
                f"Not allowed to read secret {secret_id}.",
                hint="Grant secretsmanager:GetSecretValue on it (and kms:Decrypt on its key) "
                     "to the Glue job's role.") from None
        if code in ("DecryptionFailure", "KMSAccessDeniedException"):
            raise _error(
                f"Secret {secret_id} cannot be decrypted ({code}).",
                hint="Grant kms:Decrypt on the secret's KMS key to the Glue job's role.") from None
        raise _error(f"Secrets Manager refused to read {secret_id}: {code}.",
                     hint="Retry; if it persists, check the secret in the console.",
                     retryable=errors.is_retryable(exc)) from None
    except BotoCoreError as exc:
        if not errors.is_retryable(exc):  # no credentials, no region...: a retry cannot help
            raise _error(f"Cannot call Secrets Manager to read {secret_id} "
                         f"({type(exc).__name__}).",
                         hint="Check the job role's credentials and the region.") from None
        raise _error(f"Cannot reach Secrets Manager to read {secret_id} ({type(exc).__name__}).",
                     hint="Check the job's network (VPC endpoint or NAT), region and credentials.",
                     retryable=True) from None
    text = response.get("SecretString")
    if text is None:
        binary = response.get("SecretBinary") or b""
        try:
            text = binary.decode("utf-8")
        except UnicodeDecodeError:
            raise _error(f"Secret {secret_id} holds binary data, not text.",
                         hint='Store {"password": "<Snowflake password>"} as its SecretString.'
                         ) from None
    return parse_secret(secret_id, text)
