"""The Snowflake password, read at run time from AWS Secrets Manager.

The stack stores the ``SnowflakePassword`` parameter in the secret
``m7-etl/snowflake-<env>`` as ``{"password": "..."}``; a plain-string secret is accepted
too. The password is returned to the caller and never logged or put in a message.

This module must stay valid on Python 3.9 (the Glue job imports it).
"""

from __future__ import annotations

import json

from m7etl.exceptions import ConfigurationError

PASSWORD_KEY = "password"
TRANSIENT_CODES = {"ThrottlingException", "InternalServiceError", "ServiceUnavailable",
                   "RequestTimeout", "TooManyRequestsException"}


def default_secret_id(environment: str) -> str:
    """The secret the stack creates for an environment."""
    return f"m7-etl/snowflake-{environment}"


def _error(message: str, hint: str, retryable: bool = False) -> ConfigurationError:
    err = ConfigurationError(message, hint=hint)
    err.retryable = retryable
    return err


def parse_secret(secret_id: str, text: str) -> str:
    """The password in a secret's text: JSON ``{"password": ...}`` or the plain string."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None  # not JSON after all: a password that starts with "{"
        if isinstance(data, dict):
            password = data.get(PASSWORD_KEY)
            if not isinstance(password, str) or not password:
                keys = ", ".join(sorted(str(k) for k in data)) or "none"
                raise _error(
                    f"Secret {secret_id} is JSON without a non-empty '{PASSWORD_KEY}' key "
                    f"(keys found: {keys}).",
                    hint='Store {"password": "<Snowflake password>"} in it (redeploy the stack '
                         "with SnowflakePassword, or put-secret-value).")
            return password
    if not text:
        raise _error(f"Secret {secret_id} is empty.",
                     hint="Store the Snowflake password in it (redeploy the stack with "
                          "SnowflakePassword, or put-secret-value).")
    return text


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
        code = str(exc.response.get("Error", {}).get("Code", ""))
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
                     retryable=code in TRANSIENT_CODES) from None
    except BotoCoreError as exc:
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
