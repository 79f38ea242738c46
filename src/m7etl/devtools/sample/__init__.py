"""Realistic, deterministic sample CSV files for any data contract, with faults on demand.

The generator is driven by the contract alone: each column's type, ``required``,
``allowed``, ``min``/``max``, ``pattern`` (a simple regex subset, see :mod:`.patterns`),
``max_length``, date/timestamp ``format``, ``warn:`` zones and the row ``checks``. Clean rows
pass every hard rule; a chosen share of rows (``warn_rate``) falls in a ``warn:`` zone. The
four built-in datasets get some flavour on top (:mod:`.flavours`), but a flavour never
overrides a rule of the contract: its values are filtered and clipped by the rules.

Determinism: the same contract, day, seed and options give a byte-identical file. The
*values* do not depend on the dialect (delimiter, encoding, line ending, gzip), so one seed
read back from a ``;``/cp1252/CRLF file and a ``,``/UTF-8/LF file gives the same rows.

Faults are injected one per faulty row at exact counts: after ``k`` rows, a kind with rate
``r`` has been injected ``round(r * k)`` times. Each is listed in the manifest with its
1-based data record number (record 1 is the first row after the header; a record may span
several lines when a value holds a quoted newline) and its column. A ``duplicate_key`` row
repeats the key of an earlier clean row of the same chunk with its timestamps moved later
(and a few free columns redrawn); the row itself is valid, so it is not in
:meth:`SampleManifest.rejected_records`.

Modules, lowest first: ``patterns`` (regex subset), ``flavours`` (built-in datasets),
``columns`` (one column's values and text), ``faults``, ``dialects`` (quoting, encodings),
``options`` (options, manifest, checks), ``generator`` (chunked rows), ``writer`` (the file),
``demo`` (the demo folder). Patch ``generator.CHUNK_ROWS``, not the copy re-exported here.
"""

from m7etl.devtools.sample.demo import write_demo_set
from m7etl.devtools.sample.dialects import DELIMITERS as DELIMITERS
from m7etl.devtools.sample.dialects import ENCODINGS as ENCODINGS
from m7etl.devtools.sample.dialects import LINE_ENDINGS as LINE_ENDINGS
from m7etl.devtools.sample.faults import FAULT_KINDS, applicable_faults
from m7etl.devtools.sample.generator import CHUNK_ROWS as CHUNK_ROWS
from m7etl.devtools.sample.generator import MB as MB
from m7etl.devtools.sample.generator import OPTIONAL_EMPTY_RATE as OPTIONAL_EMPTY_RATE
from m7etl.devtools.sample.options import InjectedFault, SampleManifest, SampleOptions
from m7etl.devtools.sample.writer import sample_file_name, write_sample

__all__ = [
    "FAULT_KINDS", "InjectedFault", "SampleManifest", "SampleOptions", "applicable_faults",
    "sample_file_name", "write_demo_set", "write_sample",
]
