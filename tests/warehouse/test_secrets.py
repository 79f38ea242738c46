"""The Snowflake password from Secrets Manager (moto), and the errors when it is not there.

moto does not enforce IAM (the job role's secretsmanager:GetSecretValue) nor the secret's
KMS key: the denied and decryption errors are stubbed with botocore's Stubber instead.
Whether the password then logs in is Snowflake's to say; fakesnow accepts any login.
"""

from __future__ import annotations

import json

import boto3
import pytest

from m7etl.exceptions import ConfigurationError
from m7etl.warehouse.secrets import default_secret_id, parse_secret, read_password
from warehouse.support import PASSWORD, SECRET_ID


def test_reads_the_json_secret_the_stack_writes(secrets_client):
    assert read_password(SECRET_ID, client=secrets_client) == PASSWORD


def test_default_client_reaches_the_same_secret(secrets_client):
    assert read_password(SECRET_ID) == PASSWORD  # m7etl.storage.aws.client, under moto


def test_a_plain_string_secret_is_refused_without_echoing_it(secrets_client):
    # The old reader returned the whole text as the password: the login failed, no clue why.
    secrets_client.create_secret(Name="plain", SecretString="just-the-password")
    with pytest.raises(ConfigurationError) as info:
        read_password("plain", client=secrets_client)
    assert info.value.message == (
        "Secret plain is not JSON (it does not parse at line 1 column 1); a JSON object with "
        "a 'password' key is expected.")
    assert 'Store {"password": "<Snowflake password>"} in it' in info.value.hint
    assert "just-the-password" not in str(info.value)
    assert not info.value.retryable


def test_accepts_a_binary_secret(secrets_client):
    secrets_client.create_secret(Name="bin", SecretBinary=json.dumps({"password": "b"}).encode())
    assert read_password("bin", client=secrets_client) == "b"


def test_missing_secret_is_a_clear_error(secrets_client):
    with pytest.raises(ConfigurationError) as info:
        read_password("m7-etl/snowflake-prod", client=secrets_client)
    assert info.value.message == (
        "Secret m7-etl/snowflake-prod does not exist (or has no current value).")
    assert "Deploy the stack" in info.value.hint
    assert "--snowflake_secret_id" in info.value.hint
    assert not info.value.retryable


def test_json_without_password_names_keys_not_values(secrets_client):
    secrets_client.create_secret(Name="nokey", SecretString=json.dumps({"pwd": "hidden-value"}))
    with pytest.raises(ConfigurationError, match="without a non-empty 'password' key") as info:
        read_password("nokey", client=secrets_client)
    assert "keys found: pwd" in str(info.value)
    assert "hidden-value" not in str(info.value)


def test_empty_secret_id_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="--snowflake_secret_id is empty"):
        read_password("")


def test_access_denied_says_which_permission(aws_env):
    from botocore.stub import Stubber

    client = boto3.client("secretsmanager", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code="AccessDeniedException")
        with pytest.raises(ConfigurationError, match="Not allowed to read secret s") as info:
            read_password("s", client=client)
    assert "secretsmanager:GetSecretValue" in info.value.hint


def test_no_credentials_is_not_retryable(aws_env, monkeypatch):
    import botocore.session

    session = botocore.session.Session()
    monkeypatch.setattr(session, "get_credentials", lambda: None)  # a role-less job
    client = session.create_client("secretsmanager", region_name="eu-west-1")
    with pytest.raises(ConfigurationError) as info:
        read_password("s", client=client)
    assert info.value.message == "Cannot call Secrets Manager to read s (NoCredentialsError)."
    assert not info.value.retryable  # the old reader called every BotoCoreError retryable


def test_throttling_is_retryable(aws_env):
    from botocore.stub import Stubber

    client = boto3.client("secretsmanager", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code="ThrottlingException")
        with pytest.raises(ConfigurationError) as info:
            read_password("s", client=client)
    assert info.value.retryable


def test_parse_secret_reads_the_password_key():
    assert parse_secret("s", '{"password": "p w"}') == "p w"
    assert parse_secret("s", ' {"password": "{x\\"y", "user": "u"}\n') == '{x"y'


@pytest.mark.parametrize(("text", "problem"), [
    ('{"password": "s3cr3t-Pa55word!"', "is not JSON (it does not parse at line 1 column 32)"),
    ("{s3cr3t-Pa55word!", "is not JSON (it does not parse at line 1 column 2)"),
    ('"s3cr3t-Pa55word!"', "is a JSON string, not an object with a 'password' key"),
    ("12345", "is a JSON number, not an object with a 'password' key"),
    ('["s3cr3t-Pa55word!"]', "is a JSON array, not an object with a 'password' key"),
    ('{"Password": "s3cr3t-Pa55word!", "user": "u"}',
     "is JSON without a non-empty 'password' key (keys found: Password, user)"),
    ('{"password": ""}', "is JSON without a non-empty 'password' key (keys found: password)"),
    ('{"password": 12345}', "is JSON without a non-empty 'password' key (keys found: password)"),
    ("   ", "is empty"),
])
def test_a_secret_not_in_the_expected_form_is_a_clear_error(text, problem):
    # Each of these was returned as the password before (bar the missing key and empty).
    with pytest.raises(ConfigurationError) as info:
        parse_secret("m7-etl/snowflake-test", text)
    assert info.value.message.startswith(f"Secret m7-etl/snowflake-test {problem}")
    assert "s3cr3t" not in str(info.value) and "12345" not in str(info.value)


def test_default_secret_id_is_the_stacks():
    assert default_secret_id("test") == "m7-etl/snowflake-test"
