"""`m7etl package`: contents, reproducibility, size budget, and the zips running on their own.

The layer tests share one layer build (module fixture) made for *this* interpreter's
Python version (3.11 here) through the same code path as the deployed python3.12 layer
(``build_layer(python_version=...)``), so the handlers can be run from the unzipped
artefacts in a fresh, isolated interpreter. Wheels are cached in ``.work/wheels``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from m7etl import package
from m7etl.cli import cli
from m7etl.package import (
    Artefact,
    PackageError,
    build_all,
    build_function,
    build_layer,
    check_budget,
    check_shared_libraries,
    layer_requirements,
)

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
WHEELS = ROOT / ".work" / "wheels"


@pytest.fixture(scope="module")
def functions(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("functions")
    build_all(out, skip_layer=True)
    return out


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layer")
    build_layer(out, python_version=LOCAL_PY, wheel_cache=WHEELS)
    return out / "etl-dependencies.zip"


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


# -- function zips ---------------------------------------------------------------------
def test_function_zip_holds_the_handler_and_only_the_core_it_imports(functions):
    r2s = names(functions / "raw_to_silver.zip")
    assert r2s == sorted(r2s)
    assert {"raw_to_silver.py", "lambda_support.py", "m7etl/__init__.py", "m7etl/aws.py",
            "m7etl/raw_to_silver.py", "m7etl/csvread.py", "m7etl/validate.py",
            "m7etl/contracts/__init__.py", "m7etl/contracts/datasets/device.yaml"} <= set(r2s)
    for zip_name in package.HANDLERS:
        content = names(functions / f"{zip_name}.zip")
        assert f"{zip_name}.py" in content
        assert not [n for n in content if n.startswith(("m7etl/cli/", "m7etl/deploy"))]
        assert not [n for n in content if n.endswith(".pyc") or "__pycache__" in n]
    s3e = set(names(functions / "s3_event.zip"))
    assert {"m7etl/mwaa.py", "m7etl/ingest.py"} <= s3e and "m7etl/validate.py" not in s3e
    mnt = set(names(functions / "maintenance.zip"))
    assert "m7etl/maintenance.py" in mnt and "m7etl/contracts/__init__.py" not in mnt


def test_zip_entries_have_fixed_dates_and_normal_permissions(functions):
    with zipfile.ZipFile(functions / "s3_event.zip") as zf:
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644 and info.create_system == 3


def test_function_zips_are_byte_identical_across_builds(functions, tmp_path):
    again = build_all(tmp_path, skip_layer=True)
    for artefact in again.functions:
        assert artefact.path.read_bytes() == (functions / artefact.name).read_bytes()


def test_an_unchanged_zip_is_not_rewritten(tmp_path):
    first = build_function("maintenance", tmp_path)
    mtime = first.path.stat().st_mtime_ns
    second = build_function("maintenance", tmp_path)
    assert (first.changed, second.changed) == (True, False)
    assert second.path.stat().st_mtime_ns == mtime and second.sha256 == first.sha256


def _fake_project(tmp_path: Path, handler_source: str) -> Path:
    (tmp_path / "lambda_src").mkdir()
    (tmp_path / "lambda_src" / "bad.py").write_text(handler_source)
    core = tmp_path / "src" / "m7etl"
    (core / "cli").mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "helper.py").write_text("def f():\n    from m7etl.cli import output\n")
    (core / "cli" / "__init__.py").write_text("import click\n")
    (core / "cli" / "output.py").write_text("")
    return tmp_path


def test_reaching_cli_code_fails_the_build(tmp_path):
    root = _fake_project(tmp_path, "from m7etl import helper\n")
    with pytest.raises(PackageError, match=r"reaches m7etl\.cli.*m7etl\.helper <- bad"):
        build_function("bad", tmp_path / "out", root=root)


def test_a_library_missing_from_the_layer_fails_the_build(tmp_path):
    root = _fake_project(tmp_path, "import pandas\nimport json\nimport boto3\n")
    with pytest.raises(PackageError, match="bad imports 'pandas', which neither"):
        build_function("bad", tmp_path / "out", root=root, layer_imports={"pyarrow"})


def test_layer_requirements_follow_the_target_python_not_this_one():
    req = ROOT / "lambda_src" / "requirements-layer.txt"
    assert "numpy==1.26.4" in layer_requirements(req, "3.12", "x86_64")
    assert "numpy==2.1.3" in layer_requirements(req, "3.13", "arm64")
    assert not [r for r in layer_requirements(req, "3.12", "x86_64") if "boto" in r]


def test_budget_exceeded_names_the_artefact():
    fn = Artefact("raw_to_silver.zip", Path("x"), 1, 1_000, "0" * 64, 1, "function")
    lay = Artefact("etl-dependencies.zip", Path("y"), 1, 250_000_000, "0" * 64, 1, "layer")
    with pytest.raises(PackageError, match=r"raw_to_silver.zip \+ etl-dependencies.zip unzip "
                                           r"to 250,001,000 bytes, over the budget of 235,929,600"):
        check_budget([fn], lay)


def test_cli_prints_the_size_table(tmp_path, monkeypatch):
    result = CliRunner().invoke(cli, ["package", "--skip-layer", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["artefact", "zipped", "unzipped", "with", "layer", "file", "sha256"]
    assert [line.split()[0] for line in lines[2:6]] == [f"{h}.zip" for h in package.HANDLERS]
    monkeypatch.setattr(package, "BUDGET", 10_000)
    result = CliRunner().invoke(cli, ["package", "--skip-layer", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "over the budget of 10,000" in result.output
    result = CliRunner().invoke(cli, ["package", "--runtime", "python3.9"])
    assert result.exit_code == 2 and "python3.12" in result.output


# -- the layer -------------------------------------------------------------------------
@pytest.mark.slow
def test_layer_is_stripped_and_under_python(layer):
    content = names(layer)
    assert all(n.startswith("python/") for n in content)
    assert "python/pyarrow/parquet/__init__.py" in content and "python/yaml/__init__.py" in content
    assert not [n for n in content if "/tests/" in n or "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in content if "/include/" in n or n.endswith((".h", ".pyx", ".pxd"))]
    assert not [n for n in content if "flight" in n.rsplit("/", 1)[-1]]
    assert not [n for n in content if n.startswith(("python/boto3/", "python/botocore/"))]
    assert not [n for n in content if n.endswith(".dist-info/RECORD")]  # differs per build


@pytest.mark.slow
def test_layer_is_byte_identical_across_builds(layer, tmp_path, monkeypatch):
    other_tmp = tmp_path / "a-temporary-folder-with-a-longer-name"
    other_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(other_tmp))  # pip's temp paths must not leak in
    monkeypatch.setattr("tempfile.tempdir", None)
    again = build_layer(tmp_path, python_version=LOCAL_PY, wheel_cache=WHEELS)
    assert again.path.read_bytes() == layer.read_bytes()


@pytest.fixture(scope="module")
def unpacked(functions, layer, tmp_path_factory) -> dict[str, Path]:
    """The Lambda file system: /var/task (one function), /opt (the layer), /var/runtime."""
    base = tmp_path_factory.mktemp("lambda-fs")
    dirs = {"task": base / "task", "opt": base / "opt", "runtime": base / "runtime"}
    for name in package.HANDLERS:  # all four handlers, to run them in one interpreter
        with zipfile.ZipFile(functions / f"{name}.zip") as zf:
            zf.extractall(dirs["task"])
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(dirs["opt"])
    dirs["runtime"].mkdir()
    import boto3
    import botocore
    import dateutil
    import jmespath
    import s3transfer
    import six
    import urllib3

    for module in (boto3, botocore, s3transfer, jmespath, dateutil, urllib3):  # the SDK the
        source = Path(module.__file__).parent  # Lambda runtime provides
        os.symlink(source, dirs["runtime"] / source.name)
    os.symlink(six.__file__, dirs["runtime"] / "six.py")
    return dirs


@pytest.mark.slow
def test_layer_libraries_link_only_to_what_is_there(unpacked, tmp_path):
    check_shared_libraries(unpacked["opt"] / "python")
    copy = tmp_path / "pyarrow"
    copy.mkdir()
    for lib in (unpacked["opt"] / "python" / "pyarrow").glob("*.so*"):
        if "substrait" not in lib.name:
            os.link(lib, copy / lib.name)
    with pytest.raises(PackageError, match="needs libarrow_substrait"):
        check_shared_libraries(tmp_path)


FRESH = r"""
import json, sys
task, opt, runtime, event_file = sys.argv[1:5]
sys.path[:0] = [task, opt + "/python", runtime]

class Context:
    function_name = "m7-etl-fresh"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:m7-etl-fresh"
    aws_request_id = "fresh-1"

import maintenance, raw_to_silver, s3_event, silver_to_gold
out = {"s3_event": s3_event.handler(json.load(open(event_file)), Context())}
out["raw_to_silver"] = raw_to_silver.handler({"key": "raw/20250501/Device_20250501.csv"}, Context())
out["silver_to_gold"] = silver_to_gold.handler({"dataset": "Device", "date": "20250501"}, Context())
out["maintenance"] = maintenance.handler({"dry_run": True}, Context())
import aws_lambda_powertools, boto3, m7etl, numpy, pyarrow, yaml
out["origins"] = {m.__name__: m.__file__ for m in (m7etl, pyarrow, numpy, yaml, boto3,
                                                    aws_lambda_powertools, raw_to_silver)}
try:
    import click
    out["click"] = click.__file__
except ImportError:
    out["click"] = None
out["sys_path"] = sys.path
print("RESULT:" + json.dumps(out))
"""


@pytest.fixture
def fresh_services(tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer
    from mwaa_standin import MwaaStandin

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    standin = MwaaStandin(env_name="m7-etl-mwaa-test").start()
    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"m7-etl-data-solocco-fresh-{uuid.uuid4().hex[:8]}"  # moto state is per process
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield endpoint, standin, s3, bucket
    standin.stop()
    server.stop()


@pytest.mark.slow
def test_handlers_run_from_the_unzipped_artefacts_alone(unpacked, fresh_services, tmp_path):
    endpoint, standin, s3, bucket = fresh_services
    rows = ["device_id,subscriber_id,model,firmware_version,region,activation_date,"
            "last_seen_at,status,signal_quality_pct"]
    rows += [f"STB{i:09d},SUB{i:08d},M7-UHD4K,2.0.{i},Occitanie,2021-03-0{i + 1},"
             f"2025-05-01 08:00:0{i},active,9{i}" for i in range(4)]
    s3.put_object(Bucket=bucket, Key="landing/Device_20250501.csv",
                  Body=("\n".join(rows) + "\n").encode())
    event = tmp_path / "event.json"
    recorded = json.loads((ROOT / "tests" / "events" / "s3_put_single.json").read_text())
    recorded["Records"][0]["s3"]["bucket"]["name"] = bucket
    event.write_text(json.dumps(recorded))
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(tmp_path),
           "PYTHONPATH": str(unpacked["task"]), "LANG": "C.UTF-8",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
           "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL_MWAA": standin.endpoint,
           "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
           "M7_ENVIRONMENT": "test", "M7_DATA_BUCKET": bucket,
           "M7_MWAA_ENV_NAME": "m7-etl-mwaa-test", "M7_DAG_ID": "m7_etl_pipeline",
           "M7_RETENTION_DAYS_RAW": "30", "POWERTOOLS_METRICS_NAMESPACE": "M7Etl",
           "POWERTOOLS_SERVICE_NAME": "m7etl-fresh", "POWERTOOLS_LOG_LEVEL": "INFO"}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", FRESH, str(unpacked["task"]), str(unpacked["opt"]),
         str(unpacked["runtime"]), str(event)],
        cwd=unpacked["task"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    out = json.loads(line[len("RESULT:"):])
    origins = out["origins"]
    assert origins["m7etl"].startswith(str(unpacked["task"]))
    assert origins["raw_to_silver"].startswith(str(unpacked["task"]))
    for lib in ("pyarrow", "numpy", "yaml", "aws_lambda_powertools"):
        assert origins[lib].startswith(str(unpacked["opt"] / "python")), lib
    assert out["click"] is None  # nothing from the project's environment is reachable
    assert not [p for p in out["sys_path"] if str(ROOT / "src") in p or "site-packages" in p]
    assert out["s3_event"]["records"][0]["status"] == "raw"
    assert out["s3_event"]["triggers"][0]["status"] == "triggered"
    assert [r.kind for r in standin.requests] == ["invoke_rest_api"]
    assert (out["raw_to_silver"]["status"], out["raw_to_silver"]["rows_valid"]) == ("ok", 4)
    assert (out["silver_to_gold"]["status"], out["silver_to_gold"]["rows_out"]) == ("ok", 4)
    assert out["maintenance"]["dry_run"] is True and out["maintenance"]["deleted"] == 0
    emf = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{"_aws"')]
    assert any("RowsRead" in e for e in emf)
