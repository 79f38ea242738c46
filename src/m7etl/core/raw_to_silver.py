"""raw -> silver for one file: the core of the ``raw_to_silver`` Lambda.

Streams the raw CSV in batches (memory stays flat as files grow), validates every row,
writes silver Parquet and a rejects file to local temporary files, then publishes them
under keys derived from the input key. The accounting always holds:
``rows_read == rows_valid + rows_rejected``. A file that cannot be read at all is moved to
quarantine with its reason; it never stops the other files.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from m7etl.core import conservation, layout
from m7etl.core.contracts import Contract, Registry
from m7etl.core.csvread import (
    HEAD_BYTES,
    Dialect,
    is_decoder_error,
    peek,
    read_batches,
    sniff,
    text_stream,
)
from m7etl.core.validate import (
    REJECTS_SCHEMA,
    column_count_rejects,
    encoding_rejects,
    silver_write_schema,
    validate_batch,
)
from m7etl.exceptions import ObjectNotFoundError, TransientStorageError, UnreadableFileError
from m7etl.storage.base import Storage

STATUS_OK = "ok"
STATUS_FAILED = "failed_threshold"
STATUS_QUARANTINED = "quarantined"
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "write_statistics": True}
PREFETCH_BATCHES = 2
# Validation kernels release the GIL, so batches can validate in parallel; with the reader
# and the writer threads busy, a second validator pays only on more than two cores (on two,
# it cost EPG 0.15 CPU-s for the same wall time; a 1,769 MB Lambda has one vCPU's worth).
VALIDATORS = 2 if (os.cpu_count() or 1) > 2 else 1


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
    lines_read: int = 0  # physical lines, header included: 1 + rows' lines + lines_blank
    lines_blank: int = 0  # lines holding no value (not rows), so every line is accounted for
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


DEFAULT_THRESHOLDS = Thresholds()


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def _convert(storage: Storage, key: str, contract: Contract, tmp: Path,
             result: FileResult) -> tuple[Path, Path]:
    """Stream the file into local silver and rejects Parquet files; fill the counters.

    A decoding error deep in the file (past the sniffed head) restarts the file: a UTF-8
    file is read again marking its undecodable bytes (those rows become rejects), any
    other with the contract's next encoding; when none is left the file is unreadable.
    Only decoding and parsing errors make it unreadable: an I/O, permission or disk-space
    error raises a retryable :class:`TransientStorageError` and leaves the file in place.
    """
    failed: list[str] = []
    mark = False
    while True:
        try:
            with storage.open_input(key) as first:
                head, is_gzip = peek(first)
        except OSError as exc:
            raise _io_failure(storage, key, tmp, exc) from exc
        dialect = sniff(head, contract, complete=len(head) < HEAD_BYTES, gzip=is_gzip,
                        exclude=failed)
        dialect.mark_undecodable = mark and dialect.utf8_proven
        try:
            with text_stream(storage.open_input(key), is_gzip) as stream:
                # A row too long for the block re-reads the file from its start: a new stream
                # (an S3 body or a gzip stream cannot rewind).
                paths = _write_outputs(stream, dialect, contract, key, tmp, result,
                                       reopen=lambda gz=is_gzip: text_stream(storage.open_input(key), gz))
        except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
            if isinstance(exc, pa.ArrowInvalid) and not _is_decoding_error(exc, dialect.encoding):
                raise UnreadableFileError("parse_error", f"The CSV cannot be parsed: {exc}.") from None
            if dialect.utf8_proven and not dialect.mark_undecodable:
                mark = True  # a broken row that is not UTF-8: read again, marking its bytes
            else:
                failed.append(dialect.encoding)
            continue
        except OSError as exc:
            if not (is_gzip and is_decoder_error(exc)):
                raise _io_failure(storage, key, tmp, exc) from exc
            raise UnreadableFileError("read_error", f"The file cannot be read to its end: {exc}.") from None
        result.bytes_read = storage.size(key)
        result.dialect = dialect.describe()
        result.missing_optional_columns = dialect.missing_optional
        result.extra_columns = dialect.extra
        return paths


def _io_failure(storage: Storage, key: str, tmp: Path, exc: OSError) -> TransientStorageError:
    """An I/O, permission or disk-space error says nothing about the file: it stays where it
    is, and the error is retryable (Lambda and Airflow retry it; a local run names it)."""
    where, cause = storage.describe(key), f"{type(exc).__name__}: {exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TransientStorageError(
            f"No space left in the temporary folder {tmp.parent} while processing {where} "
            f"({cause}); the file was left in place.", key=key,
            hint="Free space there (in Lambda: give the function more ephemeral storage), then "
                 "process the file again.")
    return TransientStorageError(
        f"Reading {where} failed ({cause}); the file was left in place: an I/O or permission "
        "error is not a bad file.", key=key,
        hint="Process it again (Lambda and Airflow retry this error); if it persists, check the "
             "storage and the file's permissions.")


def _is_decoding_error(exc: pa.ArrowInvalid, encoding: str) -> bool:
    """Arrow's error is about the text's encoding, not the CSV structure.

    Invalid UTF-8 in a well-formed row fails the string conversion ("invalid UTF8"). In a row
    with the wrong number of fields, Arrow cannot decode the row to hand it to the invalid-row
    callback and reports a parse error instead; the row it quotes then holds U+FFFD."""
    text = str(exc)
    return "utf8" in text.lower() or (encoding == "utf-8" and "\ufffd" in text)


def statistics_columns(contract: Contract) -> list[str]:
    """Columns whose min/max go into the silver footer: the typed ones and the line number,
    which engines reading silver prune on (a time range, a line). A string column's min/max
    cost an eighth of the write (Device: 0.13 of 0.64 CPU-s) and prune nothing useful."""
    return [c.name for c in contract.columns if c.type != "string"] + ["_line_number"]


def dictionary_columns(contract: Contract) -> list[str]:
    """Columns worth dictionary-encoding in Parquet: few distinct values by contract.

    Dictionary-encoding high-cardinality ids costs a third of the write time for nothing.
    """
    names = ["_source_key", "_warnings"]
    for c in contract.columns:
        bounded = (c.type == "integer" and c.rules.min is not None and c.rules.max is not None
                   and c.rules.max - c.rules.min <= 100_000)
        if c.rules.allowed or c.type in ("boolean", "date") or bounded:
            names.append(c.name)
    return names


def _prefetch(iterator: Iterator, depth: int) -> Iterator:
    """Run ``iterator`` in a thread, ``depth`` items ahead (Arrow's CSV parsing drops the GIL)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        """Queue ``entry`` unless the consumer has stopped (never blocks forever)."""
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not offer(("item", item)):
                    return
            offer(("end", done))
        except BaseException as exc:  # re-raised in the consumer
            offer(("error", exc))

    thread = threading.Thread(target=produce, name="m7-csv-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        thread.join(timeout=5)


def _write_outputs(stream, dialect: Dialect, contract: Contract, key: str, tmp: Path,
                   result: FileResult, reopen=None) -> tuple[Path, Path]:
    """Read, validate and write in a three-stage pipeline (reader and writer threads)."""
    schema = silver_write_schema(contract)
    silver_path, rejects_path = tmp / "silver.parquet", tmp / "rejects.parquet"
    read = valid = rejected = warned = 0
    decimal_comma = dialect.delimiter == ";"
    options = dict(PARQUET_OPTIONS, use_dictionary=dictionary_columns(contract),
                   write_statistics=statistics_columns(contract),
                   # line numbers ascend: deltas of 1 pack to a few bits (EPG: 2.1 MB and
                   # 0.04 CPU-s less than plain + zstd)
                   column_encoding={"_line_number": "DELTA_BINARY_PACKED"},
                   # no Arrow schema in the footer: the coded columns read back as strings
                   store_schema=False)
    with pq.ParquetWriter(silver_path, schema, **options) as silver, \
            pq.ParquetWriter(rejects_path, REJECTS_SCHEMA, **PARQUET_OPTIONS) as rejects, \
            ThreadPoolExecutor(VALIDATORS, thread_name_prefix="m7-validate") as validators, \
            ThreadPoolExecutor(1, thread_name_prefix="m7-parquet") as writer:

        def validate(batch):
            bad = [column_count_rejects(key, batch.invalid)] if batch.invalid else []
            if batch.undecodable:
                bad.append(encoding_rejects(key, batch.undecodable))
            taken_out = len(batch.invalid) + len(batch.undecodable)
            if batch.data is None or batch.data.num_rows == 0:
                return taken_out, None, bad
            out = validate_batch(contract, batch.data, batch.lines, key, decimal_comma=decimal_comma)
            return taken_out + batch.data.num_rows, out, bad + [out.rejects]

        in_flight: deque = deque()
        pending_write = None

        def collect() -> None:
            nonlocal read, valid, rejected, warned, pending_write
            rows, out, bad = in_flight.popleft().result()
            kept = out.valid.num_rows if out is not None else 0
            read, valid, rejected = read + rows, valid + kept, rejected + rows - kept
            warned += out.rows_warned if out is not None else 0
            if pending_write is not None:
                pending_write.result()  # one write in flight keeps memory flat
            pending_write = writer.submit(_write_batch, silver, rejects,
                                          out.valid if out is not None else None, bad)

        for batch in _prefetch(read_batches(stream, dialect, reopen=reopen), PREFETCH_BATCHES):
            in_flight.append(validators.submit(validate, batch))
            if len(in_flight) > VALIDATORS:
                collect()
        while in_flight:
            collect()
        if pending_write is not None:
            pending_write.result()
    result.rows_read, result.rows_valid = read, valid
    result.rows_rejected, result.rows_warned = rejected, warned
    conservation.account(key, result, silver_path, rejects_path, dialect.lines)
    return silver_path, rejects_path


def _write_batch(silver: pq.ParquetWriter, rejects: pq.ParquetWriter, valid: pa.Table | None,
                 rejected: list[pa.Table]) -> None:
    """Runs in the writer thread, the only one touching the two Parquet writers."""
    if valid is not None and valid.num_rows:
        silver.write_table(valid)
    for table in rejected:
        if table.num_rows:
            rejects.write_table(table)


def _quarantine(storage: Storage, key: str, day: str, result: FileResult, reason: str,
                message: str) -> FileResult:
    """Move the file to quarantine beside a note saying why, and drop what an earlier run of
    it published (silver, rejects, report): they describe a file no longer in raw/.

    The note is written first: a file in quarantine always has its reason (a move that
    fails leaves the file in raw/, and the next run writes the note again)."""
    target = layout.quarantine_key(day, key)
    result.status, result.reason = STATUS_QUARANTINED, f"{reason}: {message}"
    storage.write_bytes(layout.quarantine_reason_key(day, key), json.dumps({
        "source_key": key, "quarantine_key": target, "dataset": result.dataset,
        "reason": reason, "message": message,
    }, indent=2).encode())
    storage.move(key, target)
    result.outputs = {"quarantine": target}
    if result.dataset:
        _drop_stale(storage, [layout.silver_key(day, result.dataset, key),
                              layout.rejects_key(day, result.dataset, key),
                              layout.report_key(day, result.dataset, key)])
    return result


def _absent(storage: Storage, key: str, day: str, dataset: str | None) -> FileResult:
    """A key that is not there writes nothing. A file already quarantined (by an earlier
    run of this function) says so with the quarantine key and its first reason; any other
    absent key is an error naming it."""
    target = layout.quarantine_key(day, key)
    if not storage.exists(target):
        raise ObjectNotFoundError(
            f"{storage.describe(key)} does not exist, nor is it in quarantine ({target}); nothing "
            "was written.", key=key,
            hint="Check the key (raw/YYYYMMDD/<file>): the file was moved or deleted since the "
                 "run was planned, or never landed.")
    try:
        note = json.loads(storage.read_bytes(layout.quarantine_reason_key(day, key)))
        first = f"{note['reason']}: {note['message']}"
        dataset = note.get("dataset") or dataset
    except (ObjectNotFoundError, ValueError, KeyError, TypeError):
        first = "its reason note is missing or unreadable"
    return FileResult(source_key=key, dataset=dataset, date=day, status=STATUS_QUARANTINED,
                      reason=f"already quarantined as {target} ({first})",
                      outputs={"quarantine": target})


def _drop_stale(storage: Storage, keys: list[str]) -> None:
    storage.delete([k for k in keys if storage.exists(k)])


def process_raw_file(storage: Storage, key: str, registry: Registry,
                     thresholds: Thresholds = DEFAULT_THRESHOLDS, *,
                     tmp_dir: str | None = None) -> FileResult:
    """Validate one ``raw/YYYYMMDD/<file>`` into silver; never raises for bad input.

    It raises for a key that is not there (:class:`ObjectNotFoundError`, unless the file is
    already in quarantine: that result says so) and for a storage failure
    (:class:`TransientStorageError` when a retry can help): the file then stays where it is."""
    started = time.perf_counter()
    name = layout.base_name(key)
    day = layout.day_of_raw_key(key) or layout.day_in_name(name) or "00000000"
    found = registry.identify(name)
    if not storage.exists(key):
        return _absent(storage, key, day, found[0].dataset if found else None)
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
