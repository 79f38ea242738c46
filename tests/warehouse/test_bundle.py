"""The Glue bundle (--extra-py-files): deterministic, complete, importable on its own."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from m7etl.deploy.glue import build_glue_bundle

SCRIPT = Path(__file__).resolve().parents[2] / "glue_src" / "gold_to_snowflake.py"


def test_bundle_is_deterministic(tmp_path):
    a = build_glue_bundle(tmp_path / "a" / "m7etl_glue.zip")
    b = build_glue_bundle(tmp_path / "b" / "m7etl_glue.zip")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with zipfile.ZipFile(a) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert "m7etl/warehouse/job.py" in names
    assert "m7etl/core/contracts/datasets/device.yaml" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    for left_out in ("m7etl/core/gold/__init__.py", "m7etl/core/validate.py", "m7etl/local/warehouse.py",
                     "m7etl/deploy/glue.py", "m7etl/cli/__init__.py"):
        assert left_out not in names


def test_bundle_imports_alone_in_an_isolated_interpreter(tmp_path):
    """Unzipped into an empty folder, the job's modules and contracts come from there only."""
    archive = build_glue_bundle(tmp_path / "m7etl_glue.zip")
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(folder)!r})
        import m7etl.warehouse.job as job
        from m7etl.core.contracts import load_registry
        from m7etl.warehouse.loader import load_day
        assert job.__file__.startswith({str(folder)!r}), job.__file__
        assert load_day.__module__ == "m7etl.warehouse.loader"
        print(sorted(c.dataset for c in load_registry()))
        assert "m7etl.core.gold" not in sys.modules and "m7etl.core.validate" not in sys.modules
        # The script runs from the bundle: missing arguments give the job's own message.
        sys.argv = [{str(SCRIPT)!r}, "--environment", "test"]
        import runpy
        try:
            runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
        except SystemExit as exc:
            print("exit", exc.code)
    """)
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert "['Channel', 'Device', 'EPG', 'Viewing']" in result.stdout
    assert "exit 1" in result.stdout
    assert "Missing job argument(s): --data_bucket, --snowflake_secret_id." in result.stdout


def test_the_contracts_load_from_the_zip_itself(tmp_path):
    """Glue puts --extra-py-files on sys.path as a zip, not unzipped: the built-in contracts
    are read as package resources (a folder lookup found no datasets/ inside the zip)."""
    archive = build_glue_bundle(tmp_path / "m7etl_glue.zip")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(archive)!r})
        from m7etl.core.contracts import load_registry
        import m7etl
        assert m7etl.__file__.startswith({str(archive)!r}), m7etl.__file__
        registry = load_registry()
        print(sorted(c.dataset for c in registry))
        print(registry["Device"].source)
    """)
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    datasets, source = result.stdout.splitlines()
    assert datasets == "['Channel', 'Device', 'EPG', 'Viewing']"
    assert source == f"{archive}/m7etl/core/contracts/datasets/device.yaml"
