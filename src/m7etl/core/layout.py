"""The key layout of the data bucket, in one place.

Every key the pipeline reads or writes is built here, from the input key, so re-running
the same input writes the same objects::

    landing/<file>                          incoming CSV files: <Dataset>_YYYYMMDD[_<part>].csv[.gz]
    raw/YYYYMMDD/<file>                     raw files by day (the replay source)
    silver/YYYYMMDD/<Dataset>/<stem>.parquet          clean, typed rows
    silver/YYYYMMDD/_rejects/<Dataset>/<stem>.parquet rejected rows with reasons
    silver/YYYYMMDD/_reports/<Dataset>/<stem>.json    per-file report
    gold/<Dataset>_YYYYMMDD.parquet         one gold file per dataset and day
    quarantine/YYYYMMDD/<file>              unreadable files (+ <file>.reason.json)
    logs/pipeline_execution_YYYYMMDD.json   the execution log of the day
"""

from __future__ import annotations

import re
from datetime import date, datetime

LANDING = "landing/"
RAW = "raw/"
SILVER = "silver/"
GOLD = "gold/"
QUARANTINE = "quarantine/"
LOGS = "logs/"
REJECTS_DIR = "_rejects"
REPORTS_DIR = "_reports"
INPUT_SUFFIXES = (".csv", ".csv.gz")
DAY_IN_NAME = re.compile(r"(?<!\d)(\d{8})(?!\d)")


def parse_day(text: str) -> str:
    """Check a ``YYYYMMDD`` day and return it; ValueError with a readable message if not."""
    if not re.fullmatch(r"\d{8}", text or ""):
        raise ValueError(f"'{text}' is not a date in YYYYMMDD form")
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise ValueError(f"'{text}' is not a real calendar date") from None
    return text


def day_of(d: date | datetime) -> str:
    return d.strftime("%Y%m%d")


def base_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def is_input_file(key: str) -> bool:
    return key.lower().endswith(INPUT_SUFFIXES)


def stem(key: str) -> str:
    """The name outputs derive from: ``Device_20250501.csv`` -> ``Device_20250501``.

    A gzipped file keeps a ``.gz`` mark (``Device_20250501.csv.gz`` -> ``Device_20250501.gz``)
    so that a plain and a gzipped file of the same day never write the same objects; a
    part keeps its number (``Viewing_20250501_02.csv`` -> ``Viewing_20250501_02``), so
    the parts of a day write a silver file, rejects and a report each.
    """
    name = base_name(key)
    lower = name.lower()
    if lower.endswith(".csv.gz"):
        return name[: -len(".csv.gz")] + ".gz"
    if lower.endswith(".csv"):
        return name[: -len(".csv")]
    return name


def day_in_name(name: str) -> str | None:
    """The first valid ``YYYYMMDD`` found in a file name, if any."""
    for match in DAY_IN_NAME.finditer(name):
        try:
            return parse_day(match.group(1))
        except ValueError:
            continue
    return None


def landing_key(name: str) -> str:
    return f"{LANDING}{name}"


def raw_key(day: str, name: str) -> str:
    return f"{RAW}{day}/{name}"


def raw_prefix(day: str) -> str:
    return f"{RAW}{day}/"


def day_of_raw_key(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) == 3 and parts[0] + "/" == RAW:
        try:
            return parse_day(parts[1])
        except ValueError:
            return None
    return None


def silver_prefix(day: str, dataset: str) -> str:
    return f"{SILVER}{day}/{dataset}/"


def silver_key(day: str, dataset: str, source_key: str) -> str:
    return f"{silver_prefix(day, dataset)}{stem(source_key)}.parquet"


def rejects_key(day: str, dataset: str, source_key: str) -> str:
    return f"{SILVER}{day}/{REJECTS_DIR}/{dataset}/{stem(source_key)}.parquet"


def report_key(day: str, dataset: str, source_key: str) -> str:
    return f"{SILVER}{day}/{REPORTS_DIR}/{dataset}/{stem(source_key)}.json"


def gold_key(dataset: str, day: str) -> str:
    return f"{GOLD}{dataset}_{day}.parquet"


def quarantine_key(day: str, source_key: str) -> str:
    return f"{QUARANTINE}{day}/{base_name(source_key)}"


def quarantine_reason_key(day: str, source_key: str) -> str:
    return quarantine_key(day, source_key) + ".reason.json"


def log_key(day: str) -> str:
    return f"{LOGS}pipeline_execution_{day}.json"


LOG_KEY = re.compile(r"^logs/pipeline_execution_(\d{8})\.json$")


def is_execution_log_key(key: str) -> bool:
    """``logs/pipeline_execution_YYYYMMDD.json`` (not the maintenance reports beside it)."""
    return LOG_KEY.match(key) is not None
