"""m7etl.toml: the guide's names by default, [default] then [<env>] then flags, and one
clear error per bad file naming the file, the key and the fix."""

from __future__ import annotations

import pytest

from m7etl.deploy.config import find_config, load_env
from m7etl.exceptions import ConfigurationError


def write(tmp_path, text: str):
    path = tmp_path / "m7etl.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_file_the_guides_names_are_used():
    config = load_env("test", search=False)
    assert (config.data_bucket, config.code_bucket, config.stack_name, config.mwaa_environment) == (
        "m7-etl-data-solocco-test", "m7-solocco-code-repository-test", "m7-etl-pipeline-mwaa",
        "m7-etl-mwaa-test")
    assert config.variables == {"environment": "test", "max_days_back": 3, "error_threshold": 5.0,
                                "warning_threshold": 10.0}
    assert load_env("prod", search=False).data_bucket == "m7-etl-data-solocco-prod"


def test_default_table_then_env_table_then_flags(tmp_path):
    path = write(tmp_path, """
[default]
region = "eu-west-3"
profile = "shared"

[default.variables]
max_days_back = 5

[test]
profile = "m7-test"
code_bucket = "my-code-bucket"

[test.parameters]
EnvironmentClass = "mw1.medium"
MwaaMaxWorkers = 4

[test.snowflake]
account = "xy12345.eu-west-1"
""")
    config = load_env("test", path)
    assert (config.region, config.profile, config.code_bucket) == ("eu-west-3", "m7-test", "my-code-bucket")
    assert config.data_bucket == "m7-etl-data-solocco-test"  # not overridden
    assert config.variables["max_days_back"] == 5 and config.variables["error_threshold"] == 5.0
    assert config.parameters == {"EnvironmentClass": "mw1.medium", "MwaaMaxWorkers": "4"}
    params = config.stack_parameters()
    assert params["SnowflakeAccount"] == "xy12345.eu-west-1" and params["SnowflakeUser"] == "M7_ETL_LOADER"
    assert params["CodeBucketName"] == "my-code-bucket" and params["Environment"] == "test"
    flagged = config.with_flags(region="us-east-1", profile=None)
    assert (flagged.region, flagged.profile) == ("us-east-1", "m7-test")
    assert load_env("prod", path).profile == "shared"


def test_the_file_is_found_in_a_parent_folder(tmp_path, monkeypatch):
    path = write(tmp_path, "[test]\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.delenv("M7ETL_CONFIG", raising=False)
    assert find_config(tmp_path / "a" / "b") == path


@pytest.mark.parametrize(("text", "message"), [
    ("[test]\nregoin = 'x'\n",
     "key 'regoin' in [test] is not a setting. Did you mean 'region'?"),
    ("[test]\nregion = 3\n",
     "key 'test.region' must be a string, got int 3. Write it as region = \"...\""),
    ("[test.snowflake]\npassword = 'hunter2'\n",
     "key 'test.snowflake.password' holds a secret. Remove it; set $M7_SNOWFLAKE_PASSWORD"),
    ("[test.parameters]\nSnowflakePassword = 'hunter2'\n",
     "key 'test.parameters.SnowflakePassword' holds a secret."),
    ("[test.snowflake]\naccout = 'x'\n",
     "key 'test.snowflake.accout' is not a Snowflake setting."),
    ("[test]\ncode_bucket = 'Bad_Bucket'\n",
     "key 'test.code_bucket' = 'Bad_Bucket' is not a valid name. Use a name like "
     "'m7-solocco-code-repository-test'."),
    ("region = 'eu-west-1'\n",
     "top-level key 'region' is not a table. Put settings under an environment table"),
    ("[test\nregion = 'x'\n", "is not valid TOML"),
    ("[test.endpoints]\nmwaa = '127.0.0.1:5000'\n",
     "key 'test.endpoints.mwaa' must be an http(s) URL, got str '127.0.0.1:5000'."),
])
def test_a_bad_file_is_one_error_naming_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load_env("test", path)
    assert str(info.value).startswith(f"{path}") or "is not valid TOML" in message
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_bad_environment_name_says_what_is_allowed():
    with pytest.raises(ConfigurationError, match=r"Environment name 'Prod_1' is not valid\. Use "
                                                 r"lower-case letters"):
        load_env("Prod_1", search=False)


def test_a_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_env("test", tmp_path / "nope.toml")
