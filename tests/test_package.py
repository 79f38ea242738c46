"""`m7etl package`: contents, reproducibility, size budget, and the zips running on their own.

The layer tests use the deployed artefacts: ``build_all`` (what ``m7etl package`` runs) with
its defaults, python3.12 x86_64, and for python3.13 when a 3.13 interpreter exists. Each
runtime is built once per session; wheels are cached in ``.work/wheels``. The handlers are
then run from the unzipped zips by a real CPython of the runtime's version (``$M7_PY312``,
``$PYENV_ROOT/versions/3.12*``, or ``python3.12`` on PATH), isolated from the source tree and
every site-packages; without such an interpreter that test is skipped, saying why.
"""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import subprocess
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy import artefacts as package
from m7etl.deploy.artefacts import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    Artefact,
    BuildResult,
    PackageError,
    build_all,
    build_function,
    build_glue,
    build_layer,
    check_budget,
    check_shared_libraries,
    layer_requirements,
)
from m7etl.deploy.glue import build_glue_bundle

# The modules that build the layer share its wheel cache (.work/wheels): one xdist worker.
pytestmark = pytest.mark.xdist_group("wheel-cache")

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".work" / "wheels"
NUMPY = {"python3.12": "1.26.4", "python3.13": "2.1.3"}  # lambda_src/requirements-layer.txt


@pytest.fixture(scope="session")
def functions(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("functions")
    build_all(out, skip_layer=True)
    return out


# -- function zips ---------------------------------------------------------------------
def test_function_zip_holds_the_handler_and_only_the_core_it_imports(functions):
    r2s = names(functions / "raw_to_silver.zip")
    assert r2s == sorted(r2s)
    assert {"raw_to_silver.py", "m7etl/__init__.py", "m7etl/storage/aws.py",
            "m7etl/orchestration/payloads.py", "m7etl/orchestration/settings.py",
            "m7etl/orchestration/clients.py",
            "m7etl/core/raw_to_silver.py", "m7etl/core/csvread.py", "m7etl/core/validate.py",
            "m7etl/core/contracts/__init__.py", "m7etl/core/contracts/datasets/device.yaml"} <= set(r2s)
    for zip_name in package.HANDLERS:
        content = names(functions / f"{zip_name}.zip")
        assert [n for n in content if "/" not in n] == [f"{zip_name}.py"]  # the handler alone
        assert not [n for n in content if n.startswith(("m7etl/cli/", "m7etl/deploy"))]
        assert not [n for n in content if n.endswith(".pyc") or "__pycache__" in n]
        assert "m7etl/orchestration/clients.py" in content
    s3e = set(names(functions / "s3_event.zip"))
    assert {"m7etl/orchestration/mwaa.py", "m7etl/orchestration/landing.py",
            "m7etl/orchestration/runs.py", "m7etl/core/ingest.py"} <= s3e
    assert "m7etl/core/validate.py" not in s3e and "m7etl/core/raw_to_silver.py" not in s3e
    mnt = set(names(functions / "maintenance.zip"))
    assert "m7etl/core/retention.py" in mnt and "m7etl/core/contracts/__init__.py" not in mnt
    assert "m7etl/orchestration/payloads.py" in mnt and "m7etl/orchestration/mwaa.py" not in mnt
    for zip_name in ("raw_to_silver", "silver_to_gold", "maintenance"):
        assert "m7etl/orchestration/landing.py" not in names(functions / f"{zip_name}.zip")


def test_zip_entries_have_fixed_dates_and_normal_permissions(functions):
    with zipfile.ZipFile(functions / "s3_event.zip") as zf:
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644 and info.create_system == 3


def test_function_zips_are_byte_identical_across_builds(functions, tmp_path):
    again = build_all(tmp_path, skip_layer=True)
    for artefact in again.functions:
        assert artefact.path.read_bytes() == (functions / artefact.name).read_bytes()


def test_glue_files_are_built_as_the_stack_reads_them(functions, tmp_path):
    """The template's Glue job reads glue/gold_to_snowflake.py and glue/m7etl_glue.zip."""
    template = (ROOT / "templates" / "etl-pipeline-mwaa.yaml").read_text()
    assert "/glue/gold_to_snowflake.py" in template and "/glue/m7etl_glue.zip" in template
    script = functions / "glue" / "gold_to_snowflake.py"
    assert script.read_bytes() == (ROOT / "glue_src" / "gold_to_snowflake.py").read_bytes()
    bundle = functions / "glue" / "m7etl_glue.zip"
    assert "m7etl/warehouse/job.py" in names(bundle)
    # `make glue-bundle` and `m7etl package` write the same bytes.
    assert build_glue_bundle(tmp_path / "m7etl_glue.zip").read_bytes() == bundle.read_bytes()


def test_unchanged_glue_files_are_not_rewritten(tmp_path):
    first = build_glue(tmp_path)
    stamps = [a.path.stat().st_mtime_ns for a in first]
    second = build_glue(tmp_path)
    assert [a.changed for a in first] == [True, True] and [a.changed for a in second] == [False, False]
    assert [a.path.stat().st_mtime_ns for a in second] == stamps
    assert [a.sha256 for a in second] == [a.sha256 for a in first]


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
    assert [line.split()[0] for line in lines[2:8]] == [f"{h}.zip" for h in package.HANDLERS] + [
        "m7etl_glue.zip", "gold_to_snowflake.py"]
    monkeypatch.setattr(package, "BUDGET", 10_000)
    result = CliRunner().invoke(cli, ["package", "--skip-layer", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "over the budget of 10,000" in result.output
    result = CliRunner().invoke(cli, ["package", "--runtime", "python3.9"])
    assert result.exit_code == 2 and "python3.12" in result.output


# -- the deployed builds ---------------------------------------------------------------
@pytest.fixture(scope="session")
def deployed(tmp_path_factory):
    """runtime -> (folder, BuildResult) of ``build_all``, the function ``m7etl package`` runs,
    with its defaults (x86_64, the default wheel cache); each runtime built once a session."""
    built: dict[str, tuple[Path, BuildResult]] = {}

    def build(runtime: str = DEFAULT_RUNTIME) -> tuple[Path, BuildResult]:
        if runtime not in built:
            out = tmp_path_factory.mktemp(f"build-{runtime}")
            built[runtime] = out, build_all(out, runtime=runtime, wheel_cache=WHEELS)
        return built[runtime]

    return build


@pytest.fixture(scope="session")
def layer(deployed) -> Path:
    """The python3.12 x86_64 etl-dependencies.zip, as deployed."""
    _out, result = deployed()
    assert result.layer is not None
    return result.layer.path


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


# -- the layer -------------------------------------------------------------------------
@pytest.mark.slow
def test_layer_is_stripped_and_under_python(layer):
    content = names(layer)
    assert all(n.startswith("python/") for n in content)
    assert "python/pyarrow/parquet/__init__.py" in content and "python/yaml/__init__.py" in content
    assert [n for n in content if n.startswith("python/numpy-1.26.4.dist-info/")]
    assert [n for n in content if n.endswith("cpython-312-x86_64-linux-gnu.so")]
    assert not [n for n in content if "cpython-3" in n and "cpython-312-x86_64" not in n]
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
    again = build_layer(tmp_path, wheel_cache=WHEELS)
    assert again.path.read_bytes() == layer.read_bytes()


SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@pytest.fixture(scope="session")
def runtime_sdk(tmp_path_factory) -> Path:
    """/var/runtime: the SDK the Lambda runtime provides (boto3 and its dependencies),
    symlinked from this venv. Only pure Python is accepted, so that a 3.12 or 3.13
    interpreter can load it; a compiled module here would fail this fixture."""
    import importlib

    runtime = tmp_path_factory.mktemp("runtime")
    for name in SDK:
        source = Path(importlib.import_module(name).__file__)
        if source.name == "__init__.py":
            source = source.parent
            compiled = [p.name for p in source.rglob("*") if p.suffix in (".so", ".pyd")]
            assert not compiled, f"{name} is not pure Python: {compiled[:3]}"
        os.symlink(source, runtime / source.name)
    return runtime


@pytest.fixture(scope="session")
def lambda_fs(deployed, runtime_sdk, tmp_path_factory):
    """runtime -> the Lambda file system: one task folder per function zip (as /var/task
    holds one function), ``opt`` (the layer), ``runtime`` (the SDK)."""
    made: dict[str, dict[str, Path]] = {}

    def unpack(runtime: str = DEFAULT_RUNTIME) -> dict[str, Path]:
        if runtime not in made:
            _out, result = deployed(runtime)
            base = tmp_path_factory.mktemp(f"lambda-fs-{runtime}")
            fs = {"opt": base / "opt", "runtime": runtime_sdk}
            for artefact in result.functions:
                fs[artefact.path.stem] = base / "task" / artefact.path.stem
                with zipfile.ZipFile(artefact.path) as zf:
                    zf.extractall(fs[artefact.path.stem])
            with zipfile.ZipFile(result.layer.path) as zf:
                zf.extractall(fs["opt"])
            made[runtime] = fs
        return made[runtime]

    return unpack


@pytest.mark.slow
def test_layer_libraries_link_only_to_what_is_there(lambda_fs, tmp_path):
    opt = lambda_fs()["opt"] / "python"
    check_shared_libraries(opt)
    copy = tmp_path / "pyarrow"
    copy.mkdir()
    for lib in (opt / "pyarrow").glob("*.so*"):
        if "substrait" not in lib.name:
            os.link(lib, copy / lib.name)
    with pytest.raises(PackageError, match="needs libarrow_substrait"):
        check_shared_libraries(tmp_path)


# -- the deployed artefacts, run by the runtime's own CPython ---------------------------
def _cpython_version(executable: str) -> str | None:
    try:
        proc = subprocess.run(
            [executable, "-I", "-S", "-c",
             "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    name, _, version = proc.stdout.strip().partition(" ")
    return version if proc.returncode == 0 and name == "cpython" else None


def find_python(version: str) -> str | None:
    """A CPython ``version`` (e.g. "3.12"): ``$M7_PY312`` (which must be one), else
    ``$PYENV_ROOT/versions/3.12*/bin/python3.12``, else ``python3.12`` on PATH (a pyenv
    shim for a version not selected fails to run, and is passed over)."""
    variable = "M7_PY" + version.replace(".", "")
    if os.environ.get(variable):
        given = os.environ[variable]
        found = _cpython_version(given)
        if found != version:
            pytest.fail(f"${variable}={given} is not a CPython {version} (it reports {found}).")
        return given
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted(glob.glob(str(pyenv / "versions" / f"{version}*" / "bin" /
                                      f"python{version}")))
    candidates.append(shutil.which(f"python{version}"))
    return next((c for c in candidates if c and _cpython_version(c) == version), None)


RUN = r"""
import importlib, json, sys, sysconfig
task, opt, runtime, handler, event_file = sys.argv[1:6]
sys.path[:0] = [task, opt + "/python", runtime]  # Lambda's order: function, layer, SDK

class Context:
    function_name = "m7-etl-fresh-" + handler
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + function_name
    aws_request_id = "fresh-" + handler

    def get_remaining_time_in_millis(self):
        return 300_000

with open(event_file) as f:
    event = json.load(f)
result = importlib.import_module(handler).handler(event, Context())
import boto3, numpy, pyarrow
try:
    import click
except ImportError:
    click = None
print("RESULT:" + json.dumps({
    "result": result,
    "python": [sys.implementation.name, "%d.%d" % sys.version_info[:2]],
    "flags": [sys.flags.isolated, sys.flags.no_site, sys.flags.ignore_environment],
    "sys_path": sys.path,
    "stdlib": sorted({sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}),
    "versions": {"numpy": numpy.__version__, "pyarrow": pyarrow.__version__},
    "click": click and click.__file__,
    "files": sorted({m.__file__ for m in list(sys.modules.values())
                     if isinstance(getattr(m, "__file__", None), str)}),
}, default=str))
"""


@pytest.fixture
def standin():
    from m7etl.local.standins.mwaa import MwaaStandin

    server = MwaaStandin(env_name="m7-etl-mwaa-test").start()
    yield server
    server.stop()


def _parquet_rows(s3, bucket: str, key: str) -> list[dict]:
    import pyarrow.parquet as pq

    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_deployed_handlers_run_alone_in_the_runtimes_python(runtime, lambda_fs, moto_endpoint,
                                                            standin, tmp_path):
    """Each function's zip alone in its task folder, plus the runtime's layer and the SDK,
    run by ``python3.x -I -S``: the S3 event moves a landing file to raw/ and asks MWAA for a
    run, raw_to_silver writes silver Parquet, silver_to_gold writes gold, maintenance
    deletes the expired raw file; every object is read back from the moto server."""
    version = RUNTIMES[runtime]
    python = find_python(version)
    if python is None:
        pytest.skip(f"no CPython {version} here (set $M7_PY{version.replace('.', '')}, install "
                    f"it with pyenv, or put python{version} on PATH): the {runtime} layer's "
                    f"compiled wheels only load in Python {version}")
    fs = lambda_fs(runtime)
    import boto3

    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=moto_endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"m7-etl-data-solocco-fresh-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    header = ("device_id,subscriber_id,model,firmware_version,region,activation_date,"
              "last_seen_at,status,signal_quality_pct")
    devices = [f"STB{i:09d}" for i in range(4)]
    rows = [f"{d},SUB{i:08d},M7-UHD4K,2.0.{i},Occitanie,2021-03-0{i + 1},"
            f"2025-05-01 08:00:0{i},active,9{i}" for i, d in enumerate(devices)]
    csv = ("\n".join([header, *rows]) + "\n").encode()
    s3.put_object(Bucket=bucket, Key="landing/Device_20250501.csv", Body=csv)
    recorded = json.loads((ROOT / "tests" / "events" / "s3_put_single.json").read_text())
    recorded["Records"][0]["s3"]["bucket"]["name"] = bucket
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "PYTHONPATH": str(ROOT / "src"),  # a trap: -I must ignore it
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
           "AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_MWAA": standin.endpoint,
           "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
           "M7_ENVIRONMENT": "test", "M7_DATA_BUCKET": bucket,
           "M7_ERROR_THRESHOLD": "5.0", "M7_WARNING_THRESHOLD": "10.0",
           "M7_MWAA_ENV_NAME": "m7-etl-mwaa-test", "M7_DAG_ID": "m7_etl_pipeline",
           "M7_RETENTION_DAYS_RAW": "30", "POWERTOOLS_METRICS_NAMESPACE": "M7Etl",
           "POWERTOOLS_SERVICE_NAME": "m7etl-fresh", "POWERTOOLS_LOG_LEVEL": "INFO"}

    def invoke(handler: str, event: dict) -> tuple[dict, list[str]]:
        event_file = tmp_path / f"{handler}.json"
        event_file.write_text(json.dumps(event))
        task = fs[handler]
        proc = subprocess.run(
            [python, "-I", "-S", "-c", RUN, str(task), str(fs["opt"]), str(fs["runtime"]),
             handler, str(event_file)],
            cwd=task, env=env, capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, f"{handler} on {python}:\n{proc.stderr[-3000:]}"
        (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
        out = json.loads(line[len("RESULT:"):])
        # The interpreter asked for, isolated: every module it loaded is from this
        # function's zip, the layer, the SDK or its own standard library.
        assert out["python"] == ["cpython", version] and out["flags"] == [1, 1, 1]
        assert out["versions"] == {"numpy": NUMPY[runtime], "pyarrow": "18.1.0"}
        assert out["click"] is None
        assert not [p for p in out["sys_path"] if "site-packages" in p or str(ROOT) in p]
        allowed = [str(task), str(fs["opt"] / "python"), str(fs["runtime"]), *out["stdlib"]]
        strays = [f for f in out["files"] if "site-packages" in f
                  or not any(f.startswith(a + os.sep) for a in allowed)]
        assert not strays, strays[:5]
        loaded = {Path(f).relative_to(task).as_posix() for f in out["files"]
                  if f.startswith(str(task) + os.sep)}
        assert f"{handler}.py" in loaded and "m7etl/__init__.py" in loaded
        return out["result"], proc.stdout.splitlines()

    def keys(prefix: str) -> list[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    raw_key = "raw/20250501/Device_20250501.csv"
    moved, _ = invoke("s3_event", recorded)
    assert [r["status"] for r in moved["records"]] == ["raw"]
    assert moved["triggers"][0]["status"] == "triggered"
    assert keys("landing/") == [] and keys("raw/") == [raw_key]
    assert s3.get_object(Bucket=bucket, Key=raw_key)["Body"].read() == csv
    assert [r.kind for r in standin.requests] == ["invoke_rest_api"]
    ((_dag, _run_id), run), = standin.runs.items()
    assert run["conf"]["date"] == "20250501" and run["conf"]["raw_keys"] == [raw_key]

    silver, stdout = invoke("raw_to_silver", {"key": raw_key})
    assert (silver["status"], silver["rows_read"], silver["rows_valid"],
            silver["rows_rejected"]) == ("ok", 4, 4, 0)
    assert keys("silver/") == sorted(silver["outputs"].values())
    silver_rows = _parquet_rows(s3, bucket, silver["outputs"]["silver"])
    assert [r["device_id"] for r in silver_rows] == devices
    assert [r["signal_quality_pct"] for r in silver_rows] == [90, 91, 92, 93]
    report = json.loads(s3.get_object(Bucket=bucket, Key=silver["outputs"]["report"])["Body"]
                        .read())
    assert report["rows_valid"] == 4
    emf = [json.loads(x) for x in stdout if x.startswith('{"_aws"')]
    assert [e["RowsValid"] for e in emf if "RowsValid" in e] == [[4.0]]

    gold, _ = invoke("silver_to_gold", {"dataset": "Device", "date": "20250501"})
    assert (gold["status"], gold["rows_in"], gold["rows_out"]) == ("ok", 4, 4)
    assert keys("gold/") == [gold["gold_key"]] == ["gold/Device_20250501.parquet"]
    assert sorted(r["device_id"] for r in _parquet_rows(s3, bucket, gold["gold_key"])) == devices

    # A real run deletes by the real clock ("now" is taken in dry runs only): the objects are
    # aged in the in-process moto server's backend (S3 has no call that sets LastModified).
    from moto.s3.models import s3_backends

    partition, account = s3_backends.bucket_accounts[bucket]
    for obj in s3_backends[account][partition].buckets[bucket].keys.values():
        obj.last_modified -= timedelta(days=31)
    swept, _ = invoke("maintenance", {"dry_run": False})
    assert (swept["dry_run"], swept["deleted"], swept["keys"]) == (False, 1, [raw_key])
    assert keys("raw/") == [] and keys("logs/") == [swept["report_key"]]
    assert len(keys("silver/")) == 2 and len(keys("gold/")) == 1  # not configured: kept
