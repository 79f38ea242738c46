"""Realistic, deterministic sample CSV files for any data contract, with faults on demand.

The generator is driven by the contract alone: each column's type, ``required``,
``allowed``, ``min``/``max``, ``pattern`` (a simple regex subset: literals, classes,
``\\d \\w .``, groups, ``|`` and the usual quantifiers), ``max_length``, date/timestamp
``format``, ``warn:`` zones and the row ``checks``. Clean rows pass every hard rule; a chosen
share of rows (``warn_rate``) falls in a ``warn:`` zone. The four built-in datasets get some
flavour on top (titles with commas, quotes and accents, channel names, weighted statuses,
EPG end = start + duration, viewing hour = hour of the session start...), but a flavour
never overrides a rule of the contract: its values are filtered and clipped by the rules.

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

Speed: values are drawn with numpy and turned into CSV text with Arrow compute kernels,
``CHUNK_ROWS`` rows at a time, streamed to the file, so memory stays flat.
"""

from __future__ import annotations

import gzip as gzip_module
import math
import os
import re
import string
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Column, Contract, Registry, load_registry
from m7etl.core.layout import parse_day
from m7etl.exceptions import UsageError

FAULT_KINDS = ("wrong_type", "missing_required", "out_of_range", "duplicate_key",
               "wrong_column_count", "bad_date")
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252")
DELIMITERS = (",", ";")
LINE_ENDINGS = ("\n", "\r\n")
CHUNK_ROWS = 50_000
MB = 1_000_000  # --size-mb counts decimal megabytes of CSV text (before gzip)
OPTIONAL_EMPTY_RATE = 0.02  # share of empty values in optional columns of clean rows
_EPOCH = datetime(1970, 1, 1)
_KEY_CAP = 1 << 62
_MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SampleOptions:
    rows: int | None = 1000  # exactly one of rows / size_mb
    size_mb: float | None = None
    seed: int = 0
    faults: dict[str, float] = field(default_factory=dict)  # kind -> rate in [0, 1]
    warn_rate: float = 0.0
    delimiter: str = ","
    encoding: str = "utf-8"  # "utf-8", "utf-8-sig" (BOM), "cp1252"
    line_ending: str = "\n"  # or "\r\n"
    gzip: bool = False
    multiline_rate: float = 0.0  # share of rows with a quoted newline in a free-text column


@dataclass
class InjectedFault:
    record_number: int
    kind: str
    column: str | None


@dataclass
class SampleManifest:
    dataset: str
    day: str
    path: str
    rows: int
    bytes: int
    faults: list[InjectedFault]
    warned_rows: int
    warned: list[InjectedFault] = field(default_factory=list)  # kind "warn", one per warned row
    multiline_rows: int = 0
    text_bytes: int = 0  # CSV bytes before gzip (equals ``bytes`` without gzip)

    def counts(self) -> dict[str, int]:
        """Injected faults by kind (every kind present, 0 if none)."""
        found = Counter(f.kind for f in self.faults)
        return {kind: found.get(kind, 0) for kind in FAULT_KINDS}

    def rejected_records(self) -> set[int]:
        """Record numbers a validator must reject (every fault except ``duplicate_key``)."""
        return {f.record_number for f in self.faults if f.kind != "duplicate_key"}

    def duplicate_records(self) -> set[int]:
        return {f.record_number for f in self.faults if f.kind == "duplicate_key"}

    @property
    def name(self) -> str:
        return Path(self.path).name


def applicable_faults(contract: Contract) -> tuple[str, ...]:
    """The fault kinds this contract has a column (or key) for."""
    return tuple(k for k in FAULT_KINDS if _fault_columns(contract, k) is not None)


def sample_file_name(contract: Contract, day: str, gzip: bool = False) -> str:
    """``<Dataset>_YYYYMMDD.csv`` (``.csv.gz``), checked against the contract's pattern."""
    suffix = ".csv.gz" if gzip else ".csv"
    for stem in (contract.dataset, contract.dataset.lower(), contract.dataset.upper()):
        name = f"{stem}_{day}{suffix}"
        if contract.match(name) == day:
            return name
    raise UsageError(
        f"Dataset {contract.dataset}: its file pattern {contract.pattern.pattern!r} does not "
        f"accept the name {contract.dataset}_{day}{suffix}.",
        hint="Use the default pattern <Dataset>_YYYYMMDD.csv(.gz) in the contract"
        + (" or drop --gzip." if gzip else "."),
    )


def write_sample(contract: Contract | str, day: str, out_dir: str | os.PathLike,
                 options: SampleOptions | None = None) -> SampleManifest:
    """Write one sample file for ``contract`` and ``day`` into ``out_dir``; return its manifest."""
    if isinstance(contract, str):
        contract = _lookup(load_registry(), contract)
    day = _check_day(day)
    options = options if options is not None else SampleOptions()
    _check_options(contract, options)
    gen = _Generator(contract, day, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / sample_file_name(contract, day, options.gzip)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as raw:
            sink = (gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                                         mtime=0) if options.gzip else raw)
            try:
                gen.write(sink)
            finally:
                if sink is not raw:
                    sink.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return SampleManifest(
        dataset=contract.dataset, day=day, path=str(path), rows=gen.rows_written,
        bytes=path.stat().st_size, faults=gen.faults, warned_rows=len(gen.warned),
        warned=gen.warned, multiline_rows=gen.multiline_rows, text_bytes=gen.text_bytes,
    )


def write_demo_set(out_dir: str | os.PathLike, day: str, seed: int = 7,
                   registry: Registry | None = None) -> list[SampleManifest]:
    """Write a varied landing folder for ``make demo`` and return one manifest per file.

    Every dataset of the registry gets one ``<Dataset>_<day>`` file with about 2% faults
    (all applicable kinds, about equally) and 3% warned rows, in mixed dialects so the
    reader meets them all (with the built-in contracts):

    * ``Device_<day>.csv`` - ``;`` delimiter, cp1252 (accented regions), LF;
    * ``EPG_<day>.csv`` - UTF-8 with BOM, CRLF, titles with commas, quotes, accents and
      (2% of rows) a quoted newline;
    * ``Viewing_<day>.csv.gz`` - gzip, UTF-8, LF, 5000 rows;
    * ``Channel_<day>.csv`` - plain ``,`` UTF-8 LF, but 20% faults: it fails the default
      5% quality gate (its silver is not promoted, the run reports it).

    Other contracts take the dialects in turn (the first free-text one gets the BOM/CRLF
    variant); the smallest snapshot dataset is the failing one. Two more files must end in
    quarantine without stopping the run; their names collide with no valid file:

    * ``Billing_<day>.csv`` - well-formed CSV of a dataset no contract knows;
    * ``Viewing_<day>.csv`` (the gzip dataset's name with the plain ``.csv`` suffix) -
      binary garbage (a zip header, NUL and undecodable bytes): neither UTF-8 nor cp1252.

    Unreadable files get a manifest with ``rows=0`` and no faults.
    """
    day = _check_day(day)
    registry = registry if registry is not None else load_registry()
    contracts = sorted(registry, key=lambda c: c.dataset)
    if not contracts:
        raise UsageError("The contract registry is empty.", hint="Add contract files and retry.")
    sizes = {"Device": 2000, "EPG": 1500, "Viewing": 5000, "Channel": 200}
    cp1252 = dict(delimiter=";", encoding="cp1252")
    bom = dict(encoding="utf-8-sig", line_ending="\r\n", multiline_rate=0.02)
    gz = dict(gzip=True)
    snapshots = [c for c in contracts if c.gold.kind == "snapshot"] or contracts
    failing = min(snapshots, key=lambda c: (sizes.get(c.dataset, 800), c.dataset)).dataset
    dialects: dict[str, dict] = {"Device": cp1252, "EPG": bom, "Viewing": gz}
    dialects = {k: v for k, v in dialects.items() if k in registry.contracts and k != failing}
    free = [c.dataset for c in contracts if c.dataset not in dialects and c.dataset != failing
            and any(_Col(col, 0, _Flavour(), 0).is_text for col in c.columns
                    if col.type == "string")]
    for variant in (bom, gz, cp1252):
        if variant in dialects.values():
            continue
        pick = [d for d in (free if variant is bom else []) + [c.dataset for c in contracts]
                if d not in dialects and d != failing]
        if pick:
            dialects[pick[0]] = variant
    manifests = []
    for i, contract in enumerate(contracts):
        kinds = applicable_faults(contract)
        rate = 0.2 if contract.dataset == failing else 0.02
        per_kind = round(rate / max(1, len(kinds)), 4)
        rows = sizes.get(contract.dataset, 800)
        if contract.primary_key:
            rows = min(rows, max(1, _key_space(contract) // 2))
        opts = SampleOptions(rows=rows, seed=seed + i, faults=dict.fromkeys(kinds, per_kind),
                             warn_rate=0.03, **dialects.get(contract.dataset, {}))
        manifests.append(write_sample(contract, day, out_dir, opts))
    out = Path(out_dir)
    rng = np.random.default_rng([seed, 99])
    unknown = next(n for n in ("Billing", "Invoices", "UnknownFeed")
                   if registry.identify(f"{n}_{day}.csv") is None)
    billing = out / f"{unknown}_{day}.csv"
    lines = ["invoice_id,subscriber_id,amount_eur,issued_on"]
    lines += [f"INV{n:07d},SUB{rng.integers(1e8):08d},{rng.integers(500, 9000) / 100:.2f},"
              f"{day[:4]}-{day[4:6]}-{day[6:]}" for n in range(1, 51)]
    billing.write_bytes(("\n".join(lines) + "\n").encode())
    zipped = [m for m in manifests if m.path.endswith(".gz")]
    victim = zipped[0] if zipped else manifests[0]
    garbage = out / f"{victim.dataset}_{day}.csv{'' if zipped else '.gz'}"
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    garbage.write_bytes(b"PK\x03\x04\x14\x00\x08\x00" + b"\x00\x81\x8d\x8f\x90\x9d" + noise)
    for p, ds in ((billing, unknown), (garbage, victim.dataset)):
        manifests.append(SampleManifest(dataset=ds, day=day, path=str(p), rows=0,
                                        bytes=p.stat().st_size, faults=[], warned_rows=0))
    return manifests


# --------------------------------------------------------------------------- checks


def _lookup(registry: Registry, dataset: str) -> Contract:
    for c in registry:
        if c.dataset.lower() == dataset.lower():
            return c
    known = ", ".join(sorted(c.dataset for c in registry))
    raise UsageError(f"Dataset '{dataset}' has no contract (known: {known}).",
                     hint="Pick one of the known datasets or add a contract file.")


def _check_day(day: str) -> str:
    try:
        return parse_day(str(day))
    except ValueError as exc:
        raise UsageError(f"Day {exc}.", hint="Give the day as YYYYMMDD, e.g. 20250501.") from None


def _check_options(contract: Contract, o: SampleOptions) -> None:
    def bad(what: str, hint: str) -> UsageError:
        return UsageError(f"Sample options for {contract.dataset}: {what}.", hint=hint)

    if (o.rows is None) == (o.size_mb is None):
        raise bad("give exactly one of rows or size_mb", "Pass --rows N or --size-mb M.")
    if o.rows is not None and (not isinstance(o.rows, int) or o.rows < 0):
        raise bad(f"rows {o.rows!r} is not a whole number >= 0", "Pass --rows 1000, say.")
    if o.size_mb is not None and not o.size_mb > 0:
        raise bad(f"size_mb {o.size_mb!r} must be > 0", "Pass --size-mb 10, say.")
    for kind, rate in o.faults.items():
        if kind not in FAULT_KINDS:
            raise bad(f"fault kind '{kind}' is unknown",
                      f"Use one of {', '.join(FAULT_KINDS)}.")
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise bad(f"fault rate {kind}={rate!r} is outside [0, 1]",
                      "Give a rate such as 0.02 (2%).")
        if rate > 0 and _fault_columns(contract, kind) is None:
            raise bad(f"fault kind '{kind}' cannot be injected (no column or key it applies to)",
                      f"Drop it; this contract supports {', '.join(applicable_faults(contract))}.")
    if sum(o.faults.values()) > 1:
        raise bad("the fault rates add up to more than 1", "Lower the rates.")
    for name, rate in (("warn_rate", o.warn_rate), ("multiline_rate", o.multiline_rate)):
        if not 0 <= rate <= 1:
            raise bad(f"{name} {rate!r} is outside [0, 1]", "Give a rate such as 0.02.")
    if o.delimiter not in DELIMITERS:
        raise bad(f"delimiter {o.delimiter!r} is not supported", "Use ',' or ';'.")
    if o.encoding.lower() not in ENCODINGS:
        raise bad(f"encoding {o.encoding!r} is not supported",
                  f"Use one of {', '.join(ENCODINGS)}.")
    if o.line_ending not in LINE_ENDINGS:
        raise bad(f"line ending {o.line_ending!r} is not supported", "Use '\\n' or '\\r\\n'.")


def _fault_columns(contract: Contract, kind: str) -> list[str] | None:
    """Columns a fault kind can hit (``[]`` for row-level kinds), or None if not applicable."""
    cols = contract.columns
    if kind == "wrong_type":
        names = [c.name for c in cols if c.type in ("integer", "float", "boolean")]
    elif kind == "missing_required":
        names = [c.name for c in cols if c.required]
    elif kind == "out_of_range":
        names = [c.name for c in cols if c.type != "boolean" and (
            c.rules.min is not None or c.rules.max is not None or c.rules.allowed)]
    elif kind == "bad_date":
        names = [c.name for c in cols if c.type in ("date", "timestamp")]
    elif kind == "duplicate_key":
        return [] if contract.primary_key else None
    else:  # wrong_column_count
        return []
    return names or None


# --------------------------------------------------------------------------- regex subset


_DIGITS = string.digits
_WORD = string.ascii_letters + string.digits + "_"
_ANY = string.ascii_letters + string.digits


class _PatternError(Exception):
    pass


@dataclass
class _Chars:
    chars: str


@dataclass
class _Group:
    alts: list[list[tuple[Any, int, int]]]


class _RegexParser:
    """Parses the regex subset into nested items ``(atom, min_count, max_count)``."""

    def __init__(self, text: str):
        if text.startswith("^"):
            text = text[1:]
        if text.endswith("$") and not text.endswith("\\$"):
            text = text[:-1]
        self.s, self.i = text, 0

    def parse(self) -> _Group:
        group = self.alternation()
        if self.i != len(self.s):
            raise _PatternError(f"unexpected {self.s[self.i]!r}")
        return group

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def take(self) -> str:
        ch = self.s[self.i]
        self.i += 1
        return ch

    def alternation(self) -> _Group:
        alts = [self.sequence()]
        while self.peek() == "|":
            self.take()
            alts.append(self.sequence())
        return _Group(alts)

    def sequence(self) -> list:
        items = []
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            lo, hi = self.quantifier()
            items.append((atom, lo, hi))
        return items

    def atom(self):
        ch = self.take()
        if ch == "(":
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.s.startswith("?P<", self.i):
                self.i = self.s.index(">", self.i) + 1
            elif self.peek() == "?":
                raise _PatternError("look-arounds are not supported")
            group = self.alternation()
            if self.peek() != ")":
                raise _PatternError("unbalanced parenthesis")
            self.take()
            return group
        if ch == "[":
            return _Chars(self.char_class())
        if ch == "\\":
            return _Chars(self.escape())
        if ch == ".":
            return _Chars(_ANY)
        if ch in "*+?{^$":
            raise _PatternError(f"unexpected {ch!r}")
        return _Chars(ch)

    def escape(self) -> str:
        ch = self.take()
        if ch == "d":
            return _DIGITS
        if ch == "w":
            return _WORD
        if ch == "s":
            return " "
        if ch.isalnum():
            raise _PatternError(f"escape \\{ch} is not supported")
        return ch

    def char_class(self) -> str:
        negate = self.peek() == "^"
        if negate:
            self.take()
        chars: list[str] = []
        first = True
        while True:
            if self.peek() is None:
                raise _PatternError("unterminated character class")
            ch = self.take()
            if ch == "]" and not first:
                break
            first = False
            if ch == "\\":
                chars.extend(self.escape())
                continue
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                self.take()
                end = self.take()
                if end == "\\":
                    end = self.take()
                chars.extend(chr(c) for c in range(ord(ch), ord(end) + 1))
            else:
                chars.append(ch)
        if negate:
            chars = [c for c in _ANY if c not in chars]
        unique = "".join(dict.fromkeys(chars))
        if not unique:
            raise _PatternError("empty character class")
        return unique

    def quantifier(self) -> tuple[int, int]:
        ch = self.peek()
        if ch == "?":
            lo, hi = 0, 1
        elif ch == "*":
            lo, hi = 0, 3
        elif ch == "+":
            lo, hi = 1, 3
        elif ch == "{":
            end = self.s.index("}", self.i)
            body = self.s[self.i + 1:end]
            if "," in body:
                a, b = body.split(",", 1)
                lo = int(a or 0)
                hi = int(b) if b.strip() else lo + 3
            else:
                lo = hi = int(body)
            self.i = end
        else:
            return 1, 1
        self.take()
        if self.peek() in ("?", "+"):  # lazy / possessive: same strings
            self.take()
        return lo, hi


def _gen_chars(rng: np.random.Generator, n: int, chars: str, lo: int, hi: int) -> pa.Array:
    if hi == 0 or n == 0:
        return pa.array(np.zeros(n, dtype="U1"))
    codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
    cells = codes[rng.integers(0, len(codes), (n, hi))]
    if lo < hi:
        lengths = rng.integers(lo, hi + 1, n)
        cells[np.arange(hi)[None, :] >= lengths[:, None]] = 0
    return pa.array(np.ascontiguousarray(cells).view(f"<U{hi}").ravel())


def _gen_group(rng: np.random.Generator, n: int, group: _Group) -> pa.Array:
    alts = [_gen_sequence(rng, n, seq) for seq in group.alts]
    if len(alts) == 1:
        return alts[0]
    return pc.choose(pa.array(rng.integers(0, len(alts), n).astype(np.int8)), *alts)


def _gen_sequence(rng: np.random.Generator, n: int, seq: list) -> pa.Array:
    parts = []
    for atom, lo, hi in seq:
        if isinstance(atom, _Chars):
            parts.append(_gen_chars(rng, n, atom.chars, lo, hi))
            continue
        reps = rng.integers(lo, hi + 1, n) if lo < hi else None
        for j in range(hi):
            part = _gen_group(rng, n, atom)
            if j >= lo and reps is not None:
                part = pc.if_else(pa.array(reps > j), part, "")
            parts.append(part)
    if not parts:
        return pa.array(np.zeros(n, dtype="U1"))
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")


class _Pattern:
    """Strings matching a simple regex: random ones, or distinct ones by index (for keys)."""

    def __init__(self, text: str):
        self.tree = _RegexParser(text).parse()
        self.radices: list[str] | None = None  # one character set per position
        if len(self.tree.alts) == 1 and all(isinstance(a, _Chars) for a, _, _ in self.tree.alts[0]):
            self.radices = [a.chars for a, _, hi in self.tree.alts[0] for _ in range(hi)]

    def random(self, rng: np.random.Generator, n: int) -> pa.Array:
        return _gen_group(rng, n, self.tree)

    @property
    def space(self) -> int:
        return math.prod(len(r) for r in self.radices) if self.radices is not None else 0

    def from_index(self, idx: np.ndarray, rng: np.random.Generator) -> pa.Array:
        """Distinct strings for distinct ``idx`` (< min(space, 2**62)); spare places random."""
        n = len(idx)
        if not self.radices:
            return pa.array(np.zeros(n, dtype="U1"))
        width = len(self.radices)
        cells = np.zeros((n, width), dtype=np.uint32)
        rest = idx.astype(np.uint64).copy()
        covered = 1
        for pos in range(width - 1, -1, -1):
            chars = np.frombuffer(self.radices[pos].encode("utf-32-le"), dtype=np.uint32)
            base = len(chars)
            if covered < _KEY_CAP:
                cells[:, pos] = chars[(rest % np.uint64(base)).astype(np.int64)]
                rest //= np.uint64(base)
                covered *= base
            else:
                cells[:, pos] = chars[rng.integers(0, base, n)]
        return pa.array(cells.view(f"<U{width}").ravel())


def _permute(i: np.ndarray, space: int, key: int) -> np.ndarray:
    """A keyed bijection of [0, space) (xorshift-multiply rounds and cycle walking)."""
    if space <= 1:
        return np.zeros_like(i, dtype=np.uint64)
    bits = max(2, (space - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    shift = np.uint64(max(1, bits // 2))
    mults = [np.uint64(((key * (2 * r + 3)) ^ 0x9E3779B97F4A7C15) & _MASK64 | 1) for r in range(3)]
    adds = [np.uint64((key * 0x632BE59BD9B4E019 + r) & _MASK64) for r in range(3)]
    x = i.astype(np.uint64)
    todo = np.ones(len(x), dtype=bool)
    with np.errstate(over="ignore"):
        while todo.any():
            y = x[todo]
            for m, a in zip(mults, adds, strict=True):
                y = ((y * m) + a) & mask
                y ^= y >> shift
            x[todo] = y
            todo[todo] = y >= np.uint64(space)
    return x


# --------------------------------------------------------------------------- value pools

_WORDS = ("soleil", "maison", "Paris", "été", "rivière", "marché", "château", "forêt", "Lyon",
          "océan", "café", "théâtre", "jardin", "école", "Noël", "histoire", "voyage", "cœur",
          "nuit", "ville", "Bretagne", "lumière", "musée", "fête", "saison", "Bruxelles")

_TITLES = (
    "Le Journal de 20h", "Astérix, le film", "Le 19/20", "Météo", "Top Chef",
    'Le "Grand" Débat', "Koh-Lanta", "C'est pas sorcier", "Questions pour un champion",
    "Des chiffres et des lettres", "Les Experts : Miami", "Plus belle la vie", "Zone interdite",
    "Envoyé spécial", "Thalassa", "Tour de France, 12e étape", "Ligue 1 : PSG – OM",
    "Le Bureau des légendes", "L'Amour est dans le pré", "Ça commence aujourd'hui",
    "Les Reines du shopping", "Fort Boyard", "Le Meilleur Pâtissier", "Faites entrer l'accusé",
    "Capital", "Secrets d'histoire", "Télématin", "Bienvenue chez les Ch'tis",
    "Intervilles", 'Cinéma : "Les Choristes"', "Mozart, l'opéra rock", "Dora l'exploratrice",
    "JT 13h", "Le Bourdon, épisode 3", "Les Simpson", "Journal télévisé (édition régionale)",
    "Roland-Garros : finale", "Quotidien", "Taratata", "Le Monde de Nemo",
)
_CHANNELS = (
    "TF1", "France 2", "France 3 Bretagne", "France 5", "Canal+", "M6", "Arte", "C8", "W9",
    "TMC", "BFM TV", "CNews", "LCI", "franceinfo:", "Gulli", "TV5MONDE", "RTL-TVI", "La Une",
    "Tipik", "VRT 1", "Canvas", "VTM", "Eurosport 1", "Ushuaïa TV", "Planète+", "Mezzo",
    "Télé Bruxelles", "Disney Channel", "MTV Hits", "Science & Vie TV", "Chérie 25", "RMC Story",
    "Paris Première", "Téva", "Canal+ Sport", "Ciné+ Frisson", "Nickelodeon", "Trace Urban",
)
_FIRMWARE = ("3.12.4", "3.12.5", "4.0.1", "4.1.0", "4.1.2", "5.0.0", "2.9.17", "4.2.3")


@dataclass
class _Flavour:
    pools: dict[str, tuple[tuple[str, ...], tuple[float, ...] | None]] = field(default_factory=dict)
    samplers: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = field(
        default_factory=dict)  # column -> (rng, n, day_start_s) -> raw values
    sequential_key: bool = False
    mutable: tuple[str, ...] = ()  # columns a duplicate_key row redraws
    derive: Callable[[dict, dict[str, Column]], None] | None = None


def _epg_derive(values: dict, cols: dict[str, Column]) -> None:
    if {"start_time", "end_time", "duration_s"} <= cols.keys() and all(
            cols[c].type == t for c, t in (("start_time", "timestamp"), ("end_time", "timestamp"),
                                           ("duration_s", "integer"))):
        values["end_time"] = values["start_time"] + values["duration_s"]


def _viewing_derive(values: dict, cols: dict[str, Column]) -> None:
    if not {"session_start", "session_end", "duration_s"} <= cols.keys():
        return
    if cols["session_start"].type != "timestamp" or cols["session_end"].type != "timestamp":
        return
    values["session_end"] = values["session_start"] + values["duration_s"]
    if "view_hour" in cols and cols["view_hour"].type == "integer":
        values["view_hour"] = (values["session_start"] // 3600) % 24


def _flavours() -> dict[str, _Flavour]:
    def tenths(mean, sd):
        return lambda rng, n, d0: np.rint(rng.normal(mean, sd, n) * 10).astype(np.int64)

    return {
        "Device": _Flavour(
            pools={
                "firmware_version": (_FIRMWARE, None),
                "status": (("active", "inactive", "faulty", "returned"), (0.85, 0.08, 0.04, 0.03)),
            },
            samplers={"signal_quality_pct": tenths(74, 14)},
            mutable=("firmware_version", "status", "signal_quality_pct", "region"),
        ),
        "EPG": _Flavour(
            pools={
                "title": (_TITLES, None),
                "rating": (("TP", "-10", "-12", "-16", "-18"), (0.7, 0.12, 0.1, 0.06, 0.02)),
            },
            samplers={
                "channel_id": lambda rng, n, d0: rng.integers(1, 151, n),
                "duration_s": lambda rng, n, d0: rng.choice(
                    np.array([600, 1200, 1800, 2700, 3600, 5400, 6300, 7200]), n),
                "start_time": lambda rng, n, d0: d0 + rng.integers(0, 288, n) * 300,
            },
            mutable=("title", "rating"),
            derive=_epg_derive,
        ),
        "Viewing": _Flavour(
            pools={"playback_mode": (("live", "timeshift", "replay", "vod"),
                                     (0.7, 0.1, 0.12, 0.08))},
            samplers={
                "channel_id": lambda rng, n, d0: rng.integers(1, 151, n),
                "duration_s": lambda rng, n, d0: np.rint(rng.lognormal(6.5, 1.1, n)).astype(int),
            },
            derive=_viewing_derive,
        ),
        "Channel": _Flavour(
            pools={"channel_name": (_CHANNELS, None),
                   "language": (("fr", "nl", "de", "en"), (0.6, 0.3, 0.04, 0.06))},
            samplers={"updated_at": lambda rng, n, d0: d0 - rng.integers(0, 400 * 86400, n),
                      "launched_on": lambda rng, n, d0: d0 // 86400 - rng.integers(400, 9000, n)},
            sequential_key=True,
            mutable=("package", "is_hd"),
        ),
    }


# --------------------------------------------------------------------------- columns


def _parse_temporal(column: Column, value: Any) -> int:
    """A date/timestamp bound as days (date) or seconds (timestamp) since 1970."""
    dt = datetime.strptime(str(value), column.format)
    if column.type == "date":
        return (dt - _EPOCH).days
    return int((dt - _EPOCH).total_seconds())


class _Col:
    """One column's values in a numeric domain, their text, and their faults."""

    def __init__(self, column: Column, day_start: int, flavour: _Flavour, seed: int):
        self.numeric = False  # values held as int64 units (days, seconds, 1/scale)
        self.c = column
        self.name = column.name
        self.type = column.type
        self.scale = 10 if column.type == "float" and column.name in flavour.samplers else 100
        self.pool: pa.Array | None = None
        self.weights: np.ndarray | None = None
        self.warn_pool: pa.Array | None = None
        self.pattern: _Pattern | None = None
        self.sampler = flavour.samplers.get(column.name)
        self.day_start = day_start
        self.is_text = False
        self.warn_kind: str | None = None
        if column.type in ("integer", "float", "date", "timestamp"):
            self._numeric_ranges()
            self.numeric = self.pool is None
        elif column.type == "string":
            self._string_setup(flavour, seed)

    # -- numeric types ------------------------------------------------------------
    def _to_units(self, value: Any, up: bool) -> int:
        if self.type in ("date", "timestamp"):
            return _parse_temporal(self.c, value)
        if self.type == "float":
            x = float(value) * self.scale
            return math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)
        return math.ceil(value) if up else math.floor(value)

    def _numeric_ranges(self) -> None:
        r, w = self.c.rules, self.c.warn
        lo = None if r.min is None else self._to_units(r.min, True)
        hi = None if r.max is None else self._to_units(r.max, False)
        d0 = self.day_start
        span = {"integer": 1000, "float": 1000 * self.scale, "date": 3650,
                "timestamp": 86400}[self.type]
        if self.type == "date":
            dflt = (d0 // 86400 - span, d0 // 86400)
        elif self.type == "timestamp":
            dflt = (d0, d0 + 86399)
        else:
            dflt = (0, span)
        if lo is None and hi is None:
            lo, hi = dflt
        elif lo is None:
            lo = min(dflt[0], hi - span) if hi >= dflt[0] else hi - span
        elif hi is None:
            hi = max(dflt[1], lo + span) if lo <= dflt[1] else lo + span
        self.lo, self.hi = lo, hi  # the generation range (inclusive): hard bounds or defaults
        self.hard_hi = None if r.max is None else hi
        wlo = None if w.min is None else self._to_units(w.min, True)
        whi = None if w.max is None else self._to_units(w.max, False)
        # flavour samplers are clipped to the hard bounds and warn limits only
        lows = [x for x in (None if r.min is None else lo, wlo) if x is not None]
        highs = [x for x in (None if r.max is None else hi, whi) if x is not None]
        self.clip_lo = max(lows) if lows else -(1 << 62)
        self.clip_hi = min(highs) if highs else 1 << 62
        clo, chi = max(lo, wlo) if wlo is not None else lo, min(hi, whi) if whi is not None else hi
        if r.max is None and whi is not None:  # make room above the warn limit
            self.hi = hi = max(hi, whi + max(1, whi - clo))
        if clo > chi:
            clo, chi = lo, hi
        # keep clean values within the flavour's / default window when it fits
        self.clo, self.chi = clo, chi
        self.warn_ranges = []
        if wlo is not None and wlo > lo:
            self.warn_ranges.append((lo, min(wlo - 1, hi)))
        if whi is not None and whi < hi:
            self.warn_ranges.append((max(whi + 1, lo), hi))
        self.warn_ranges = [(a, b) for a, b in self.warn_ranges if a <= b]
        if self.warn_ranges:
            self.warn_kind = "range"
        if r.allowed is not None:  # a choice among the allowed texts, as for strings
            def unit(text: str) -> int | None:
                try:
                    return self._to_units(float(text) if self.type == "float" else
                                          int(text) if self.type == "integer" else text, True)
                except ValueError:
                    return None

            def inside(u, a, b):
                return u is not None and (a is None or u >= a) and (b is None or u <= b)

            hard = [a for a in r.allowed if inside(unit(a), self._to_units(r.min, True)
                    if r.min is not None else None, self._to_units(r.max, False)
                    if r.max is not None else None)] or list(r.allowed)
            ok = [a for a in hard if inside(unit(a), wlo, whi)
                  and (w.allowed is None or a in w.allowed)] or hard
            self.pool = pa.array(ok)
            self.warn_pool = pa.array([a for a in hard if a not in ok] or ok)
            self.warn_kind = "allowed" if len(ok) < len(hard) else None

    # -- strings --------------------------------------------------------------------
    def _string_setup(self, flavour: _Flavour, seed: int) -> None:
        r, w = self.c.rules, self.c.warn
        maxlen = r.max_length
        if w.max_length is not None and (maxlen is None or w.max_length < maxlen):
            self.clean_maxlen = w.max_length
            if maxlen is None or maxlen > w.max_length:
                self.warn_kind = "length"
        else:
            self.clean_maxlen = maxlen
        self.maxlen = maxlen

        def fits(v: str) -> bool:
            return ((r.allowed is None or v in r.allowed)
                    and (r.pattern is None or re.search(r.pattern, v) is not None)
                    and (self.clean_maxlen is None or len(v) <= self.clean_maxlen)
                    and (w.allowed is None or v in w.allowed)
                    and (w.pattern is None or re.search(w.pattern, v) is not None))

        values: tuple[str, ...] = ()
        weights = None
        if self.name in flavour.pools:
            values, weights = flavour.pools[self.name]
            if weights is not None:
                weights = tuple(wt for v, wt in zip(values, weights, strict=True) if fits(v))
            values = tuple(v for v in values if fits(v))
        if not values and r.allowed is not None:
            values = tuple(v for v in r.allowed if fits(v)) or r.allowed
            weights = None
        if r.allowed is not None and w.allowed is not None:
            extra = [v for v in r.allowed if v not in w.allowed]
            if extra:
                self.warn_pool = pa.array(extra)
                self.warn_kind = "allowed"
        if values:
            self.pool = pa.array(list(values))
            if weights:
                wts = np.asarray(weights, dtype=float)
                self.weights = wts / wts.sum()
            return
        if r.pattern is not None:
            try:
                self.pattern = _Pattern(r.pattern)
            except (_PatternError, ValueError) as exc:
                raise UsageError(
                    f"Column {self.name}: the sample generator cannot produce values for the "
                    f"pattern {r.pattern!r} ({exc}).",
                    hint="Simplify the pattern (classes, literals, groups, quantifiers).",
                ) from None
            return
        # free text: phrases of French-looking words
        self.is_text = True
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode()), 1])
        phrases = []
        for _ in range(512):
            k = int(rng.integers(1, 5))
            words = [_WORDS[j] for j in rng.integers(0, len(_WORDS), k)]
            text = " ".join(words).capitalize()
            if rng.random() < 0.15:
                text = text.replace(" ", ", ", 1)
            phrases.append(text)
        limit = self.clean_maxlen
        if limit is not None:
            phrases = [p[:limit].rstrip() or p[:limit] for p in phrases]
        self.pool = pa.array(phrases)

    # -- keys ----------------------------------------------------------------------------
    @property
    def key_space(self) -> int:
        t = self.type
        if self.pool is not None and not self.is_text:
            return len(self.pool)
        if t in ("integer", "float", "date", "timestamp"):
            return max(0, self.chi - self.clo + 1)
        if t == "boolean":
            return 2
        if self.pool is not None and not self.is_text:
            return len(self.pool)
        if self.pattern is not None:  # patterns with groups are drawn at random: 1
            return self.pattern.space if self.pattern.radices is not None else 1
        return _KEY_CAP  # free text: a number is appended

    def from_index(self, idx: np.ndarray, rng: np.random.Generator):
        t = self.type
        if self.pool is not None and not self.is_text:
            return self.pool.take(pa.array(idx.astype(np.int64)))
        if t in ("integer", "float", "date", "timestamp"):
            return self.clo + idx.astype(np.int64)
        if t == "boolean":
            return idx.astype(bool)
        if self.pool is not None and not self.is_text:
            return self.pool.take(pa.array(idx.astype(np.int64)))
        if self.pattern is not None:
            if self.pattern.radices is None:
                return self.pattern.random(rng, len(idx))
            return self.pattern.from_index(idx, rng)
        prefix = "K"
        text = pc.binary_join_element_wise(prefix, pc.cast(pa.array(idx.astype(np.int64)),
                                                           pa.string()), "")
        return text

    # -- values ----------------------------------------------------------------------------
    def clean(self, rng: np.random.Generator, n: int):
        t = self.type
        if t in ("integer", "float", "date", "timestamp") and self.pool is None:
            if self.sampler is not None:
                v = np.asarray(self.sampler(rng, n, self.day_start), dtype=np.int64)
                return np.clip(v, self.clip_lo, self.clip_hi)
            return rng.integers(self.clo, self.chi + 1, n, dtype=np.int64)
        if t == "boolean":
            return rng.random(n) < 0.5
        if self.pool is not None:
            if self.weights is not None:
                idx = rng.choice(len(self.pool), n, p=self.weights)
            else:
                idx = rng.integers(0, len(self.pool), n)
            return self.pool.take(pa.array(idx))
        return self.pattern.random(rng, n)

    def warn_values(self, rng: np.random.Generator, n: int):
        if self.warn_kind == "range":
            which = rng.integers(0, len(self.warn_ranges), n)
            lo = np.array([a for a, _ in self.warn_ranges])[which]
            hi = np.array([b for _, b in self.warn_ranges])[which]
            return lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64).clip(0, hi - lo)
        if self.warn_kind == "allowed":
            return self.warn_pool.take(pa.array(rng.integers(0, len(self.warn_pool), n)))
        # "length": longer than the warn max_length, within the hard one
        target = self.clean_maxlen + 1 + rng.integers(0, 10, n)
        if self.maxlen is not None:
            target = np.minimum(target, self.maxlen)
        base = self.clean(rng, n).to_pylist()
        return pa.array([(v + " " + "x" * k)[:k] for v, k in zip(base, target.tolist(),
                                                                  strict=True)])

    def to_text(self, values) -> pa.Array:
        t = self.type
        if isinstance(values, pa.Array | pa.ChunkedArray):
            return values
        if t == "integer":
            return pc.cast(pa.array(values), pa.string())
        if t == "float":
            v = np.asarray(values, dtype=np.int64)
            digits = len(str(self.scale)) - 1
            whole = pc.cast(pa.array(np.abs(v) // self.scale), pa.string())
            frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(v) % self.scale), pa.string()), digits, "0")
            sign = pa.array(np.where(v < 0, "-", ""))
            dot = pa.array(np.full(len(v), "."))
            return pc.binary_join_element_wise(sign, whole, dot, frac, "")
        if t == "boolean":
            return pa.array(np.where(np.asarray(values), "true", "false"))
        if t == "date":
            if self.c.format == "%Y-%m-%d":  # a cast is ten times faster than strftime
                return pc.cast(pa.array(np.asarray(values, dtype=np.int32), pa.date32()),
                               pa.string())
            ts = pa.array(np.asarray(values, dtype=np.int64) * 86400, pa.timestamp("s"))
            return pc.strftime(ts, format=self.c.format)
        if t == "timestamp":
            ts = pa.array(np.asarray(values, dtype=np.int64), pa.timestamp("s"))
            if self.c.format == "%Y-%m-%d %H:%M:%S":
                return pc.cast(ts, pa.string())
            return pc.strftime(ts, format=self.c.format)
        return values

    def format_one(self, v: int) -> str:
        """One numeric-domain value as text (for faults)."""
        if self.type == "integer":
            return str(v)
        if self.type == "float":
            sign = "-" if v < 0 else ""
            digits = len(str(self.scale)) - 1
            return f"{sign}{abs(v) // self.scale}.{abs(v) % self.scale:0{digits}d}"
        return self.as_datetime(v).strftime(self.c.format)

    def as_datetime(self, v: int) -> datetime:
        """A date/timestamp unit as a datetime, kept within years 1000-9998."""
        low, high = datetime(1000, 1, 1) - _EPOCH, datetime(9998, 12, 31) - _EPOCH
        delta = timedelta(days=v) if self.type == "date" else timedelta(seconds=v)
        return _EPOCH + min(max(delta, low), high)


# --------------------------------------------------------------------------- faults

_WRONG_TYPE = {
    "integer": ("abc", "12x", "1.5.2", "douze", "#12"),
    "float": ("abc", "1.2.3", "douze", "--1", "5..0"),
    "boolean": ("maybe", "abc", "peut-être", "nope", "2"),
}
_NOT_ALLOWED = ("unknown", "other", "legacy", "zz-test", "inconnu", "TBD")


def _is_valid_temporal(text: str, fmt: str) -> bool:
    try:
        datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def _bad_date(col: _Col, rng: np.random.Generator, value: int) -> str:
    """An impossible date in the column's format, or a date in another format."""
    fmt = col.c.format
    when = col.as_datetime(value)
    y = when.year
    candidates = []
    for month, dday in ((2, 30), (4, 31), (13, 1), (2, 29 if y % 4 else 30), (6, 31), (0, 12)):
        text = fmt.replace("%Y", f"{y:04d}").replace("%y", f"{y % 100:02d}")
        text = text.replace("%m", f"{month:02d}").replace("%d", f"{dday:02d}")
        candidates.append(when.strftime(text))
    other = "%d/%m/%Y" if fmt.startswith("%Y-%m-%d") else "%Y-%m-%d"
    if col.type == "timestamp":
        other += " %H:%M"
    candidates += [when.strftime(other)] * 3
    for j in rng.permutation(len(candidates)):
        if not _is_valid_temporal(candidates[j], fmt):
            return candidates[j]
    return "2025-02-30"


def _out_of_range(col: _Col, rng: np.random.Generator) -> str:
    r = col.c.rules
    options = []
    if col.type in ("integer", "float", "date", "timestamp"):
        step = {"integer": 1000, "float": 1000 * col.scale, "date": 400, "timestamp": 86400 * 30}
        k = int(rng.integers(1, step[col.type] + 1))
        if r.max is not None:
            options.append(col.format_one(col._to_units(r.max, False) + k))
        if r.min is not None:
            options.append(col.format_one(col._to_units(r.min, True) - k))
    if r.allowed:
        lowered = {a.lower() for a in r.allowed}
        if col.type == "integer":
            nums = [int(a) for a in r.allowed if re.fullmatch(r"-?\d+", a)]
            options.append(str((max(nums) if nums else 0) + int(rng.integers(1, 50))))
        else:
            bad = [v for v in _NOT_ALLOWED if v.lower() not in lowered]
            if col.maxlen is not None:
                bad = [v for v in bad if len(v) <= col.maxlen]
            if bad:
                options.append(bad[int(rng.integers(0, len(bad)))])
    if not options:
        return "0"
    return options[int(rng.integers(0, len(options)))]


# --------------------------------------------------------------------------- generator


def _key_space(contract: Contract) -> int:
    day_start = 0
    flavour = _flavours().get(contract.dataset, _Flavour())
    cols = [_Col(contract.column(k), day_start, flavour, 0) for k in contract.primary_key]
    return math.prod(min(c.key_space, _KEY_CAP) for c in cols)


class _Generator:
    def __init__(self, contract: Contract, day: str, options: SampleOptions):
        self.contract = contract
        self.o = options
        self.day = day
        d = datetime.strptime(day, "%Y%m%d")
        self.day_start = int((d - _EPOCH).total_seconds())
        self.flavour = _flavours().get(contract.dataset, _Flavour())
        base = [options.seed, zlib.crc32(contract.dataset.encode()), int(day)]
        self.base_seed = base
        self.cols = [_Col(c, self.day_start, self.flavour, options.seed) for c in contract.columns]
        self.by_name = {c.name: c for c in self.cols}
        self.columns = {c.name: c for c in contract.columns}
        self.key_cols = [self.by_name[k] for k in contract.primary_key]
        self.key_spaces = [min(c.key_space, _KEY_CAP) for c in self.key_cols]
        space = math.prod(self.key_spaces) if self.key_cols else 0
        self.key_space = min(space, _KEY_CAP)
        self.key_perm = int(np.random.default_rng([*base, 7]).integers(1, 2**62))
        self.in_checks = {n for ch in contract.checks for n in (ch.column, ch.other)}
        self.warn_cols = [c.name for c in self.cols if c.warn_kind is not None]
        self.free_text = [c.name for c in self.cols if c.is_text or (
            c.type == "string" and c.name in self.flavour.pools and c.c.rules.allowed is None
            and c.c.rules.pattern is None)]
        self.fault_cols = {k: _fault_columns(contract, k) for k in FAULT_KINDS}
        self.rates = [(k, float(options.faults.get(k, 0))) for k in FAULT_KINDS]
        self.rows_written = 0
        self.text_bytes = 0
        self.faults: list[InjectedFault] = []
        self.warned: list[InjectedFault] = []
        self.multiline_rows = 0
        self.encoding = "utf-8" if options.encoding.lower().startswith("utf") else options.encoding

    # -- driving -----------------------------------------------------------------------
    def write(self, sink) -> None:
        o = self.o
        header = o.delimiter.join(_quote_one(n, o.delimiter) for n in self.contract.column_names)
        head = self._encode((header + o.line_ending).encode())
        if o.encoding.lower() == "utf-8-sig":
            head = b"\xef\xbb\xbf" + head
        sink.write(head)
        self.text_bytes = len(head)
        target = None if o.size_mb is None else int(o.size_mb * MB)
        chunk = 0
        while True:
            if target is None:
                n = min(CHUNK_ROWS, o.rows - self.rows_written)
            else:
                remaining = target - self.text_bytes
                if remaining <= 0:
                    break
                if self.rows_written == 0:
                    n = 200
                else:
                    per_row = (self.text_bytes - len(head)) / self.rows_written
                    n = min(CHUNK_ROWS, max(1, math.ceil(remaining / per_row)))
            if n <= 0:
                break
            data = self._chunk(chunk, self.rows_written, n)
            sink.write(data)
            self.text_bytes += len(data)
            self.rows_written += n
            chunk += 1

    def _encode(self, utf8: bytes) -> bytes:
        if self.encoding == "utf-8":
            return utf8
        try:
            return utf8.decode("utf-8").encode(self.encoding)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start:exc.end]
            raise UsageError(
                f"Dataset {self.contract.dataset}: the value character {bad!r} cannot be written "
                f"in {self.o.encoding}.", hint="Use --encoding utf-8 for this dataset.") from None

    # -- one chunk -----------------------------------------------------------------------
    def _chunk(self, index: int, start: int, n: int) -> bytes:
        o = self.o
        rng = np.random.default_rng([*self.base_seed, index])
        # 1. which rows are faulty, of which kind; which rows are warned
        kinds = np.full(n, -1, dtype=np.int8)
        counts = [_share(rate, start, n) for _, rate in self.rates]
        total = sum(counts)
        pool = np.arange(1, n) if n > 1 else np.arange(n)
        total = min(total, len(pool))
        picked = rng.choice(pool, total, replace=False) if total else np.array([], dtype=np.int64)
        at = 0
        for k, cnt in enumerate(counts):
            take = picked[at:at + cnt]
            kinds[take] = k
            at += len(take)
        clean = kinds < 0
        warn_col = np.full(n, -1, dtype=np.int16)
        warned_idx = np.array([], dtype=np.int64)
        if self.warn_cols and o.warn_rate > 0:
            w = min(_share(o.warn_rate, start, n), int(clean.sum()))
            if w:
                warned_idx = np.sort(rng.choice(np.flatnonzero(clean), w, replace=False))
                warn_col[warned_idx] = rng.integers(0, len(self.warn_cols), w)
        # 2. clean values of every row
        values: dict[str, Any] = {}
        if self.key_cols:
            if start + n > self.key_space:
                note = "" if all(c.pattern is None or c.pattern.radices is not None
                                 for c in self.key_cols) else (
                    "; key columns whose pattern has groups are drawn at random, not counted")
                raise UsageError(
                    f"Dataset {self.contract.dataset}: {start + n} rows need more distinct keys "
                    f"({', '.join(self.contract.primary_key)}) than the generator can make "
                    f"({self.key_space}{note}).", hint="Ask for fewer rows.")
            i = np.arange(start, start + n, dtype=np.uint64)
            p = i if self.flavour.sequential_key else _permute(i, self.key_space, self.key_perm)
            for col, sp in zip(reversed(self.key_cols), reversed(self.key_spaces), strict=True):
                values[col.name] = col.from_index(p % np.uint64(sp), rng)
                p = p // np.uint64(sp)
        for col in self.cols:
            if col.name not in values:
                values[col.name] = col.clean(rng, n)
        # 3. warn zones
        for j, name in enumerate(self.warn_cols):
            rows = np.flatnonzero(warn_col == j)
            if len(rows):
                values[name] = _scatter(values[name], rows, self.by_name[name].warn_values(
                    rng, len(rows)))
        # 4. duplicate keys: copy an earlier clean row, move its timestamps later
        dup_k = FAULT_KINDS.index("duplicate_key")
        dup_rows = np.flatnonzero(kinds == dup_k)
        dup_src = np.zeros(len(dup_rows), dtype=np.int64)
        if len(dup_rows):
            plain = clean & (warn_col < 0)
            plain_pos = np.flatnonzero(plain)
            earlier = np.searchsorted(plain_pos, dup_rows)  # plain rows before each dup
            ok = earlier > 0
            kinds[dup_rows[~ok]] = -1  # no clean row before it: the row stays clean
            dup_rows, earlier = dup_rows[ok], earlier[ok]
            dup_src = plain_pos[(rng.random(len(dup_rows)) * earlier).astype(np.int64)]
            ix = np.arange(n)
            ix[dup_rows] = dup_src
            for col in self.cols:
                if col.name not in self.flavour.mutable or col.name in self.contract.primary_key:
                    values[col.name] = _take(values[col.name], ix)
            ts = [c for c in self.cols if c.type == "timestamp" and c.numeric]
            if ts:
                delta = rng.integers(60, 6 * 3600, len(dup_rows))
                for c in ts:
                    if c.hard_hi is not None:
                        room = c.hard_hi - values[c.name][dup_rows]
                        delta = np.minimum(delta, np.maximum(room, 0))
                for c in ts:
                    v = values[c.name].copy()
                    v[dup_rows] += delta
                    values[c.name] = v
        # 5. flavour derivations, then the row checks
        if self.flavour.derive is not None:
            self.flavour.derive(values, self.columns)
        for col in self.cols:
            if col.numeric:
                values[col.name] = np.asarray(values[col.name], dtype=np.int64)
        self._enforce_checks(values, rng)
        # 6. text; empty optional values
        text: dict[str, pa.Array] = {}
        for col in self.cols:
            t = col.to_text(values[col.name])
            if (not col.c.required and col.name not in self.in_checks and OPTIONAL_EMPTY_RATE):
                empty = rng.random(n) < OPTIONAL_EMPTY_RATE
                if col.name in self.warn_cols:
                    empty &= warn_col != self.warn_cols.index(col.name)
                empty[dup_rows] = False
                if empty.any():
                    t = pc.if_else(pa.array(empty), "", t)
            text[col.name] = t
        # 7. quoted newlines in free text
        if o.multiline_rate > 0 and self.free_text:
            m = _share(o.multiline_rate, start, n)
            rows = np.sort(rng.choice(n, min(m, n), replace=False))
            which = rng.integers(0, len(self.free_text), len(rows))
            for j, name in enumerate(self.free_text):
                mine = rows[which == j]
                current = text[name].take(pa.array(mine)).to_pylist()
                keep = [k for k, v in enumerate(current) if v and " " in v]
                if keep:
                    text[name] = _scatter(text[name], mine[keep], pa.array(
                        [current[k].replace(" ", "\n", 1) for k in keep]))
                    self.multiline_rows += len(keep)
        # 8. value faults
        replace: dict[str, tuple[list[int], list[str]]] = {}
        fault_rows = np.flatnonzero(kinds >= 0)
        row_fault_col: dict[int, str | None] = {}
        for r in fault_rows.tolist():
            kind = FAULT_KINDS[kinds[r]]
            if kind in ("duplicate_key", "wrong_column_count"):
                row_fault_col[r] = self.contract.primary_key[0] if kind == "duplicate_key" else None
                continue
            names = self.fault_cols[kind]
            name = names[int(rng.integers(0, len(names)))]
            col = self.by_name[name]
            if kind == "wrong_type":
                choices = _WRONG_TYPE[col.type]
                bad = choices[int(rng.integers(0, len(choices)))]
            elif kind == "missing_required":
                bad = ""
            elif kind == "out_of_range":
                bad = _out_of_range(col, rng)
            else:
                bad = _bad_date(col, rng, int(values[name][r]) if col.numeric else
                                (self.day_start // 86400 if col.type == "date" else self.day_start))
            rows_, vals = replace.setdefault(name, ([], []))
            rows_.append(r)
            vals.append(bad)
            row_fault_col[r] = name
        for name, (rows_, vals) in replace.items():
            text[name] = _scatter(text[name], np.array(rows_), pa.array(vals, pa.string()))
        for r in fault_rows.tolist():
            self.faults.append(
                InjectedFault(start + r + 1, FAULT_KINDS[kinds[r]], row_fault_col[r]))
        for r in warned_idx.tolist():
            self.warned.append(InjectedFault(start + r + 1, "warn", self.warn_cols[warn_col[r]]))
        # 9. quote, join, line ends
        d = o.delimiter
        cells = [_quote(text[c.name], d) for c in self.cols]
        wcc = np.flatnonzero(kinds == FAULT_KINDS.index("wrong_column_count"))
        if len(cells) > 1:
            head = cells[0] if len(cells) == 2 else pc.binary_join_element_wise(*cells[:-1], d)
            rows_text = pc.binary_join_element_wise(head, cells[-1], d)
        else:
            head, rows_text = None, cells[0]
        if len(wcc):
            fewer = rng.random(len(wcc)) < 0.5 if head is not None else np.zeros(len(wcc), bool)
            short = wcc[fewer]
            long_ = wcc[~fewer]
            if len(short):
                rows_text = _scatter(rows_text, short, head.take(pa.array(short)))
            if len(long_):
                extra = pc.binary_join_element_wise(rows_text.take(pa.array(long_)), "extra", d)
                rows_text = _scatter(rows_text, long_, extra)
        rows_text = pc.binary_join_element_wise(rows_text, o.line_ending, "")
        return self._encode(_string_bytes(rows_text))

    def _enforce_checks(self, values: dict, rng: np.random.Generator) -> None:
        """Make every row satisfy the row checks, moving values within their clean ranges."""
        for ch in self.contract.checks:
            col, other = self.by_name[ch.column], self.by_name[ch.other]
            if not (col.numeric and other.numeric):
                continue
            op = ch.op
            step = {"integer": 10, "float": 10 * col.scale, "date": 30, "timestamp": 3600}[col.type]
            least = 1 if op in (">", "<") else 0
            up = op in (">", ">=")
            for name, base, src, sign in ((ch.column, ch.other, col, 1), (ch.other, ch.column,
                                                                          other, -1)):
                a, b = values[ch.column], values[ch.other]
                bad = {">": a <= b, ">=": a < b, "<": a >= b, "<=": a > b}[op]
                if not bad.any():
                    break
                delta = rng.integers(least, step + 1, int(bad.sum()))
                fixed = values[name].copy()
                moved = values[base][bad] + (delta if up == (sign > 0) else -delta)
                fixed[bad] = np.clip(moved, src.clo, src.chi)
                values[name] = fixed


def _share(rate: float, start: int, n: int) -> int:
    """How many of rows ``start .. start+n`` get an event of ``rate`` (exact overall)."""
    if rate <= 0:
        return 0
    return math.floor(rate * (start + n) + 0.5) - math.floor(rate * start + 0.5)


def _take(values, ix: np.ndarray):
    if isinstance(values, np.ndarray):
        return values[ix]
    return values.take(pa.array(ix))


def _scatter(values, rows: np.ndarray, new):
    if isinstance(values, np.ndarray):
        out = values.copy()
        out[rows] = np.asarray(new)
        return out
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows, kind="stable")
    if not isinstance(new, pa.Array | pa.ChunkedArray):
        new = pa.array(new)
    return pc.replace_with_mask(values, pa.array(mask), new.take(pa.array(order)))


_NEEDS_QUOTES = {",": '[",\n\r]', ";": '[";\n\r]'}


def _quote(arr: pa.Array, delimiter: str) -> pa.Array:
    need = pc.match_substring_regex(arr, _NEEDS_QUOTES[delimiter])
    if not pc.any(need).as_py():
        return arr
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(need, quoted, arr)


def _quote_one(value: str, delimiter: str) -> str:
    if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def _string_bytes(arr: pa.Array) -> bytes:
    """The concatenated UTF-8 text of a string array without nulls."""
    if isinstance(arr, pa.ChunkedArray):
        return b"".join(_string_bytes(c) for c in arr.chunks)
    if arr.type == pa.large_string():
        arr = arr.cast(pa.string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or len(arr) == 0:
        return b""
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


__all__ = [
    "FAULT_KINDS", "InjectedFault", "SampleManifest", "SampleOptions", "applicable_faults",
    "sample_file_name", "write_demo_set", "write_sample",
]
