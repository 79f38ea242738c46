"""raw -> silver for one file: the core of the ``raw_to_silver`` Lambda.

Streams the raw CSV in batches (memory stays flat as files grow), validates every row,
writes silver Parquet and a rejects file to local temporary files, then publishes them
under keys derived from the input key. The accounting always holds:
``rows_read == rows_valid + rows_rejected``. A file that cannot be read at all is moved to
quarantine with its reason; it never stops the other files.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from m7etl import layout
from m7etl.contracts import Contract, Registry
from m7etl.csvread import HEAD_BYTES, Dialect, open_text_stream, read_batches, sniff
from m7etl.exceptions import UnreadableFileError
from m7etl.storage import Storage
from m7etl.validate import REJECTS_SCHEMA, column_count_rejects, silver_schema, validate_batch

STATUS_OK = "ok"
STATUS_FAILED = "failed_threshold"
STATUS_QUARANTINED = "quarantined"
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "write_statistics": True}


@dataclass
class FileResult:
    """What happened to one raw file; the execution log's per-file entry."""

    source_key: str
    dataset: str | None
    date: str | None
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_warned: int = 0
    rejected_pct: float = 0.0
    warned_pct: float = 0.0
    status: str = STATUS_OK
    reason: str | None = None
    warning: bool = False
    bytes_read: int = 0
    dialect: dict | None = None
    missing_optional_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    error_pct: float = 5.0
    warning_pct: float = 10.0


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


class _CountingReader:
    """Counts the bytes pulled from the storage stream (for throughput figures)."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.count += len(data)
        return data


def _convert(storage: Storage, key: str, contract: Contract, tmp: Path,
             result: FileResult) -> tuple[Path, Path]:
    """Stream the file into local silver and rejects Parquet files; fill the counters.

    A decoding error deep in the file (past the sniffed head) restarts the file with the
    contract's next encoding; when none is left the file is unreadable.
    """
    failed: list[str] = []
    while True:
        counter = _CountingReader(storage.open_input(key))
        stream, head, is_gzip = open_text_stream(counter)
        dialect = sniff(head, contract, complete=len(head) < HEAD_BYTES, gzip=is_gzip,
                        exclude=failed)
        try:
            paths = _write_outputs(stream, dialect, contract, key, tmp, result)
        except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
            if isinstance(exc, pa.ArrowInvalid) and "utf8" not in str(exc).lower():
                raise UnreadableFileError("parse_error", f"The CSV cannot be parsed: {exc}.") from None
            failed.append(dialect.encoding)
            continue
        except OSError as exc:
            raise UnreadableFileError("read_error", f"The file cannot be read to its end: {exc}.") from None
        result.bytes_read = counter.count
        result.dialect = dialect.describe()
        result.missing_optional_columns = dialect.missing_optional
        result.extra_columns = dialect.extra
        return paths


def _write_outputs(stream, dialect: Dialect, contract: Contract, key: str, tmp: Path,
                   result: FileResult) -> tuple[Path, Path]:
    schema = silver_schema(contract)
    silver_path, rejects_path = tmp / "silver.parquet", tmp / "rejects.parquet"
    read = valid = rejected = warned = 0
    decimal_comma = dialect.delimiter == ";"
    with pq.ParquetWriter(silver_path, schema, **PARQUET_OPTIONS) as silver, \
            pq.ParquetWriter(rejects_path, REJECTS_SCHEMA, **PARQUET_OPTIONS) as rejects:
        for batch in read_batches(stream, dialect):
            if batch.invalid:
                rejects.write_table(column_count_rejects(key, batch.invalid))
                read += len(batch.invalid)
                rejected += len(batch.invalid)
            if batch.data is None or batch.data.num_rows == 0:
                continue
            out = validate_batch(contract, batch.data, batch.lines, key, decimal_comma=decimal_comma)
            read += batch.data.num_rows
            valid += out.valid.num_rows
            rejected += out.rows_rejected
            warned += out.rows_warned
            if out.valid.num_rows:
                silver.write_table(out.valid)
            if out.rejects.num_rows:
                rejects.write_table(out.rejects)
    result.rows_read, result.rows_valid = read, valid
    result.rows_rejected, result.rows_warned = rejected, warned
    return silver_path, rejects_path


def _quarantine(storage: Storage, key: str, day: str, result: FileResult, reason: str,
                message: str) -> FileResult:
    target = layout.quarantine_key(day, key)
    result.status, result.reason = STATUS_QUARANTINED, f"{reason}: {message}"
    if storage.exists(key):
        storage.move(key, target)
    storage.write_bytes(layout.quarantine_reason_key(day, key), json.dumps({
        "source_key": key, "quarantine_key": target, "dataset": result.dataset,
        "reason": reason, "message": message,
    }, indent=2).encode())
    result.outputs = {"quarantine": target}
    if result.dataset:
        _drop_stale(storage, [layout.silver_key(day, result.dataset, key),
                              layout.rejects_key(day, result.dataset, key)])
    return result


def _drop_stale(storage: Storage, keys: list[str]) -> None:
    storage.delete([k for k in keys if storage.exists(k)])


def process_raw_file(storage: Storage, key: str, registry: Registry,
                     thresholds: Thresholds = Thresholds(), *, tmp_dir: str | None = None) -> FileResult:
    """Validate one ``raw/YYYYMMDD/<file>`` into silver; never raises for bad input."""
    started = time.perf_counter()
    name = layout.base_name(key)
    day = layout.day_of_raw_key(key) or layout.day_in_name(name) or "00000000"
    found = registry.identify(name)
    if found is None:
        result = FileResult(source_key=key, dataset=None, date=day)
        known = ", ".join(sorted(c.dataset for c in registry))
        return _quarantine(storage, key, day, result, "unknown_dataset",
                           f"The name {name!r} matches no contract (known datasets: {known}).")
    contract, _name_day = found
    result = FileResult(source_key=key, dataset=contract.dataset, date=day)
    with tempfile.TemporaryDirectory(prefix="m7-r2s-", dir=tmp_dir) as tmp:
        try:
            silver_path, rejects_path = _convert(storage, key, contract, Path(tmp), result)
        except UnreadableFileError as exc:
            return _quarantine(storage, key, day, result, exc.reason, exc.message)
        if result.rows_read == 0:
            return _quarantine(storage, key, day, result, "header_only",
                               "The file has a header but no data rows.")
        result.rejected_pct = _pct(result.rows_rejected, result.rows_read)
        result.warned_pct = _pct(result.rows_warned, result.rows_read)
        result.warning = result.warned_pct > thresholds.warning_pct
        silver_key = layout.silver_key(day, contract.dataset, key)
        rejects_key = layout.rejects_key(day, contract.dataset, key)
        if result.rejected_pct > thresholds.error_pct:
            result.status = STATUS_FAILED
            result.reason = (f"{result.rejected_pct:.2f}% of rows rejected, above the error "
                             f"threshold of {thresholds.error_pct}%")
            _drop_stale(storage, [silver_key])  # not promoted; raw stays for a replay
        else:
            storage.upload_file(silver_path, silver_key)
            result.outputs["silver"] = silver_key
        if result.rows_rejected:
            storage.upload_file(rejects_path, rejects_key)
            result.outputs["rejects"] = rejects_key
        else:
            _drop_stale(storage, [rejects_key])
    report = layout.report_key(day, contract.dataset, key)
    result.outputs["report"] = report
    result.duration_s = round(time.perf_counter() - started, 3)
    storage.write_bytes(report, json.dumps(result.to_dict(), indent=2).encode())
    return result
