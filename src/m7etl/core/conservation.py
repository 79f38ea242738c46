"""A file's accounting, checked against the files written, not only by construction.

The counters of raw -> silver are sums kept as batches pass; a writer that dropped a batch,
or a counter bumped twice, would leave them agreeing with each other and not with the
data. So once the silver and rejects files are closed, their own row counts are read back
(the silver Parquet footer, the rejects' distinct line numbers) and must equal the
counters, else the file fails loudly and nothing is published.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from m7etl.exceptions import ConservationError, M7Error, TransientStorageError


def account(key: str, result, silver_path: Path, rejects_path: Path, lines) -> None:
    """Fill ``result``'s line counts from the reader's ``lines`` (a ``csvread.LineTally``)
    and check that the written files hold ``result.rows_valid`` and ``rows_rejected`` rows.

    ``result`` is a ``raw_to_silver.FileResult``; M7Error (not retryable) on a mismatch."""
    result.lines_read, result.lines_blank = lines.physical, lines.blank
    try:
        in_silver = pq.ParquetFile(silver_path).metadata.num_rows
        rejects = pq.ParquetFile(rejects_path)
        # ParquetFile.read, not read_table (that imports pyarrow.dataset: 0.3 CPU-s); it
        # refuses a file of no row group, which holds no rejects.
        in_rejects = (rejected_rows(rejects.read(columns=["line_number"]))
                      if rejects.metadata.num_row_groups else 0)
    except OSError as exc:  # the temporary folder failing: a retry may succeed
        raise TransientStorageError(
            f"{key}: the silver or rejects file just written cannot be read back ({exc}); "
            "nothing was published and the raw file stays in raw/.", key=key,
            hint="Process the file again; if this repeats, check the temporary folder.") from exc
    except pa.ArrowException as exc:
        raise M7Error(f"{key}: the silver or rejects file just written cannot be read back ({exc}); "
                      "nothing was published and the raw file stays in raw/.",
                      hint="Process the file again; if this repeats, check the temporary folder.") from exc
    wrong = []
    if in_silver != result.rows_valid:
        wrong.append(f"the silver file holds {in_silver} rows, {result.rows_valid} were counted valid")
    if in_rejects != result.rows_rejected:
        wrong.append(f"the rejects file covers {in_rejects} rows, {result.rows_rejected} were counted "
                     "rejected")
    if wrong:
        raise ConservationError(
            f"{key}: rows lost between reading and writing: {'; '.join(wrong)}. Nothing was "
            "published and the raw file stays in raw/.",
            hint="This is a fault in m7etl, not in the file: keep the file and report it "
                 "(running it again gives the same result).")


def rejected_rows(rejects: pa.Table) -> int:
    """Rows a rejects table covers: its distinct line numbers (a row breaking several rules
    has one entry per rule, all on its line), plus its entries without a line number."""
    lines = rejects.column("line_number")
    return pc.count_distinct(lines, mode="only_valid").as_py() + lines.null_count
