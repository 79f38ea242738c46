"""Issue 12 (nothing lost, nothing stuck): killed, interrupted and overlapping local runs.

In-process runs stand for the cases where only the state of the data folder matters; real
processes (the CLI, patched to wait in raw -> silver) for locks, signals and a kill -9.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.core import layout
from m7etl.devtools.sample import SampleOptions, write_sample
from m7etl.local.runner import run_pipeline
from m7etl.storage import LocalStorage

DAYS = ("20250501", "20250502", "20250503")
DAY = DAYS[0]


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The runs' temp folder (work folders, leftovers) is the test's, never the machine's /tmp."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def land(data: Path, days=DAYS, dataset: str = "Device", seed: int = 0) -> None:
    for i, day in enumerate(days):
        write_sample(dataset, day, data / "landing", SampleOptions(rows=20, seed=seed + i))


def day_log(data: Path, day: str) -> dict:
    return json.loads((data / layout.log_key(day)).read_text())


def logged_files(data: Path, day: str) -> list[str]:
    return [f["source_key"] for f in day_log(data, day)["files"]]


def invoke(*args: str):
    return CliRunner().invoke(cli, ["run", "--local", *args], catch_exceptions=False)


class Killed(BaseException):
    """Stands for a kill in the middle of day 2. Unlike SIGKILL it unwinds (temp folders
    go), but the data folder is left as a kill leaves it: every file moved to raw/, day 1
    logged, day 2's first file in silver, no gold or log for days 2 and 3."""


def test_a_plain_run_finishes_every_day_a_killed_batch_left(tmp_path, registry):
    data = tmp_path / "data"
    land(data)
    storage = LocalStorage(data)

    def die_in_day_2(key: str, _result) -> None:
        if key.startswith(layout.raw_prefix(DAYS[1])):
            raise Killed

    with pytest.raises(Killed):
        run_pipeline(storage, registry, on_file=die_in_day_2, run_id="killed-run")
    assert not (data / "landing").exists() or not list((data / "landing").iterdir())
    # What the killed run moved is already in the logs, which say the days are not done.
    assert [day_log(data, d)["status"] for d in DAYS] == ["ok", "incomplete", "incomplete"]
    # A --date run of another day leaves them, and says so.
    dated = invoke("--no-load", "--data-dir", str(data), "--date", DAYS[0])
    assert f"Not processed by this --date run: {DAYS[1]}, {DAYS[2]} (raw files" in dated.output

    again = run_pipeline(storage, registry, run_id="next-run")

    assert [d.day for d in again.days] == list(DAYS[1:])  # not only the latest, not day 1 again
    for day in DAYS:
        log = day_log(data, day)
        assert logged_files(data, day) == [f"raw/{day}/Device_{day}.csv"]
        assert log["status"] == "ok" and log["totals"]["rows_read"] == 20
        assert [(i["source_key"], i["run_id"]) for i in log["ingested"]] == [
            (f"landing/Device_{day}.csv", "killed-run")]  # the killed run's record survived
        assert (data / layout.gold_key("Device", day)).is_file()


def test_date_moves_only_that_days_files_and_a_plain_run_takes_the_others(tmp_path, registry):
    data = tmp_path / "data"
    land(data, DAYS[:2])

    first = invoke("--no-load", "--data-dir", str(data), "--date", DAYS[0])

    assert first.exit_code == 0, first.output
    assert f"Day {DAYS[0]}: raw -> silver" in first.output and f"Day {DAYS[1]}" not in first.output
    assert (data / "landing" / f"Device_{DAYS[1]}.csv").is_file()
    assert not (data / "raw" / DAYS[1]).exists()
    assert (f"Left in landing/ for a run without --date: 1 file(s) of {DAYS[1]}: "
            f"Device_{DAYS[1]}.csv") in first.output
    second = run_pipeline(LocalStorage(data), registry)
    assert [d.day for d in second.days] == [DAYS[1]]
    assert logged_files(data, DAYS[1]) == [f"raw/{DAYS[1]}/Device_{DAYS[1]}.csv"]


def test_every_runs_record_of_what_it_moved_survives_later_runs_of_the_day(tmp_path, registry):
    data = tmp_path / "data"
    storage = LocalStorage(data)
    land(data, [DAY], seed=1)
    run_pipeline(storage, registry, run_id="run-a")
    land(data, [DAY], seed=2)  # the same file landed again, with new content
    land(data, [DAY], dataset="EPG")

    run_pipeline(storage, registry, run_id="run-b")

    log = day_log(data, DAY)
    assert [(i["source_key"], i["run_id"]) for i in log["ingested"]] == [
        (f"landing/Device_{DAY}.csv", "run-a"), (f"landing/Device_{DAY}.csv", "run-b"),
        (f"landing/EPG_{DAY}.csv", "run-b")]
    assert [r["run_id"] for r in log["runs"]] == ["run-a", "run-b"]
    assert sorted(logged_files(data, DAY)) == [f"raw/{DAY}/Device_{DAY}.csv", f"raw/{DAY}/EPG_{DAY}.csv"]


def test_an_earlier_log_that_is_not_a_log_is_kept_aside_not_overwritten(tmp_path, registry):
    data = tmp_path / "data"
    land(data, [DAY])
    (data / "logs").mkdir(parents=True)
    (data / layout.log_key(DAY)).write_text("{not json")

    result = invoke("--no-load", "--data-dir", str(data))

    assert result.exit_code == 0, result.output
    kept = [p.name for p in (data / "logs").iterdir() if ".unreadable-" in p.name]
    assert len(kept) == 1 and (data / "logs" / kept[0]).read_text() == "{not json"
    assert f"kept as logs/{kept[0]}" in result.output
    assert logged_files(data, DAY) == [f"raw/{DAY}/Device_{DAY}.csv"]


# -- real processes ---------------------------------------------------------------------------
# The CLI, with raw -> silver replaced by a stand-in that leaves a 1 MB file in its temp
# folder (as a conversion or a gold spill does), writes the ready file and waits: a run
# caught in the middle of its work, at a point the test can see.
HOLDER = r"""
import os, sys, tempfile, time
from pathlib import Path
import m7etl.local.runner as runner

READY = Path(sys.argv[1])

def in_the_middle(storage, key, registry, thresholds=None, *, tmp_dir=None):
    folder = Path(tempfile.mkdtemp(prefix="m7-r2s-", dir=tmp_dir))
    (folder / "spill.parquet").write_bytes(bytes(1_000_000))
    READY.write_text(str(os.getpid()))
    time.sleep(60)

runner.process_raw_file = in_the_middle
sys.argv = ["m7etl", *sys.argv[2:]]
from m7etl.cli import main
main()
"""


@dataclass
class Holder:
    proc: subprocess.Popen
    root: Path
    data: Path
    tmp: Path
    ready: Path

    def wait_ready(self) -> int:
        deadline = time.monotonic() + 60
        while not self.ready.exists() or not self.ready.read_text():
            if self.proc.poll() is not None:
                pytest.fail(f"the holding run ended early: {self.proc.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("the holding run never reached raw -> silver")
            time.sleep(0.05)
        return int(self.ready.read_text())


@pytest.fixture
def holder(tmp_path):
    """A real run of the CLI caught in the middle of its work (killed at the end if alive)."""
    root = tmp_path / "holder"
    data, tmp = root / "data", root / "tmp"
    tmp.mkdir(parents=True)
    land(data, [DAY])
    args = ["run", "--local", "--data-dir", str(data), "--warehouse-dir", str(root / "warehouse")]
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root / "ready"), *args],
                            env={**os.environ, "TMPDIR": str(tmp)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield Holder(proc, root, data, tmp, root / "ready")
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_a_run_on_a_busy_folder_is_refused_and_after_a_kill_9_the_next_one_takes_over_and_cleans(
        holder, tmp_path, monkeypatch):
    pid = holder.wait_ready()

    busy = invoke("--no-load", "--data-dir", str(holder.data))

    assert busy.exit_code == 1 and "Traceback" not in busy.output
    assert f"Another run (pid {pid}, started 20" in busy.output
    assert f"on host {socket.gethostname()}) is working on {holder.data.resolve()}." in busy.output
    # Its warehouse too is found busy by a run on another folder, before that run moves a file.
    other = tmp_path / "other"
    land(other, [DAY])
    warehouse = holder.root / "warehouse"
    refused = invoke("--data-dir", str(other), "--warehouse-dir", str(warehouse))
    assert refused.exit_code == 1, refused.output
    assert f"The local warehouse {warehouse} is in use by another run (pid {pid}," in refused.output
    assert (other / "landing" / f"Device_{DAY}.csv").is_file() and not (other / "raw").exists()

    left_in_tmp = [p for p in holder.tmp.rglob("*") if p.is_file() and p.stat().st_size == 1_000_000]
    holder.proc.kill()  # SIGKILL: no handler, no finally block runs; the kernel drops its locks
    holder.proc.communicate()
    # What a kill in the middle of an upload leaves (LocalStorage writes .m7tmp-*, then renames).
    partial = holder.data / "silver" / DAY / "Device" / ".m7tmp-upload"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(bytes(1000))
    monkeypatch.setattr(tempfile, "tempdir", str(holder.tmp))

    after = invoke("--no-load", "--data-dir", str(holder.data))

    assert len(left_in_tmp) == 1
    assert after.exit_code == 0, after.output
    assert "Removed 2 leftover(s) of interrupted runs (1.0 MB):" in after.output
    assert str(partial) in after.output
    assert not partial.exists() and list(holder.tmp.iterdir()) == []
    assert logged_files(holder.data, DAY) == [f"raw/{DAY}/Device_{DAY}.csv"]


class Terminated(BaseException):
    """What SIGTERM raises in this test process when no handler of the run is in place."""


def test_sigterm_takes_the_ctrl_c_path_exit_130_and_the_same_cleanup(tmp_path, private_tmp, monkeypatch):
    # A real SIGTERM to this process, in the middle of raw -> silver. The fallback handler
    # keeps pytest alive (the default action would end it) and fails the test if the run
    # does not handle the signal itself.
    import m7etl.local.runner as runner

    data = tmp_path / "data"
    land(data, [DAY])
    seen = {}

    def in_the_middle(storage, key, registry, thresholds=None, *, tmp_dir=None):
        seen["work"] = [p.name for p in private_tmp.iterdir()]
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the run")

    def fallback(_signum, _frame):
        raise Terminated

    monkeypatch.setattr(runner, "process_raw_file", in_the_middle)
    previous = signal.signal(signal.SIGTERM, fallback)
    try:
        result = CliRunner().invoke(cli, ["run", "--local", "--no-load", "--data-dir", str(data)],
                                    catch_exceptions=False)
    finally:
        assert signal.getsignal(signal.SIGTERM) is fallback  # the run put it back
        signal.signal(signal.SIGTERM, previous)

    assert result.exit_code == 130
    assert "Interrupted: what the run finished is kept" in result.output
    assert len(seen["work"]) == 1 and seen["work"][0].startswith(f"m7-run-{os.getpid()}-")
    assert list(private_tmp.iterdir()) == []  # the work folder went, as on Ctrl-C
    assert day_log(data, DAY)["status"] == "incomplete"
    monkeypatch.undo()
    assert invoke("--no-load", "--data-dir", str(data)).exit_code == 0  # the lock was released
    assert logged_files(data, DAY) == [f"raw/{DAY}/Device_{DAY}.csv"]


DUCKDB_HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
open(sys.argv[2], "w").close()
time.sleep(60)
"""


def test_a_warehouse_open_in_another_program_is_found_before_any_work(tmp_path):
    data, warehouse = tmp_path / "data", tmp_path / "warehouse"
    land(data, [DAY])
    warehouse.mkdir()
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", DUCKDB_HOLDER, str(warehouse / "M7_ETL.db"),
                             str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the DuckDB holder did not start"

        result = invoke("--data-dir", str(data), "--warehouse-dir", str(warehouse))
    finally:
        proc.kill()
        proc.wait()

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"The local warehouse {warehouse / 'M7_ETL.db'} is open in another program (" in result.output
    assert f"(PID {proc.pid})" in result.output
    assert (data / "landing" / f"Device_{DAY}.csv").is_file() and not (data / "raw").exists()


# -- what counts as a leftover ------------------------------------------------------------------
def _folder(root: Path, name: str, *, lock: bool = True, size: int = 10, age_s: float = 0) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "spill.parquet").write_bytes(bytes(size))
    if lock:
        (folder / ".lock").write_text("{}")
    stamp = time.time() - age_s
    for p in (*folder.iterdir(), folder):
        os.utime(p, (stamp, stamp))
    return folder


def test_only_work_folders_of_dead_runs_and_long_idle_stage_folders_are_removed(tmp_path):
    from m7etl.local.leftovers import LEGACY_IDLE_S, remove_abandoned
    from m7etl.local.lock import FolderLock

    root = tmp_path / "scan"
    root.mkdir()
    dead = _folder(root, "m7-run-999999998-dead", size=5000)  # lock file, nobody holds it
    live = _folder(root, f"m7-run-{os.getpid()}-live")
    starting = _folder(root, f"m7-run-{os.getpid()}-new", lock=False)  # its run is locking it now
    # Its lock file is made (O_CREAT) but not yet flocked by its live run: it was removed.
    racing = _folder(root, f"m7-run-{os.getpid()}-racing")
    gone = _folder(root, "m7-run-999999999-gone", lock=False)  # no such pid
    old_stage = _folder(root, "m7-s2g-old", lock=False, age_s=LEGACY_IDLE_S + 60)
    recent_stage = _folder(root, "m7-r2s-recent", lock=False, age_s=LEGACY_IDLE_S - 60)
    other = _folder(root, "m7-layer-x", lock=False, age_s=LEGACY_IDLE_S + 60)
    holder = FolderLock(live / ".lock")
    assert holder.try_acquire() is None  # a live run (flock is per open file, so this counts)
    try:
        removed = remove_abandoned(root)
    finally:
        holder.release()

    assert sorted((Path(r.path).name, r.size) for r in removed) == sorted(
        [(dead.name, 5000 + 2), (gone.name, 10), (old_stage.name, 10)])
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [live.name, starting.name, racing.name, recent_stage.name, other.name])


def test_a_file_landed_again_for_a_finished_day_is_not_lost_when_the_run_dies_after_moving_it(
        tmp_path, registry):
    data = tmp_path / "data"
    storage = LocalStorage(data)
    land(data, DAYS[:2], seed=1)
    run_pipeline(storage, registry)  # both days done
    land(data, DAYS[:1], seed=7)  # day 1's file again, corrected: same name, 20 other rows

    def die_after_the_moves(_days, _total) -> None:
        raise Killed

    with pytest.raises(Killed):
        run_pipeline(storage, registry, on_plan=die_after_the_moves)
    again = run_pipeline(storage, registry)

    assert [d.day for d in again.days] == [DAYS[0]]  # the day's log named the file already
    log = day_log(data, DAYS[0])
    assert log["status"] == "ok" and len(log["ingested"]) == 2 and len(log["runs"]) == 3
