"""The guide's step 4.2: the DAG's Airflow variables, checked, then set through MWAA.

Values, lowest precedence first: the guide's defaults and ``m7etl.toml``'s
``[<env>.variables]`` (``EnvConfig.variables``), a JSON file (``--file``), ``--var
KEY=VALUE``. Every value is checked before anything is sent: :func:`validate_variables` is
pure (no AWS, no Airflow), so the DAG can apply the same rules to what it reads. Each
variable is read first, so the report says which ones changed and which were already set;
a second run with the same values sends nothing.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from m7etl.exceptions import DeployError

ENVIRONMENT, MAX_DAYS_BACK, ERROR_THRESHOLD, WARNING_THRESHOLD = (
    "environment", "max_days_back", "error_threshold", "warning_threshold")
KNOWN = (ENVIRONMENT, MAX_DAYS_BACK, ERROR_THRESHOLD, WARNING_THRESHOLD)
NUMERIC = (MAX_DAYS_BACK, ERROR_THRESHOLD, WARNING_THRESHOLD)
DAYS_MAX = 365  # raw/'s default retention (the stack's RetentionDaysRaw): older days are gone
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")  # the template's Environment pattern
KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,249}$")  # Airflow's key column is 250 long
SECRET_WORDS = ("password", "passwd", "secret", "token", "passphrase", "private_key", "api_key",
                "apikey", "credential")
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
FIX_HINT = "Fix them in m7etl.toml ([<env>.variables]), the --file or the --var, and run again."


@dataclass(frozen=True)
class VariableChange:
    key: str
    before: str | None  # None: the variable did not exist
    after: str
    action: str  # CREATED, UPDATED or UNCHANGED


@dataclass
class VariablesReport:
    env: str
    mwaa_environment: str
    route: str  # "cli-token" or "rest-api": the route that set them
    changes: list[VariableChange]
    warnings: list[str] = field(default_factory=list)
    fallback_reason: str | None = None  # why the first route was not used

    @property
    def changed(self) -> list[VariableChange]:
        return [c for c in self.changes if c.action != UNCHANGED]

    def to_dict(self) -> dict:
        return asdict(self)


# -- the values ----------------------------------------------------------------------------
def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``--var KEY=VALUE`` (repeatable; the last one of a key wins)."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeployError(f"--var {item!r} is not KEY=VALUE.",
                              hint="Write it as --var max_days_back=3.")
        values[key.strip()] = value.strip()
    return values


def read_variables_file(path: Path) -> dict[str, Any]:
    """A JSON object of variables (``{"max_days_back": 3, ...}``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"Variables file {path} does not exist.",
                          hint="Give the path of a JSON object, e.g. --file vars.json.") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DeployError(f"Variables file {path} is not valid JSON ({exc}).",
                          hint='Write a JSON object: {"max_days_back": 3}.') from None
    if not isinstance(data, dict):
        raise DeployError(f"Variables file {path} must hold a JSON object of variables, got "
                          f"{type(data).__name__}.", hint='Write it as {"max_days_back": 3}.')
    return data


def merge_sources(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """Later sources win: config, then the file, then ``--var``."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update(source)
    return merged


def validate_variables(values: Mapping[str, Any], *, env: str | None = None,
                       allow_extra: bool = False) -> tuple[dict[str, str], list[str]]:
    """The variables as the text Airflow stores, and warnings; every problem at once in
    one :class:`DeployError`, before anything is sent."""
    problems: list[str] = []
    hints: list[str] = []
    warnings: list[str] = []
    out: dict[str, str] = {}
    for key in KNOWN:
        if key in values:
            text = _checked(key, values[key], problems)
            if text is not None:
                out[key] = text
    error, warning = out.get(ERROR_THRESHOLD), out.get(WARNING_THRESHOLD)
    if error is not None and warning is not None and float(warning) < float(error):
        problems.append(f"warning_threshold ({warning}) must be at least error_threshold "
                        f"({error}), as in the guide's 5.0 and 10.0 (a lower one is almost "
                        "always the two values swapped)")
    for key in (k for k in values if k not in KNOWN):
        if any(word in key.lower() for word in SECRET_WORDS):
            problems.append(f"variable {key!r} looks like a secret")
            hints.append("Secrets stay in AWS Secrets Manager (the stack's Snowflake secret), "
                         "never in Airflow variables set from a command line.")
        elif not KEY_NAME.match(key):
            problems.append(f"variable name {key!r} is not valid (letters, digits, '_', '.', "
                            "'-', starting with a letter)")
        elif not allow_extra:
            close = difflib.get_close_matches(key, KNOWN, n=1)
            problems.append(f"unknown variable {key!r}" +
                            (f" (did you mean {close[0]!r}?)" if close else ""))
            hints.append(f"The DAG reads {', '.join(KNOWN)}; --allow-extra sends others anyway.")
        else:
            out[key] = _text(values[key])
    if problems:
        raise DeployError(f"Airflow variables not sent: {'; '.join(problems)}.",
                          hint=" ".join(dict.fromkeys(hints)) or FIX_HINT)
    if env is not None and ENVIRONMENT in out and out[ENVIRONMENT] != env:
        warnings.append(f"environment is {out[ENVIRONMENT]!r} but --env is {env!r}: the DAG "
                        f"of this environment will call itself {out[ENVIRONMENT]!r}.")
    return out, warnings


def _checked(key: str, value: Any, problems: list[str]) -> str | None:
    if key == ENVIRONMENT:
        if isinstance(value, str) and ENV_NAME.match(value.strip()):
            return value.strip()
        problems.append(f"environment must be a name like 'test' (lower-case letters, digits "
                        f"and '-', starting with a letter, at most 20), got {value!r}")
        return None
    if key == MAX_DAYS_BACK:
        days = _whole(value)
        if days is not None and 1 <= days <= DAYS_MAX:
            return str(days)
        problems.append(f"max_days_back must be a whole number of days from 1 (0 would look at "
                        f"no day) to {DAYS_MAX} (raw/ keeps {DAYS_MAX} days by default, older "
                        f"ones are gone), got {value!r}")
        return None
    number = _number(value)
    if number is not None and 0.0 <= number <= 100.0:
        return repr(number)
    problems.append(f"{key} must be a percentage from 0 to 100 (of a file's rows), got {value!r}")
    return None


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def same_value(key: str, current: str | None, wanted: str) -> bool:
    """Numbers compare as numbers: a stored "5" is already error_threshold 5.0."""
    if current is None:
        return False
    if key in NUMERIC:
        try:
            return float(current) == float(wanted)
        except ValueError:
            return False
    return current == wanted


def plan_changes(wanted: Mapping[str, str], current: Mapping[str, str | None]
                 ) -> list[VariableChange]:
    changes = []
    for key, value in wanted.items():
        before = current.get(key)
        action = (CREATED if before is None else
                  UNCHANGED if same_value(key, before, value) else UPDATED)
        changes.append(VariableChange(key, before, value, action))
    return changes


# -- sending them --------------------------------------------------------------------------
def set_variables(config, clients, *, assignments: Iterable[str] = (), file: Path | None = None,
                  via: str = "auto", allow_extra: bool = False, http=None) -> VariablesReport:
    """Check the values, read what Airflow holds, set what differs; report both."""
    from m7etl.orchestration.airflow_api import connect

    sources = [config.variables, read_variables_file(file) if file else {},
               parse_assignments(assignments)]
    wanted, warnings = validate_variables(merge_sources(*sources), env=config.name,
                                          allow_extra=allow_extra)
    routes = connect(clients, config.mwaa_environment, via,
                     web_url=config.endpoints.get("mwaa_web"), http=http)
    current = {key: routes.call("get_variable", key) for key in wanted}
    changes = plan_changes(wanted, current)
    for change in changes:
        if change.action != UNCHANGED:
            routes.call("set_variable", change.key, change.after,
                        exists=change.before is not None)
    return VariablesReport(config.name, config.mwaa_environment, routes.name, changes,
                           warnings, routes.fallback_reason)
