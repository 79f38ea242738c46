"""The DAG's first task as plain functions: its settings, the stack's names, the files to run.

Everything here runs when the ``plan`` task runs, never when the DAG file is parsed: a
top-level ``Variable.get`` is broken in Airflow 3.0.x (apache/airflow#51816) and would
cost every parse a database call. A bad value is an error naming the variable and the
value, so the first task fails with a message the operator can act on.

Names: the template names every resource after its ``Environment`` parameter
(``m7-etl-raw-to-silver-<env>``...), so the Airflow variable ``environment`` (the guide's
step 4) gives them all, without an account id or a CloudFormation call (the MWAA role may
not describe stacks). The ``[m7etl]`` Airflow configuration section (MWAA's
``AirflowConfigurationOptions`` ``m7etl.data_bucket`` ..., i.e. ``AIRFLOW__M7ETL__*``
variables) may name any of them instead, e.g. a data bucket given to the stack by name.

Planning: a run with a conf (the S3-event function, ``m7etl trigger``) and the daily run
both process every *pending* raw file of the last ``max_days_back`` days (and of the conf's
day): a file whose silver report is missing or older than the raw object. A burst of
uploads asks for many runs; with ``max_active_runs=1`` the first one processes them all and
the next ones find nothing left. A conf with a date and no raw keys (``m7etl trigger
--date``) asks for that whole day again: a replay.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from m7etl.core import layout
from m7etl.exceptions import ConfigurationError, UsageError
from m7etl.orchestration.payloads import RAW_KEY, RawToSilverRequest
from m7etl.storage.base import ObjectInfo

VARIABLES = ("environment", "max_days_back", "error_threshold", "warning_threshold")
DEFAULT_MAX_DAYS_BACK = 3
DEFAULT_ERROR_THRESHOLD = 5.0
DEFAULT_WARNING_THRESHOLD = 10.0
MAX_DAYS_BACK = 365  # a year of raw/ is the retention default; more is a replay, not a run
ENVIRONMENT = re.compile(r"[a-z][a-z0-9-]{0,19}")  # the template's Environment pattern
CONF_FIELDS = ("date", "raw_keys", "trigger")
OVERRIDES = ("environment", "data_bucket", "raw_to_silver_function", "silver_to_gold_function",
             "glue_job", "alert_topic_arn")
SET_HINT = "Set it in Admin > Variables or with `m7etl set-variables`."


# -- settings --------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineSettings:
    """The guide's four Airflow variables, checked."""

    environment: str
    max_days_back: int
    error_threshold: float
    warning_threshold: float

    def to_dict(self) -> dict:
        return {"environment": self.environment, "max_days_back": self.max_days_back,
                "error_threshold": self.error_threshold,
                "warning_threshold": self.warning_threshold}


def _bad(name: str, value: object, problem: str, hint: str) -> ConfigurationError:
    return ConfigurationError(f"Airflow variable '{name}' is {value!r}: {problem}.",
                              hint=f"{hint} {SET_HINT}")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else str(value)


def _whole(name: str, value: object, low: int, high: int) -> int:
    text = _text(value)
    if not re.fullmatch(r"[+-]?\d+", text):
        raise _bad(name, value, "not a whole number", f"Use an integer from {low} to {high}.")
    number = int(text)
    if not low <= number <= high:
        raise _bad(name, value, f"out of range {low}-{high}",
                   f"Use an integer from {low} to {high}.")
    return number


def _percent(name: str, value: object) -> float:
    try:
        number = float(_text(value))
    except ValueError:
        raise _bad(name, value, "not a number", "Use a percentage such as 5.0.") from None
    if math.isnan(number) or not 0 <= number <= 100:
        raise _bad(name, value, "not a percentage from 0 to 100", "Use 0 to 100.")
    return number


def read_environment(get: Callable[[str], object | None],
                     overrides: Mapping[str, str] | None = None) -> str:
    """The ``environment`` variable, else the ``[m7etl]`` section's (both set: they must
    agree). Read first and alone, so the stack's names (the alert topic) are known even
    when another variable is bad."""
    configured = (overrides or {}).get("environment") or None
    env_value = get("environment")
    environment = _text(env_value) if env_value not in (None, "") else configured
    if not environment:
        raise ConfigurationError(
            "Airflow variable 'environment' is not set: the DAG cannot name the stack's "
            "functions, job and bucket.",
            hint=f"Set it to the stack's Environment parameter, e.g. test. {SET_HINT}")
    if not ENVIRONMENT.fullmatch(environment):
        raise _bad("environment", environment, "not an environment name",
                   "Use the stack's Environment parameter (lower-case letters, digits and '-', "
                   "starting with a letter, at most 20 characters).")
    if configured and configured != environment:
        raise ConfigurationError(
            f"Airflow variable 'environment' is {environment!r} but this MWAA environment is "
            f"configured for {configured!r} (m7etl.environment).",
            hint="Set the variable to the environment this Airflow belongs to.")
    return environment


def read_settings(get: Callable[[str], object | None],
                  overrides: Mapping[str, str] | None = None) -> PipelineSettings:
    """The four variables through ``get(name)`` (None when unset), checked; the guide's
    defaults for all but ``environment`` (see :func:`read_environment`)."""
    environment = read_environment(get, overrides)

    def value(name: str, default: object) -> object:
        found = get(name)
        return default if found in (None, "") else found

    days = _whole("max_days_back", value("max_days_back", DEFAULT_MAX_DAYS_BACK), 1, MAX_DAYS_BACK)
    error = _percent("error_threshold", value("error_threshold", DEFAULT_ERROR_THRESHOLD))
    warning = _percent("warning_threshold", value("warning_threshold", DEFAULT_WARNING_THRESHOLD))
    if warning < error:
        raise ConfigurationError(
            f"Airflow variable 'warning_threshold' ({warning}) is below 'error_threshold' "
            f"({error}).", hint=f"Use a warning threshold at or above the error threshold. "
                                f"{SET_HINT}")
    return PipelineSettings(environment, days, error, warning)


# -- the stack's names -----------------------------------------------------------------
@dataclass(frozen=True)
class StackNames:
    """What the DAG calls, named as the template names it for an environment."""

    environment: str
    data_bucket: str
    raw_to_silver_function: str
    silver_to_gold_function: str
    glue_job: str
    alert_topic_arn: str | None  # None: built from the connection's region and account

    @property
    def alert_topic_name(self) -> str:
        return f"m7-etl-alerts-{self.environment}"

    def to_dict(self) -> dict:
        return {"environment": self.environment, "data_bucket": self.data_bucket,
                "raw_to_silver_function": self.raw_to_silver_function,
                "silver_to_gold_function": self.silver_to_gold_function,
                "glue_job": self.glue_job, "alert_topic_arn": self.alert_topic_arn}

    @classmethod
    def from_dict(cls, data: Mapping) -> StackNames:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def stack_names(environment: str, overrides: Mapping[str, str] | None = None) -> StackNames:
    """The template's names for ``environment``, each replaced by a non-empty override."""
    given = {k: v.strip() for k, v in (overrides or {}).items() if isinstance(v, str) and v.strip()}
    return StackNames(
        environment=environment,
        data_bucket=given.get("data_bucket", f"m7-etl-data-solocco-{environment}"),
        raw_to_silver_function=given.get("raw_to_silver_function",
                                         f"m7-etl-raw-to-silver-{environment}"),
        silver_to_gold_function=given.get("silver_to_gold_function",
                                          f"m7-etl-silver-to-gold-{environment}"),
        glue_job=given.get("glue_job", f"m7-etl-gold-to-snowflake-{environment}"),
        alert_topic_arn=given.get("alert_topic_arn"))


def topic_arn(partition: str, region: str, account: str, topic: str) -> str:
    return f"arn:{partition}:sns:{region}:{account}:{topic}"


# -- the run's conf --------------------------------------------------------------------
@dataclass(frozen=True)
class RunConf:
    """What a triggered run asks for (``orchestration.runs.run_conf``); empty for the daily run."""

    date: str | None = None
    raw_keys: tuple[str, ...] = ()
    trigger: str | None = None

    @property
    def replay(self) -> bool:
        """A date without raw keys: the whole day again."""
        return self.date is not None and not self.raw_keys


def _conf_error(name: str, problem: str) -> UsageError:
    return UsageError(f"DAG run conf: field '{name}' {problem}.",
                      hint='Use {"date": "YYYYMMDD", "raw_keys": ["raw/YYYYMMDD/<file>", ...]} '
                           "(see docs/dag.md).")


def parse_conf(conf: Mapping | None) -> RunConf:
    """The run's conf, checked; an error names the field."""
    if not conf:
        return RunConf()
    if not isinstance(conf, Mapping):
        raise _conf_error("(conf)", f"must be a JSON object, got {type(conf).__name__}")
    extra = sorted(set(conf) - set(CONF_FIELDS))
    if extra:
        raise _conf_error(extra[0], f"is not a known field (allowed: {', '.join(CONF_FIELDS)})")
    day = conf.get("date")
    if day is not None:
        try:
            layout.parse_day(day if isinstance(day, str) else repr(day))
        except ValueError as exc:
            raise _conf_error("date", f"must be a YYYYMMDD date ({exc})") from None
    keys = conf.get("raw_keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _conf_error("raw_keys", "must be a list of raw/YYYYMMDD/<file> keys")
    for key in keys:
        if not re.fullmatch(RAW_KEY, key):
            raise _conf_error("raw_keys", f"holds {key!r}, not a raw/YYYYMMDD/<file> key")
        if day is None:
            raise _conf_error("date", "is missing (raw_keys needs the day they belong to)")
        if layout.day_of_raw_key(key) != day:
            raise _conf_error("raw_keys", f"holds {key!r}, which is not under raw/{day}/")
    trigger = conf.get("trigger")
    if trigger is not None and not isinstance(trigger, str):
        raise _conf_error("trigger", f"must be a string, got {trigger!r}")
    return RunConf(day, tuple(sorted(set(keys))), trigger)


# -- planning --------------------------------------------------------------------------
def window_days(ref_day: str, max_days_back: int) -> list[str]:
    """``ref_day`` and the ``max_days_back`` days before it, oldest first."""
    ref = datetime.strptime(layout.parse_day(ref_day), "%Y%m%d")
    return [layout.day_of(ref - timedelta(days=n)) for n in range(max_days_back, -1, -1)]


def _report_stem(key: str) -> tuple[str, str] | None:
    """``silver/D/_reports/<Dataset>/<stem>.json`` -> (D, stem)."""
    parts = key.split("/")
    if len(parts) == 5 and parts[0] + "/" == layout.SILVER and parts[2] == layout.REPORTS_DIR \
            and parts[4].endswith(".json"):
        return parts[1], parts[4][: -len(".json")]
    return None


def pending_keys(raw: Iterable[ObjectInfo], reports: Iterable[ObjectInfo]) -> list[str]:
    """The raw files whose report is missing or older than the raw object, sorted.

    A report is ``<stem>.json`` under the file's dataset: matched by day and stem, so no
    contract is needed here (a day never holds two raw files of one stem)."""
    newest: dict[tuple[str, str], float] = {}
    for report in reports:
        found = _report_stem(report.key)
        if found:
            newest[found] = max(newest.get(found, report.last_modified), report.last_modified)
    out = []
    for obj in raw:
        day = layout.day_of_raw_key(obj.key)
        if day is None or not layout.is_input_file(obj.key):
            continue
        done = newest.get((day, layout.stem(obj.key)))
        if done is None or done < obj.last_modified:
            out.append(obj.key)
    return sorted(out)


@dataclass(frozen=True)
class Plan:
    """The files of a run: ``keys`` to process; what the conf asked for that is not among them."""

    days: list[str]
    keys: list[str]
    replay_day: str | None = None
    already_done: list[str] = field(default_factory=list)  # conf keys an earlier run processed
    missing: list[str] = field(default_factory=list)  # conf keys no longer in raw/

    def to_dict(self) -> dict:
        return {"days": self.days, "keys": self.keys, "replay_day": self.replay_day,
                "already_done": self.already_done, "missing": self.missing}

    def summary(self) -> str:
        text = f"{len(self.keys)} raw file(s) to process over {', '.join(self.days)}"
        if self.replay_day:
            text += f" (replay of {self.replay_day})"
        if self.already_done:
            text += f"; {len(self.already_done)} asked for were already processed"
        if self.missing:
            text += f"; {len(self.missing)} asked for are no longer in raw/: {', '.join(self.missing)}"
        return text


def plan_files(conf: RunConf, ref_day: str, max_days_back: int,
               list_prefix: Callable[[str], list[ObjectInfo]]) -> Plan:
    """The raw files to process: pending ones in the window and the conf's day, or the
    whole conf day for a replay. ``list_prefix`` is a storage's ``list``."""
    days = sorted(set(window_days(ref_day, max_days_back)) | ({conf.date} if conf.date else set()))
    keys: set[str] = set()
    present: set[str] = set()
    for day in days:
        raw = [o for o in list_prefix(layout.raw_prefix(day)) if layout.is_input_file(o.key)]
        present.update(o.key for o in raw)
        if conf.replay and day == conf.date:
            keys.update(o.key for o in raw if layout.day_of_raw_key(o.key) == day)
            continue
        keys.update(pending_keys(raw, list_prefix(f"{layout.SILVER}{day}/{layout.REPORTS_DIR}/")))
    asked = set(conf.raw_keys)
    return Plan(days=days, keys=sorted(keys), replay_day=conf.date if conf.replay else None,
                already_done=sorted((asked & present) - keys), missing=sorted(asked - present))


def raw_to_silver_payloads(keys: Iterable[str], bucket: str,
                           settings: PipelineSettings) -> list[str]:
    """One invocation payload per file (JSON text, as the Lambda operator sends it)."""
    return [json.dumps(RawToSilverRequest(key, bucket, settings.error_threshold,
                                          settings.warning_threshold).to_payload())
            for key in keys]
