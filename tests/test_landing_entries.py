"""Issue 12: entries of landing/ that are not plain readable files are named and skipped.

Each is reported with its reason, left where it is (never moved, nor what a link points
to), and never stops the other files or a later run.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.core import layout
from m7etl.devtools.sample import SampleOptions, write_sample
from m7etl.exceptions import StorageError
from m7etl.local.runner import run_pipeline
from m7etl.storage import LocalStorage

DAY = "20250501"
GOOD = f"Device_{DAY}.csv"
BAD = f"EPG_{DAY}.csv"  # a contract's name, so the old code tried to ingest it
ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """The runs' temp folder is the test's, never the machine's /tmp."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def _link_into_data_folder(data: Path, entry: Path) -> Path:
    target = data / "archive" / BAD
    write_sample("EPG", DAY, target.parent, SampleOptions(rows=5, seed=3))
    entry.symlink_to(Path("..") / "archive" / BAD)
    return target


def _link_outside(data: Path, entry: Path) -> Path:
    target = data.parent / "elsewhere" / BAD
    write_sample("EPG", DAY, target.parent, SampleOptions(rows=5, seed=3))
    entry.symlink_to(target)
    return target


def _unreadable(data: Path, entry: Path) -> None:
    write_sample("EPG", DAY, entry.parent, SampleOptions(rows=5, seed=3))
    entry.chmod(0)


def _folder_named_csv(_data: Path, entry: Path) -> None:
    entry.mkdir()
    (entry / "inner.csv").write_text("a\n1\n")


# kind -> (make the entry (returns the file a link points to, if any), words of its reason)
CASES = {
    "link into the data folder": (_link_into_data_folder,
                                  "a symbolic link (-> ../archive/EPG_20250501.csv, inside the data folder)"),
    "link outside the data folder": (_link_outside, "outside the data folder): moving it would move"),
    "dangling link": (lambda _d, e: e.symlink_to("gone.csv"),
                      "a dangling symbolic link (-> gone.csv: No such file or directory)"),
    "link loop": (lambda _d, e: e.symlink_to(e.name), "a symbolic link loop (-> EPG_20250501.csv)"),
    "FIFO": (lambda _d, e: os.mkfifo(e), "a FIFO (named pipe), not a regular file"),
    "directory named *.csv": (_folder_named_csv, "a directory, not a file"),
    "no read permission": (_unreadable, "no read permission (mode ----------"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_bad_entry_is_skipped_with_its_reason_and_the_other_files_go_on(kind, tmp_path, registry):
    if kind == "no read permission" and ROOT:
        pytest.skip("root reads a mode-000 file; the reason is tested on a stat result below")
    data = tmp_path / "data"
    write_sample("Device", DAY, data / "landing", SampleOptions(rows=20, seed=1))
    entry = data / "landing" / BAD
    make, reason = CASES[kind]
    target = make(data, entry)
    target_bytes = target.read_bytes() if target else None
    storage = LocalStorage(data)

    for _ in range(2):  # and a later run is not stuck on it
        result = run_pipeline(storage, registry)
        skipped = [(i.source_key, i.status) for i in result.ingested if i.source_key == f"landing/{BAD}"]
        assert skipped == [(f"landing/{BAD}", "skipped")]
        assert reason in next(i.reason for i in result.ingested if i.source_key == f"landing/{BAD}")
        assert [d.day for d in result.days] == [DAY]
        log = json.loads((data / layout.log_key(DAY)).read_text())
        assert [f["source_key"] for f in log["files"]] == [f"raw/{DAY}/{GOOD}"]

    assert os.path.lexists(entry)  # left where it is
    assert not (data / "raw" / DAY / BAD).exists() and not (data / "quarantine").exists()
    if target:
        assert target.read_bytes() == target_bytes  # the file a link points to: untouched


def test_the_run_names_every_bad_entry_and_strict_exits_2(tmp_path):
    data = tmp_path / "data"
    write_sample("Device", DAY, data / "landing", SampleOptions(rows=20, seed=1))
    names, targets = {}, {}
    for i, (kind, (make, reason)) in enumerate(CASES.items()):
        if kind == "no read permission" and ROOT:
            continue
        entry = data / "landing" / f"EPG_2025050{i + 2}.csv"
        target = make(data, entry)
        if target:
            targets[target] = target.read_bytes()
        names[entry.name] = reason.replace(BAD, entry.name) if kind == "link loop" else reason

    result = CliRunner().invoke(cli, ["run", "--local", "--no-load", "--data-dir", str(data), "--strict"],
                                catch_exceptions=False)

    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = {line.split(": ", 2)[1]: line for line in result.output.splitlines()
             if line.startswith("Skipped in landing/: ")}
    assert sorted(lines) == sorted(f"landing/{name}" for name in names)
    for name, reason in names.items():
        assert reason in lines[f"landing/{name}"]
    assert f"raw/{DAY}/{GOOD}" in (data / layout.log_key(DAY)).read_text()
    assert len(targets) == 2 and all(t.read_bytes() == b for t, b in targets.items())


@pytest.mark.skipif(ROOT, reason="root can read a mode-000 file: see the stat-result test")
def test_an_unreadable_file_is_found_by_opening_it(tmp_path):
    (tmp_path / "landing").mkdir()
    _unreadable(tmp_path, tmp_path / "landing" / BAD)
    assert "no read permission" in LocalStorage(tmp_path).unusable("landing/")[f"landing/{BAD}"]


def _stat(mode: int, uid: int = 1000) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, uid, 10, 0, 0, 0))


def test_the_reasons_from_stat_results():
    from m7etl.storage.local import entry_problem

    regular = _stat(stat.S_IFREG | 0o644)
    assert entry_problem(regular) is None
    assert entry_problem(_stat(stat.S_IFREG), readable=False) == (
        "no read permission (mode ----------, owner uid 1000); make it readable (chmod a+r) "
        "and run again")
    assert entry_problem(_stat(stat.S_IFDIR | 0o755), file_name=False) is None  # a plain sub-folder
    assert entry_problem(_stat(stat.S_IFSOCK | 0o644)).startswith("a socket, not a regular file")
    link = _stat(stat.S_IFLNK | 0o777)
    assert entry_problem(link, regular, link="/data/x.csv", outside=True).startswith(
        "a symbolic link (-> /data/x.csv, outside the data folder)")


def test_a_move_or_delete_of_a_link_never_touches_the_file_it_points_to(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.write_bytes("archive/x.csv", b"keep me")
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "x.csv").symlink_to(Path("..") / "archive" / "x.csv")

    with pytest.raises(StorageError, match="is a symbolic link; it was not moved"):
        storage.move("landing/x.csv", "raw/20250501/x.csv")
    assert storage.delete(["landing/x.csv"]) == 1

    assert storage.read_bytes("archive/x.csv") == b"keep me"
    assert not os.path.lexists(tmp_path / "landing" / "x.csv") and not (tmp_path / "raw").exists()


def test_a_landing_folder_with_only_bad_entries_says_which_and_why(tmp_path):
    (tmp_path / "landing").mkdir()
    os.mkfifo(tmp_path / "landing" / BAD)

    result = CliRunner().invoke(cli, ["run", "--local", "--no-load", "--data-dir", str(tmp_path)])

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"no usable CSV file and raw/ has no day. Skipped: landing/{BAD}: a FIFO" in result.output
