"""The Snowflake password from Secrets Manager (moto), and the errors when it is not there."""

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


def test_accepts_a_plain_string_secret(secrets_client):
    secrets_client.create_secret(Name="plain", SecretString="just-the-password")
    assert read_password("plain", client=secrets_client) == "just-the-password"


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


def test_throttling_is_retryable(aws_env):
    from botocore.stub import Stubber

    client = boto3.client("secretsmanager", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code="ThrottlingException")
        with pytest.raises(ConfigurationError) as info:
            read_password("s", client=client)
    assert info.value.retryable


@pytest.mark.parametrize(("text", "expected"), [
    ('{"password": "p"}', "p"),
    ("{not json", "{not json"),
    ("  spaced  ", "  spaced  "),
])
def test_parse_secret(text, expected):
    assert parse_secret("s", text) == expected


def test_default_secret_id_is_the_stacks():
    assert default_secret_id("test") == "m7-etl/snowflake-test"
