"""``m7etl.toml``: one table per environment, the guide's names as defaults.

Like ``samconfig.toml``: the file lives in the repository, each environment is a table
(``[test]``, ``[prod]``), and ``[default]`` holds what every environment shares. Precedence,
lowest first: the built-in defaults (the guide's names for the environment), ``[default]``,
``[<env>]``, then the command-line flags. A file that cannot be used is one error naming
the file, the key and the fix. No secret lives here: the Snowflake password comes from
``$M7_SNOWFLAKE_PASSWORD`` or a hidden prompt.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from m7etl.exceptions import ConfigurationError

CONFIG_NAME = "m7etl.toml"
CONFIG_ENV = "M7ETL_CONFIG"
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")  # the template's Environment pattern
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
MWAA_NAME = re.compile(r"^[a-zA-Z][0-9a-zA-Z_-]{0,79}$")
PARAMETER_NAME = re.compile(r"^[A-Za-z0-9]{1,255}$")
DEFAULT_STACK = "m7-etl-pipeline-mwaa"
DEFAULT_DAG = "m7_etl_pipeline"
DEFAULT_REGION = "eu-west-1"
PASSWORD_ENV = "M7_SNOWFLAKE_PASSWORD"
# The passwords the stack can keep: its secret is JSON made by Fn::Sub, which cannot escape
# a double quote, a backslash or a control character. The same text is the template's
# SnowflakePassword AllowedPattern (a test compares them; Java and Python read it alike).
PASSWORD_PATTERN = r'^[^"\\\x00-\x1F\x7F-\x9F]+$'
SECRET_KEYS = {"password", "snowflakepassword", "snowflake_password", "secret", "token"}
# Snowflake settings -> the stack's parameters.
SNOWFLAKE_PARAMETERS = {"account": "SnowflakeAccount", "user": "SnowflakeUser",
                        "role": "SnowflakeRole", "warehouse": "SnowflakeWarehouse",
                        "database": "SnowflakeDatabase", "schema": "SnowflakeSchema",
                        "stage": "SnowflakeStage"}


@dataclass(frozen=True)
class SnowflakeTarget:
    """Where the Glue job loads (everything but the password). ``stage``: the external stage
    over gold/ (COPY INTO, the production path); empty = write_pandas (fakesnow, [local])."""

    account: str = ""
    user: str = "M7_ETL_LOADER"
    role: str = "M7_ETL_LOADER"
    warehouse: str = "M7_ETL_WH"
    database: str = "M7_ETL"
    schema: str = "GOLD"
    stage: str = "M7_GOLD_STAGE"

    def parameters(self) -> dict[str, str]:
        return {SNOWFLAKE_PARAMETERS[f.name]: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EnvConfig:
    """Everything a command needs to reach one environment."""

    name: str
    region: str = DEFAULT_REGION
    profile: str | None = None
    data_bucket: str = ""
    code_bucket: str = ""
    stack_name: str = DEFAULT_STACK
    mwaa_environment: str = ""
    dag_id: str = DEFAULT_DAG
    endpoint_url: str | None = None  # every service (a local stack); AWS_ENDPOINT_URL also works
    endpoints: dict[str, str] = field(default_factory=dict)  # per service: {"mwaa": "http://..."}
    parameters: dict[str, str] = field(default_factory=dict)  # CloudFormation overrides
    snowflake: SnowflakeTarget = field(default_factory=SnowflakeTarget)
    variables: dict[str, Any] = field(default_factory=dict)  # Airflow variables
    source: str = "(built-in defaults)"  # the file the values came from, for messages

    def with_flags(self, **flags: Any) -> EnvConfig:
        """A copy with the command-line flags that were given (None = not given)."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})

    def stack_parameters(self) -> dict[str, str]:
        """The parameters this environment sets on the stack (versions and password aside)."""
        params = {"Environment": self.name, "DataBucketName": self.data_bucket,
                  "CodeBucketName": self.code_bucket}
        params.update(self.snowflake.parameters())
        params.update(self.parameters)
        return params


def check_password(value: str, source: str, env: str) -> str:
    """``value`` when the stack can store it, else why not, naming ``source`` (never the value).

    Called before any AWS call: CloudFormation would refuse the value only at the change set,
    after the preflight and the upload, and a pattern alone cannot say which character."""
    text_ok = True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the environment (surrogateescape)
        text_ok = False
    if text_ok and re.fullmatch(PASSWORD_PATTERN, value):
        return value
    if not value:
        raise ConfigurationError(f"The Snowflake password from {source} is empty.",
                                 hint=f"Set ${PASSWORD_ENV} or answer the prompt with it.")
    found = [what for what, bad in (
        ('a double quote (")', '"' in value),
        ("a backslash (\\)", "\\" in value),
        ("a control character (a line break, a tab...)",
         any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)),
        ("bytes that are not UTF-8 text", not text_ok)) if bad]
    raise ConfigurationError(
        f"The Snowflake password from {source} holds {' and '.join(found)}: the stack keeps it "
        f"as JSON in the secret m7-etl/snowflake-{env}, and CloudFormation cannot escape that.",
        hint="Use a password without double quotes, backslashes or control characters (set it "
             "in Snowflake too: ALTER USER ... SET PASSWORD), then deploy again; nothing was "
             "sent to AWS.")


def defaults(env: str) -> dict[str, Any]:
    """The guide's names for ``env``: the values used when the file says nothing."""
    return {"data_bucket": f"m7-etl-data-solocco-{env}",
            "code_bucket": f"m7-solocco-code-repository-{env}",
            "stack_name": DEFAULT_STACK, "mwaa_environment": f"m7-etl-mwaa-{env}",
            "variables": {"environment": env, "max_days_back": 3, "error_threshold": 5.0,
                          "warning_threshold": 10.0}}


def find_config(start: Path | None = None) -> Path | None:
    """``$M7ETL_CONFIG``, else the first ``m7etl.toml`` in the folder or its parents."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


def load_env(env: str, path: Path | None = None, *, search: bool = True) -> EnvConfig:
    """The configuration of environment ``env``: defaults, ``[default]``, ``[<env>]``."""
    if not ENV_NAME.match(env or ""):
        raise ConfigurationError(
            f"Environment name {env!r} is not valid.",
            hint="Use lower-case letters, digits and '-', starting with a letter, at most 20 "
                 "characters (the stack's Environment parameter), e.g. --env test.")
    if path is None and search:
        path = find_config()
    tables: dict[str, Any] = {}
    source = "(built-in defaults)"
    if path is not None:
        tables = _read(path)
        source = str(path)
    merged = defaults(env)
    for table in ("default", env):
        if table in tables:
            _merge(merged, _checked_table(tables[table], f"[{table}]", source))
    return _build(env, merged, source)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"Configuration file {path} does not exist.",
                                 hint=f"Create it (see README, 'Configuration') or unset "
                                      f"{CONFIG_ENV}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"Configuration file {path} is not UTF-8 text ({exc.reason}).",
                                 hint="Save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"Configuration file {path} is not valid TOML: {exc}.",
                                 hint="Fix the syntax at that line (https://toml.io).") from None
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"{path}: top-level key '{name}' is not a table.",
                hint=f"Put settings under an environment table, e.g. [test] then {name} = ...")
    return data


KEYS = {"region": str, "profile": str, "data_bucket": str, "code_bucket": str, "stack_name": str,
        "mwaa_environment": str, "dag_id": str, "endpoint_url": str, "endpoints": dict,
        "parameters": dict, "snowflake": dict, "variables": dict}


def _checked_table(table: dict, where: str, source: str) -> dict:
    for key, value in table.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, list(KEYS), n=1)
            hint = f"Did you mean '{close[0]}'?" if close else f"Known keys: {', '.join(KEYS)}."
            if key.lower() in SECRET_KEYS:
                hint = (f"Secrets never go in {CONFIG_NAME}: set ${PASSWORD_ENV} or let deploy "
                        "prompt for it.")
            raise ConfigurationError(f"{source}: key '{key}' in {where} is not a setting.",
                                     hint=hint)
        if not isinstance(value, KEYS[key]):
            kind = "a table" if KEYS[key] is dict else "a string"
            raise ConfigurationError(
                f"{source}: key '{where[1:-1]}.{key}' must be {kind}, got {_shown(value)}.",
                hint=f"Write it as {key} = \"...\"" if KEYS[key] is str else
                     f"Write it as [{where[1:-1]}.{key}] with one key per line.")
    for key, value in table.get("snowflake", {}).items():
        name = f"{where[1:-1]}.snowflake.{key}"
        if key.lower() in SECRET_KEYS:
            raise ConfigurationError(f"{source}: key '{name}' holds a secret.",
                                     hint=f"Remove it; set ${PASSWORD_ENV} or let deploy prompt.")
        if key not in SNOWFLAKE_PARAMETERS:
            raise ConfigurationError(f"{source}: key '{name}' is not a Snowflake setting.",
                                     hint=f"Known: {', '.join(SNOWFLAKE_PARAMETERS)}.")
        if not isinstance(value, str):
            raise ConfigurationError(f"{source}: key '{name}' must be a string, got {_shown(value)}.",
                                     hint=f"Write it as {key} = \"...\".")
    for key, value in table.get("parameters", {}).items():
        name = f"{where[1:-1]}.parameters.{key}"
        if key.lower() in SECRET_KEYS:
            raise ConfigurationError(f"{source}: key '{name}' holds a secret.",
                                     hint=f"Remove it; set ${PASSWORD_ENV} or let deploy prompt.")
        if not PARAMETER_NAME.match(key):
            raise ConfigurationError(f"{source}: key '{name}' is not a parameter name.",
                                     hint="Use the template's parameter names (letters and digits).")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigurationError(f"{source}: key '{name}' must be a string or a number, "
                                     f"got {_shown(value)}.", hint=f"Write it as {key} = \"...\".")
    for key, value in table.get("endpoints", {}).items():
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"{source}: key '{where[1:-1]}.endpoints.{key}' must be an http(s) URL, "
                f"got {_shown(value)}.", hint=f'Write it as {key} = "http://127.0.0.1:5000".')
    return table


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _merge(into: dict, table: dict) -> None:
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        else:
            into[key] = value


def _build(env: str, merged: dict, source: str) -> EnvConfig:
    snowflake = SnowflakeTarget(**merged.pop("snowflake", {}))
    parameters = {k: str(v) for k, v in merged.pop("parameters", {}).items()}
    config = EnvConfig(name=env, snowflake=snowflake, parameters=parameters, source=source,
                       **merged)
    for value, pattern, key, example in (
            (config.data_bucket, BUCKET_NAME, "data_bucket", f"m7-etl-data-solocco-{env}"),
            (config.code_bucket, BUCKET_NAME, "code_bucket", f"m7-solocco-code-repository-{env}"),
            (config.stack_name, STACK_NAME, "stack_name", DEFAULT_STACK),
            (config.mwaa_environment, MWAA_NAME, "mwaa_environment", f"m7-etl-mwaa-{env}")):
        if not pattern.match(value):
            raise ConfigurationError(f"{source}: key '{env}.{key}' = {value!r} is not a valid name.",
                                     hint=f"Use a name like {example!r}.")
    return config
