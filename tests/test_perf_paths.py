"""The byte-level fast paths of validation give exactly what the general kernels give.

ISO dates and timestamps (the byte path and the strptime path both) are compared with a
plain-Python statement of the contract; fixed-width ASCII patterns and the JSON records of
the rejects with the code they replace, kept here as the oracle; all on generated inputs
aimed at the edges: impossible dates, leap years, seconds 60 and 61, padding, separators,
multi-byte and non-ASCII digits, wrong lengths, nulls, and batches longer than one chunk.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from m7etl.core import csvread
from m7etl.core import fastpaths as F
from m7etl.core import validate as V
from m7etl.core.contracts import load_registry, parse_contract

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONTRACT = parse_contract({
    "dataset": "Probe",
    "columns": [
        {"name": "day", "type": "date", "required": True},
        {"name": "at", "type": "timestamp"},
    ],
    "primary_key": ["day"],
    "gold": {"kind": "snapshot"},
}, "<probe>")
DAY, AT = CONTRACT.columns


# --------------------------------------------------------------------------- oracles


LAYOUTS = {"date": "0000-00-00", "timestamp": "0000-00-00 00:00:00"}  # 0: an ASCII digit


def python_oracle(column, values: list[str | None]) -> list:
    """What the ISO contract means, in plain Python: every character in place (ASCII digits),
    then whatever ``datetime.strptime`` accepts (a real day from year 1, seconds 0-59)."""
    layout, out = LAYOUTS[column.type], []
    for value in values:
        shaped = value is not None and len(value) == len(layout) and all(
            "0" <= c <= "9" if want == "0" else c == want for c, want in zip(value, layout, strict=True))
        try:
            parsed = datetime.strptime(value, column.format) if shaped else None
        except ValueError:
            parsed = None
        out.append(parsed.date() if parsed is not None and column.type == "date" else parsed)
    return out


def assert_same_temporal(column, values: list[str | None]) -> None:
    """Both paths (bytes, and strptime for buffers the bytes path cannot read) give the oracle."""
    text = pa.array(values, pa.string())
    for array in (text, text.slice(1) if len(text) > 1 else text):
        want = python_oracle(column, array.to_pylist())
        for parse in (V._parse_temporal, V._parse_temporal_strptime):
            got = parse(column, array)
            assert got.type == V.ARROW_TYPES[column.type]
            assert got.to_pylist() == want, (parse.__name__, array.to_pylist(), got, want)


# --------------------------------------------------------------------------- ISO dates and times

digits = st.sampled_from("0123456789")
odd = st.sampled_from(list("0123456789") + [" ", "\t", "-", ":", "/", "T", "+", "a", "\u0663",
                                            "\u00e9", "\n", "\x00", "\u00a0", "\uff11"])


@st.composite
def iso_like(draw, width: int) -> str:
    """ISO-shaped text: real or impossible fields, sometimes a character changed or moved."""
    year = draw(st.one_of(st.integers(0, 9999), st.sampled_from([0, 4, 100, 400, 1900, 2000, 2024, 2025])))
    month = draw(st.integers(0, 19))
    day = draw(st.one_of(st.integers(0, 39), st.sampled_from([28, 29, 30, 31])))
    hour, minute = draw(st.integers(0, 29)), draw(st.integers(0, 69))
    second = draw(st.one_of(st.integers(0, 69), st.sampled_from([59, 60, 61, 62])))
    if draw(st.booleans()):
        hour, minute = draw(st.sampled_from([(23, 59), (0, 0), (12, 59)]))
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"[:width]
    chars = list(text)
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        at = draw(st.integers(0, len(chars)))
        if action == "replace" and at < len(chars):
            chars[at] = draw(odd)
        elif action == "insert":
            chars.insert(at, draw(odd))
        elif chars and at < len(chars):
            del chars[at]
    return "".join(chars)


def column_values(width: int):
    return st.lists(st.one_of(iso_like(width), st.text(odd, max_size=width + 2), st.none(),
                              st.sampled_from(["", " " * width])), min_size=1, max_size=40)


@SETTINGS
@given(values=column_values(19))
@example(values=["2025-05-01 12:00:60", "2025-05-01 23:59:60", "2025-05-01 23:59:61",
                 "2025-02-29 10:00:00", "2024-02-29 10:00:00", "0000-02-29 00:00:00",
                 "1900-02-29 00:00:00", "9999-12-31 23:59:59", "2025-05-01  2:00:00",
                 "2025-05-01 24:00:00", "2025-05-40 10:00:00", "2025-13-01 00:00:00", None, ""])
def test_timestamps_fast_path_equals_strptime(values):
    assert_same_temporal(AT, values)


@SETTINGS
@given(values=column_values(10))
@example(values=["2025-02-29", "2024-02-29", "0000-02-29", "1900-02-29", "2000-02-29",
                 "2025-04-31", "2025-00-10", "2025-1-05", " 2025-1-5", "2025-05-0\u0663"])
def test_dates_fast_path_equals_strptime(values):
    assert_same_temporal(DAY, values)


def test_every_day_of_the_calendar_and_batches_longer_than_a_chunk():
    days = (np.datetime64("1999-12-25") + np.arange(4 * 366)).astype(str).tolist()
    times = [f"{h:02d}:{m:02d}:{s:02d}" for h in (0, 9, 23) for m in (0, 30, 59) for s in (0, 59, 60, 61)]
    stamps = [f"{d} {times[k % len(times)]}" for k, d in enumerate(days * 25)]
    stamps[::97] = ["2025-02-30 00:00:00"] * len(stamps[::97])
    stamps[::101] = ["2025-05-01T00:00:00"] * len(stamps[::101])
    assert len(stamps) > 2 * F.CHUNK
    assert_same_temporal(AT, stamps)
    dates = days * 10 + ["2023-02-29", "2023-2-28"] * 100
    assert_same_temporal(DAY, dates)


# --------------------------------------------------------------------------- fixed-width patterns

CONTRACT_PATTERNS = sorted({c.rules.pattern for contract in load_registry() for c in contract.columns
                            if c.rules.pattern})
EXTRA_PATTERNS = ["^[0-9a-f]{16}$", "^STB[0-9]{9}$", "^[A-Fa-f0-9]{8}$", "^\\d{4}-\\d{2}-\\d{2}$",
                  "^ab[c-e]{3}x\\.y{2}$", "^[a]{8}$", "^1234567[89]$", "^[0-9a-zA-Z]{12}$"]
UNSUPPORTED = ["^[0-9]+\\.[0-9]+\\.[0-9]+$", "[0-9]{8}", "^[0-9]{8}", "^[^a]{8}$", "^(ab){4}$",
               "^a{8,9}$", "^[0-9]{8}$|^x$", "(?i)^abcdefgh$", "^a.bcdefgh$", "^[0-9]{4}$",
               "^[\\d]{8}$", "^abcdefg?h$", "^[a-]{8}$", "^[z-a]{8}$"]


def assert_same_match(pattern: str, values: list[str | None]) -> None:
    text = pa.array(values, pa.string())
    for array in (text, text.slice(1) if len(text) > 1 else text):
        want = pc.match_substring_regex(array, pattern)
        got = V._match_pattern(array, pattern)
        assert got.equals(want), (pattern, values, got, want)


def near(pattern_width: int, alphabet: str):
    chars = st.sampled_from(alphabet + "gG/:@`[{\n\x00\u00e9\u0663 ")
    sized = st.text(chars, min_size=pattern_width - 1, max_size=pattern_width + 1)
    return st.lists(st.one_of(st.none(), sized, st.text(chars, max_size=3)), min_size=1, max_size=30)


def sample_match(pattern: str, rng: np.random.Generator) -> str:
    """A string the simple pattern matches (so mutations land next to real matches)."""
    out = []
    for atom, count in re.findall(r"(\[[^\]]*\]|\\.|[^\\\[{])(?:\{(\d+)\})?", pattern[1:-1]):
        allowed = [chr(c) for c in range(32, 127) if re.fullmatch(atom, chr(c))]
        out += [allowed[rng.integers(len(allowed))] for _ in range(int(count or 1))]
    return "".join(out)


@pytest.mark.parametrize("pattern", CONTRACT_PATTERNS + EXTRA_PATTERNS)
@settings(SETTINGS, max_examples=120)
@given(data=st.data())
def test_fixed_patterns_match_like_re2(pattern, data):
    spec = F.fixed_pattern(pattern)
    if spec is None:
        assert_same_match(pattern, data.draw(near(8, "0123456789.")))
        return
    width = spec[0]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    matches = [sample_match(pattern, rng) for _ in range(5)]
    assert all(re.fullmatch(pattern[1:-1], m) for m in matches)
    mutated = []
    for m in matches:
        chars = list(m)
        at = data.draw(st.integers(0, len(chars) - 1))
        chars[at] = data.draw(st.sampled_from("0aAfFgzZ9/:`{@\u0663\u00e9\n"))
        mutated.append("".join(chars))
    alphabet = "".join(sorted(set("".join(matches))))
    values = data.draw(near(width, alphabet)) + matches + mutated + [m + "\n" for m in matches[:1]]
    assert_same_match(pattern, data.draw(st.permutations(values)))


@pytest.mark.parametrize("pattern", UNSUPPORTED)
def test_other_patterns_are_left_to_re2(pattern):
    assert F.fixed_pattern(pattern) is None


def test_patterns_on_batches_longer_than_a_chunk():
    rng = np.random.default_rng(7)
    values = [f"STB{n:09d}" for n in rng.integers(0, 10**9, 3 * F.CHUNK)]
    values[::13] = ["STB12345678"] * len(values[::13])
    values[::17] = [None] * len(values[::17])
    values[::19] = ["STB١٢٣٤٥٦٧٨٩"] * len(values[::19])
    assert_same_match("^STB[0-9]{9}$", values)
    hexes = [f"{n:016x}" for n in rng.integers(0, 2**63, 2 * F.CHUNK)]
    hexes[::11] = ["0123456789ABCDEF"] * len(hexes[::11])
    assert_same_match("^[0-9a-f]{16}$", hexes)


# --------------------------------------------------------------------------- rejects


def json_oracle(contract, raw_cols, rows):
    table = pa.table({c.name: raw_cols[c.name] for c in contract.columns}).take(rows).to_pylist()
    return [json.dumps(r, ensure_ascii=False) for r in table]


@SETTINGS
@given(records=st.lists(st.tuples(
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.text(st.characters(max_codepoint=0x7f), max_size=8))), min_size=1, max_size=20))
def test_reject_records_are_what_json_dumps_writes(records):
    raw_cols = {"day": pa.array([a for a, _b in records], pa.string()),
                "at": pa.array([b for _a, b in records], pa.string())}
    rows = pa.array(np.arange(len(records))[::-1])
    assert V._json_records(CONTRACT, raw_cols, rows).to_pylist() == json_oracle(CONTRACT, raw_cols, rows)


def rejects_oracle(failures, raw_cols, contract, line_numbers, source_key):
    """The per-row Python construction the vectorised one replaces."""
    hits = [(f, V._indices(f.mask)) for f in failures]
    hits = [(f, idx) for f, idx in hits if len(idx)]
    if not hits:
        return V.REJECTS_SCHEMA.empty_table()
    rows = np.unique(np.concatenate([idx for _f, idx in hits]))
    raw_rows = pa.table({c.name: raw_cols[c.name] for c in contract.columns}).take(rows).to_pylist()
    record_of = {int(r): json.dumps(raw, ensure_ascii=False) for r, raw in zip(rows, raw_rows, strict=True)}
    out: dict[str, list] = {name: [] for name in V.REJECTS_SCHEMA.names}
    for f, idx in hits:
        values = raw_cols[f.column].take(pa.array(idx)).to_pylist() if f.column else [None] * len(idx)
        out["line_number"] += line_numbers[idx].tolist()
        out["column"] += [f.column] * len(idx)
        out["rule"] += [f.rule] * len(idx)
        out["raw_value"] += values
        out["message"] += [f.message] * len(idx)
        out["record"] += [record_of[i] for i in idx.tolist()]
    out["source_key"] = [source_key] * len(out["rule"])
    return pa.Table.from_pydict(out, schema=V.REJECTS_SCHEMA)


@SETTINGS
@given(n=st.integers(1, 30), data=st.data())
def test_rejects_table_is_built_as_before(n, data):
    values = st.one_of(st.none(), st.text(max_size=6))
    raw_cols = {"day": pa.array(data.draw(st.lists(values, min_size=n, max_size=n)), pa.string()),
                "at": pa.array(data.draw(st.lists(values, min_size=n, max_size=n)), pa.string())}
    masks = st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)
    columns = st.sampled_from(["day", "at", None])
    failures = [V._Failure(pa.array(data.draw(masks), pa.bool_()), data.draw(columns), f"rule{k}",
                           f"message {k}") for k in range(data.draw(st.integers(0, 4)))]
    lines = np.arange(2, 2 + n) * 3
    got = V._rejects(failures, raw_cols, CONTRACT, lines, "raw/20250501/Probe_20250501.csv")
    want = rejects_oracle(failures, raw_cols, CONTRACT, lines, "raw/20250501/Probe_20250501.csv")
    assert got.equals(want)
    union = np.zeros(n, dtype=bool)  # what validate_batch hands over: the rejected rows
    for f in failures:
        union |= pc.fill_null(f.mask, False).to_numpy(zero_copy_only=False)
    got = V._rejects(failures, raw_cols, CONTRACT, lines, "raw/20250501/Probe_20250501.csv",
                     np.flatnonzero(union))
    assert got.equals(want)


def test_oracle_is_the_contract_default_format():
    assert (DAY.format, AT.format) == ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S")
    assert python_oracle(AT, ["2025-05-01 12:00:00", "2025-05-01 12:00:60", "2025-05-01  2:00:00"]) == [
        datetime(2025, 5, 1, 12), None, None]


# --------------------------------------------------------------------------- floats

float_chars = st.sampled_from(list("0123456789....") + ["+", "-", "e", "E", " ", "a", ",", "\u00e9",
                                                          "\u0663", "\n"])


@SETTINGS
@given(values=st.lists(st.one_of(st.none(), st.text(float_chars, max_size=6),
                                 st.sampled_from(["", ".", "5.", ".5", "1.2.3", "." * 16, "1" + "." * 16,
                                                  "." * 17, "1e5", "-1.5", "+.5", "1e1234"])),
                       min_size=1, max_size=40))
def test_float_syntax_from_bytes_matches_the_regex(values):
    """Plain decimals are decided from the bytes; the oracle is the regex they replace."""
    text = pa.array(values, pa.string())
    for array in (text, text.slice(1) if len(text) > 1 else text):
        want = pc.match_substring_regex(array, V.FLOAT_RE)
        got = V._float_syntax(array)
        assert got.equals(want), (array.to_pylist(), got, want)


def test_float_syntax_on_a_column_without_text():
    text = pa.array([None, "", None], pa.string())
    assert V._float_syntax(text).to_pylist() == [None, False, None]


# --------------------------------------------------------------------------- empty values, lengths


length_texts = st.lists(st.one_of(st.none(), st.text(st.sampled_from(["a", "\u00e9", "\u20ac", " "]),
                                                     max_size=5)), min_size=0, max_size=30)


@SETTINGS
@given(values=length_texts)
def test_empty_values_and_longer_values_from_offsets_match_the_kernels(values):
    """Read from the offsets; the oracle is the kernel code they replace, also on a slice
    (offsets not starting at 0) and on an all-null column."""
    text = pa.array(values, pa.string())
    for array in (text, text.slice(1) if len(text) > 1 else text, pa.nulls(len(text), pa.string())):
        kernel = pc.fill_null(pc.equal(pc.binary_length(array), 0), True).to_numpy(zero_copy_only=False)
        got = F.empty_values(array)
        if kernel.any():
            assert got is not None and got.tolist() == kernel.tolist(), array.to_pylist()
        else:
            assert got is None, array.to_pylist()
        for limit in (0, 1, 2, 4):
            want = pc.fill_null(pc.greater(pc.utf8_length(array), limit), False)
            got = F.longer_than(array, limit)
            if pc.any(want).as_py():
                assert got is not None and got.equals(want), (array.to_pylist(), limit)
            else:
                assert got is None, (array.to_pylist(), limit)


@SETTINGS
@given(values=st.lists(st.one_of(st.none(), st.booleans()), max_size=40), start=st.integers(0, 17))
def test_boolean_bitmaps_convert_both_ways_like_pyarrow(values, start):
    """Unpacked and packed with numpy, at any bit offset (a slice), nulls read as False; the
    oracle is pyarrow's own conversion."""
    mask = pa.array(values, pa.bool_()).slice(min(start, len(values)))
    want = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    assert F.numpy_bools(mask).tolist() == want.tolist()
    assert F.valid_rows(mask).tolist() == pc.is_valid(mask).to_numpy(zero_copy_only=False).tolist()
    null = ~F.valid_rows(mask)
    assert F.arrow_bools(want, null).equals(pa.array(want, pa.bool_(), mask=null))
    assert F.arrow_bools(want).equals(pa.array(want, pa.bool_()))


REPEATED = parse_contract({
    "dataset": "Probe", "primary_key": ["k"], "gold": {"kind": "snapshot"},
    "columns": [
        {"name": "k", "type": "string", "required": True},
        {"name": "d", "type": "date", "required": True},
        {"name": "t", "type": "timestamp"},
        {"name": "dmy", "type": "date", "format": "%d/%m/%Y"},
        {"name": "n", "type": "integer", "min": 0},
        {"name": "f", "type": "float"},
        {"name": "b", "type": "boolean"},
        {"name": "v", "type": "string", "pattern": "^[0-9]+\\.[0-9]+$"},
    ]}, "<probe>")
REPEATED_VALUES = {  # the last value of each list is valid
    "d": ["2024-02-29", "2023-02-29", "2025-1-05", "", " 2025-01-05", "2025-01-05"],
    "t": ["2025-05-01 23:59:59", "2025-05-01 23:59:60", "2025-05-01 24:00:00", "", None,
          "2025-05-01T10:00:00", "\u0662025-05-01 10:00:00", "2025-05-01 10:00:00"],
    "dmy": ["29/02/2024", "30/02/2024", "1/2/2024", "", "01/02/2024"],
    "n": ["+5", "-3", " 7", "x", "", "1" * 19, "\u0663", "1"],
    "f": [".5", "1e3", "1,5", "", "abc", "-0.0", "1.2.3", "1.5"],
    "b": ["oui", "FAUX", "2", "", "yes"],
    "v": ["10.20", "1.2.3", "a.b", "", "1.", "1.2"],
}


def repeated_batch(n: int) -> pa.Table:
    columns = {"k": [f"k{i}" for i in range(n)]}
    for name, values in REPEATED_VALUES.items():
        # Mostly the last (valid) value, each edge value on some rows: some rows stay valid.
        columns[name] = [values[min((i * 7 + len(name)) % (3 * len(values)), len(values) - 1)]
                         for i in range(n)]
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def test_repeated_values_parsed_through_their_distinct_values_equal_the_direct_path(monkeypatch):
    """A batch of few distinct values is parsed (and pattern-matched) on its dictionary, then
    spread; the oracle is the same batch on the direct path. Every parser and its edge
    values (impossible dates, second 60, signs, padding, Unicode digits, nulls) are in it."""
    batch = repeated_batch(6000)
    assert F.few_distinct(batch.column("t").combine_chunks())
    assert not F.few_distinct(batch.column("k").combine_chunks())
    lines = np.arange(2, 6002)
    through_dictionary = V.validate_batch(REPEATED, batch, lines, "k")
    monkeypatch.setattr(V, "few_distinct", lambda values: False)
    direct = V.validate_batch(REPEATED, batch, lines, "k")
    assert through_dictionary.valid.equals(direct.valid)
    assert through_dictionary.rejects.equals(direct.rejects)
    assert 0 < through_dictionary.rows_rejected < 6000


def strings_with_bytes_in_null_slots(values: list[str], nulls: set[int]) -> pa.Array:
    """Legal Arrow that pa.array never builds: null slots holding bytes (kernels and
    from_buffers do), so a fast path must read the validity bitmap, not the lengths."""
    data = "".join(values).encode()
    offsets = np.cumsum([0] + [len(v.encode()) for v in values]).astype(np.int32)
    valid = np.array([i not in nulls for i in range(len(values))])
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(data),
                                       pa.py_buffer(np.packbits(valid, bitorder="little")), len(nulls))


def test_null_slots_with_bytes_and_masks_with_set_bits_under_nulls_read_as_null():
    """``pc.invert`` of a null leaves its data bit set, a null slot of a string array may
    hold bytes: both read through the validity bitmap, as the kernels read them."""
    mask = pc.invert(pa.array([True, None, False, None], pa.bool_()))
    assert F.numpy_bools(mask).tolist() == [False, False, True, False]
    assert F.numpy_bools(mask.slice(1)).tolist() == [False, True, False]
    text = strings_with_bytes_in_null_slots(["12", "abc", "", "7", "x"], {1, 4})
    for array in (text, text.slice(1)):
        kernel = pc.fill_null(pc.equal(pc.binary_length(array), 0), True).to_numpy(zero_copy_only=False)
        assert F.empty_values(array).tolist() == kernel.tolist()
    contract = parse_contract({
        "dataset": "Probe", "primary_key": ["k"], "gold": {"kind": "snapshot"},
        "columns": [{"name": "k", "type": "string", "required": True},
                    {"name": "n", "type": "integer"},
                    {"name": "v", "type": "string", "pattern": "^[0-9]+$", "max_length": 2}]}, "<probe>")
    values = ["12", "abcdefghijkl", "7", "8", "xyz"] * 1200  # 6,000 rows: the dictionary path too
    nulls = {i for i in range(len(values)) if i % 5 in (1, 4)}
    batch = pa.table({"k": [f"k{i}" for i in range(len(values))],
                      "n": strings_with_bytes_in_null_slots(values, nulls),
                      "v": strings_with_bytes_in_null_slots(values, nulls)})
    out = V.validate_batch(contract, batch, np.arange(2, len(values) + 2), "k")
    assert out.rows_rejected == 0 and out.valid.num_rows == len(values)
    assert out.valid.column("n").to_pylist()[:5] == [12, None, 7, 8, None]
    assert out.valid.column("v").to_pylist()[:5] == ["12", None, "7", "8", None]


def test_a_value_over_max_length_in_characters_is_rejected_and_one_at_it_is_kept():
    """The kernel runs only when some value has more bytes than the limit: 3 characters of
    2 bytes each (6 bytes) under a limit of 4 stay valid; 5 characters do not."""
    contract = parse_contract({
        "dataset": "Probe", "primary_key": ["k"], "gold": {"kind": "snapshot"},
        "columns": [{"name": "k", "type": "string", "required": True},
                    {"name": "t", "type": "string", "max_length": 4}]}, "<probe>")
    batch = pa.table({"k": list("abcde"),
                      "t": pa.array(["\u00e9\u00e9\u00e9", "abcd", "abcde", "", "\u00e9" * 4])})
    out = V.validate_batch(contract, batch, np.arange(2, 7), "k")
    assert out.valid.column("t").to_pylist() == ["\u00e9\u00e9\u00e9", "abcd", None, "\u00e9" * 4]
    assert out.rejects.column("line_number").to_pylist() == [4]
    assert out.rejects.column("rule").to_pylist() == ["max_length"]


def test_a_refused_value_beside_empty_ones_is_a_type_reject_and_the_empties_are_not():
    """The type failure is skipped when the nulls are exactly the empty values; one refused
    value among them (same null count as one more empty) is still found."""
    contract = parse_contract({
        "dataset": "Probe", "primary_key": ["k"], "gold": {"kind": "snapshot"},
        "columns": [{"name": "k", "type": "string", "required": True},
                    {"name": "n", "type": "integer"}, {"name": "f", "type": "float"}]}, "<probe>")
    batch = pa.table({"k": list("abcde"), "n": pa.array(["1", "", "x", "", "4"]),
                      "f": pa.array(["", "", "", "1.5", "2"])})
    out = V.validate_batch(contract, batch, np.arange(2, 7), "k")
    assert out.valid.column("n").to_pylist() == [1, None, None, 4]
    assert out.valid.column("f").to_pylist() == [None, None, 1.5, 2.0]
    assert list(zip(out.rejects.column("line_number").to_pylist(), out.rejects.column("rule").to_pylist(),
                    strict=True)) == [(4, "type")]


# --------------------------------------------------------------------------- UTF-8 evidence


UTF8_SEQUENCE = re.compile(  # the code _utf8_evidence replaced, kept as its oracle
    rb"[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}"
    rb"|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}"
    rb"|\xF4[\x80-\x8F][\x80-\xBF]{2}")


def utf8_evidence_oracle(body: bytes) -> bool:
    if body.isascii():
        return False
    chars = UTF8_SEQUENCE.findall(body)
    stray = sum(1 for b in body if b >= 0x80) - sum(len(c) for c in chars)
    return len(chars) >= stray


@SETTINGS
@given(body=st.lists(st.sampled_from([0x41, 0x0A, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80,
                                      0xED, 0xA0, 0xC0, 0xC1, 0xFF, 0xE9, 0xBF, 0xF4, 0x90, 0x8F,
                                      0xE0, 0xF5, 0xF1, 0xF3, 0xEE, 0xEF, 0xBE]), max_size=24).map(bytes))
@example(body=b"\xef\xbf\xbe\xf1\x80\x80\x80\xed\xa0\x80\xe0\x80\x80\xf4\x90\x80\x80")
def test_utf8_evidence_counts_sequences_and_stray_bytes_as_the_regex_did(body):
    """Overlong forms, surrogates, code points past U+10FFFF, sequences cut short: the
    decoder's escapes are the bytes the regex left unmatched."""
    assert csvread._utf8_evidence(body) == utf8_evidence_oracle(body), body


# --------------------------------------------------------------------------- the bench's gold SQL


@pytest.mark.parametrize("dataset", ["Device", "EPG", "Viewing", "Channel"])
def test_duckdb_gold_sql_gives_m7etl_gold(tmp_path, dataset):
    """The bench compares m7etl's gold with DuckDB's SQL derived from the contract; on a small
    generated day (duplicate keys and faults included) both hold exactly the same rows."""
    pytest.importorskip("duckdb")
    from m7etl.devtools.bench import contenders
    from m7etl.devtools.bench.cases import CASES, generate
    from m7etl.devtools.bench.checks import gold_checks, silver_checks

    case = next(c for c in CASES if c.name == dataset)
    generated = generate(case, tmp_path / "work", 0.2, 0.05)
    out = tmp_path / "out"
    silver = contenders.run_silver(generated.path, out)
    gold = contenders.run_gold(generated.path, out)
    duck = contenders.run_duckdb_gold(generated.path, out)
    checks = silver_checks(generated, silver, out) + gold_checks(
        load_registry()[dataset], silver, gold, duck, out)
    assert [c for c in checks if not c[1]] == []
    assert {c[0] for c in checks} >= {"conservation", "rejects", "gold = DuckDB"}
    assert silver["rejected"] > 0
    assert gold["rows"] < silver["valid"]  # duplicate keys superseded, or rows aggregated


def test_the_gold_check_catches_a_different_rule(tmp_path, monkeypatch):
    """The comparison can fail: DuckDB keeping the earliest row per key instead of the latest."""
    pytest.importorskip("duckdb")
    from m7etl.devtools.bench import contenders, gold_sql
    from m7etl.devtools.bench.cases import CASES, generate
    from m7etl.devtools.bench.checks import gold_checks

    generated = generate(CASES[0], tmp_path / "work", 0.2, 0.05)
    out = tmp_path / "out"
    silver = contenders.run_silver(generated.path, out)
    gold = contenders.run_gold(generated.path, out)
    query = gold_sql.gold_query
    monkeypatch.setattr(gold_sql, "gold_query", lambda *a: query(*a).replace(" DESC", " ASC"))
    duck = contenders.run_duckdb_gold(generated.path, out)
    failed = [c for c in gold_checks(load_registry()["Device"], silver, gold, duck, out) if not c[1]]
    assert [c[0] for c in failed] == ["gold = DuckDB"]
