"""``m7etl.local.stack`` (local-up / local-down / status) and ``m7etl local``.

The process manager is tested on two small stand-in servers (a Python process that prints
the ready line and listens, with a child of its own in another session): starting twice,
stopping exactly the recorded processes and their children, a process that dies while
starting or after, a port taken by another program, a pid file whose pid now belongs to
someone else. The real processes run in tests/local/test_local_e2e.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy.config import load_env
from m7etl.exceptions import DeployError
from m7etl.local import stack
from m7etl.local.stack import DIED, MOTO, MWAA, RUNNING, STOPPED, Layout

# A stand-in for a stack process: a child in its own session (like the DAG runs), the ready
# line, then a listening socket; SIGTERM stops it (unless told to ignore it).
FAKE = r'''
import os, signal, socket, subprocess, sys, time
name, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "crash":
    print("boom: cannot start", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
open(os.path.join(os.getcwd(), name + ".child"), "w").write(str(child.pid))
if mode == "stubborn":
    signal.signal(signal.SIGTERM, lambda *a: None)
else:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
print({"moto": "moto server on ", "mwaa": "MWAA stand-in ("}[name] + "fake", flush=True)
while True:
    time.sleep(0.1)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def modes():
    """How each FAKE process behaves: ok, crash (exits at once), stubborn (ignores SIGTERM)."""
    return {MOTO: "ok", MWAA: "ok"}


@pytest.fixture
def layout(tmp_path, monkeypatch, modes):
    """A layout whose processes are FAKE."""
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    lay = Layout(tmp_path / "local", free_port(), free_port())

    def command(layout, name):
        return [sys.executable, str(script), name, str(layout.port(name)), modes[name]]

    monkeypatch.setattr(stack, "command", command)
    yield lay
    stack.down(lay, grace=2)


def child_of(layout: Layout, name: str) -> psutil.Process:
    return psutil.Process(int((layout.root / f"{name}.child").read_text()))


def test_commands_are_this_python_running_the_stack_modules():
    lay = Layout(Path("/w/.work/local"), 5100, 5101)
    assert stack.command(lay, MOTO) == [
        sys.executable, "-m", "m7etl.local.moto.server", "--port", "5100", "--work-dir",
        "/w/.work/local/moto", "--warehouse-dir", "/w/.work/local/warehouse",
        "--mwaa-endpoint", "http://127.0.0.1:5101"]
    assert stack.command(lay, MWAA) == [
        sys.executable, "-m", "m7etl.local.standins.mwaa_runs", "--port", "5101",
        "--airflow-home", "/w/.work/local/airflow", "--dags", "/w/.work/local/dags",
        "--moto", "http://127.0.0.1:5100", "--work", "/w/.work/local/mwaa",
        "--region", "eu-west-1"]


def test_the_processes_get_fake_keys_and_no_profile_of_this_machine():
    env = stack.environment({"AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIAREAL",
                             "AIRFLOW_HOME": "/x", "PATH": "/bin"})
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert "AWS_PROFILE" not in env and "AIRFLOW_HOME" not in env and env["PATH"] == "/bin"
    assert env["AWS_CONFIG_FILE"] == os.devnull


def test_the_ports_come_from_the_local_table_of_the_repository_config():
    config = load_env("local", Path(__file__).resolve().parents[2] / "m7etl.toml")
    lay = stack.layout_for(config, Path("/tmp/x"))
    assert (lay.moto_port, lay.mwaa_port) == (5100, 5101)
    assert config.endpoints["mwaa_web"] == "http://127.0.0.1:5101"
    assert (config.data_bucket, config.code_bucket) == (
        "m7-etl-data-solocco-local", "m7-solocco-code-repository-local")


def test_an_endpoint_that_is_not_local_is_refused_naming_the_setting(tmp_path):
    path = tmp_path / "m7etl.toml"
    path.write_text('[local]\nendpoint_url = "https://s3.amazonaws.com"\n'
                    '[local.endpoints]\nmwaa = "http://127.0.0.1:5101"\n')
    with pytest.raises(DeployError) as caught:
        stack.layout_for(load_env("local", path))
    assert str(caught.value) == (
        f"{path}: [local] endpoint_url is 'https://s3.amazonaws.com', not a local endpoint "
        "http://127.0.0.1:<port>. The local stack serves on 127.0.0.1 only: set [local] "
        "endpoint_url = \"http://127.0.0.1:5100\" (see the [local] table of m7etl.toml).")


def test_up_starts_both_and_a_second_up_is_refused_naming_the_pids(layout):
    report = stack.up(layout, fresh=False, timeout=20)
    assert [(s.name, s.state) for s in report.services] == [(MWAA, RUNNING), (MOTO, RUNNING)]
    pids = {s.name: s.pid for s in report.services}
    for name in (MOTO, MWAA):
        record = json.loads(layout.pid_file(name).read_text())
        assert record["pid"] == pids[name] and psutil.pid_exists(pids[name])
        assert record["created"] == pytest.approx(psutil.Process(pids[name]).create_time())
    with pytest.raises(DeployError) as caught:
        stack.up(layout, fresh=False)
    assert str(caught.value) == (
        f"The local stack in {layout.root} is already running: mwaa (pid {pids[MWAA]}, port "
        f"{layout.mwaa_port}), moto (pid {pids[MOTO]}, port {layout.moto_port}). Use it as "
        "it is, or stop it first with make local-down (m7etl local down).")


def test_down_stops_exactly_the_recorded_processes_and_their_children(layout):
    report = stack.up(layout, fresh=False, timeout=20)
    procs = [psutil.Process(s.pid) for s in report.services]
    children = [child_of(layout, name) for name in (MOTO, MWAA)]
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        down = stack.down(layout, grace=5)
        assert [(s.name, s.state) for s in down.services] == [(MWAA, STOPPED), (MOTO, STOPPED)]
        for proc in procs + children:
            assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
        assert bystander.poll() is None, "a process local up did not start was stopped"
        assert not layout.pid_file(MOTO).exists() and not layout.pid_file(MWAA).exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(layout, modes):
    modes[MWAA] = "stubborn"
    stack.up(layout, fresh=False, timeout=20)
    started = time.monotonic()
    down = stack.down(layout, grace=1)
    assert {s.name: s.detail for s in down.services}[MWAA] == "killed after 1 s"
    assert time.monotonic() - started < 10


def test_a_process_that_dies_while_starting_is_named_and_the_other_one_stopped(layout, modes):
    modes[MOTO] = "crash"
    with pytest.raises(DeployError) as caught:
        stack.up(layout, fresh=False, timeout=20)
    message = str(caught.value)
    assert message.startswith("The local moto (pid ")
    assert f"stopped while starting. The end of {layout.log_file(MOTO)}:\nboom: cannot start" \
        in message
    assert message.endswith("Fix what the log says, then make local-up again.")
    assert [s.state for s in stack.status(layout).services] == [STOPPED, STOPPED]


def test_a_process_that_died_later_is_reported_with_its_log(layout):
    report = stack.up(layout, fresh=False, timeout=20)
    moto = next(s for s in report.services if s.name == MOTO)
    os.kill(moto.pid, signal.SIGKILL)
    psutil.Process(moto.pid).wait(5) if psutil.pid_exists(moto.pid) else None
    found = {s.name: s for s in stack.status(layout).services}
    assert found[MOTO].state == DIED and found[MOTO].pid == moto.pid
    assert found[MOTO].detail == "moto server on fake"
    assert found[MWAA].state == RUNNING
    down = {s.name: s for s in stack.down(layout).services}
    assert down[MOTO].detail == "had died already. The end of its log:\nmoto server on fake"
    assert down[MWAA].state == STOPPED


def test_a_pid_file_whose_pid_is_another_program_is_never_signalled(layout):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        layout.root.mkdir(parents=True)
        layout.pid_file(MOTO).write_text(json.dumps({"pid": other.pid, "created": 1.0}))
        assert {s.name: s.state for s in stack.status(layout).services}[MOTO] == DIED
        stack.down(layout, grace=1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_port_taken_by_another_program_is_refused(layout):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", layout.moto_port))
        taken.listen()
        with pytest.raises(DeployError) as caught:
            stack.up(layout, fresh=False, timeout=20)
    assert str(caught.value) == (
        f"Port {layout.moto_port} on 127.0.0.1 (the local moto) is taken by another program. "
        "Stop that program, or give the local stack other ports in m7etl.toml ([local] "
        "endpoint_url, [local.endpoints]).")


def test_local_status_says_stopped_and_exits_2(tmp_path, monkeypatch):
    path = tmp_path / "m7etl.toml"
    moto, mwaa = free_port(), free_port()
    path.write_text(f'[local]\nendpoint_url = "http://127.0.0.1:{moto}"\n'
                    f'[local.endpoints]\nmwaa = "http://127.0.0.1:{mwaa}"\n')
    monkeypatch.setenv(stack.LOCAL_DIR_ENV, str(tmp_path / "local"))
    result = CliRunner().invoke(cli, ["local", "status", "--config", str(path), "--output",
                                      "json"])
    assert result.exit_code == 2
    doc = json.loads(result.output[result.output.index("{"):])
    assert [(s["name"], s["state"], s["port"]) for s in doc["services"]] == [
        (MWAA, STOPPED, mwaa), (MOTO, STOPPED, moto)]


def test_local_up_with_a_remote_endpoint_is_one_line_and_exit_1(tmp_path):
    path = tmp_path / "m7etl.toml"
    path.write_text('[local]\nendpoint_url = "http://10.0.0.5:5100"\n'
                    '[local.endpoints]\nmwaa = "http://127.0.0.1:5101"\n')
    result = CliRunner().invoke(cli, ["local", "up", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {path}: [local] endpoint_url is 'http://10.0.0.5:5100', not a local endpoint "
        "http://127.0.0.1:<port>. The local stack serves on 127.0.0.1 only: set [local] "
        "endpoint_url = \"http://127.0.0.1:5100\" (see the [local] table of m7etl.toml).")
