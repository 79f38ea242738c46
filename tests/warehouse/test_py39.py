"""The Glue job runs on Python 3.9 (AWS Glue Python shell): its script and every module it
imports must parse as 3.9 and use no 3.10+ standard-library API."""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m7etl.deploy import glue as bundle

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "glue_src" / "gold_to_snowflake.py"


def find_python39() -> str | None:
    """A working Python 3.9 ($M7_PYTHON39, pyenv's, or python3.9 on PATH), else None."""
    candidates = [os.environ.get("M7_PYTHON39"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))),
                  shutil.which("python3.9")]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if out.stdout.strip() == "(3, 9)":
            return candidate
    return None


PY39 = find_python39()


def glue_sources() -> list[Path]:
    return [SCRIPT] + [path for name, path in bundle.bundle_files() if name.endswith(".py")]


def test_the_script_imports_only_the_job_module():
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert imported == {"sys", bundle.ENTRY_MODULE}


def test_the_glue_modules_are_the_expected_ones():
    names = bundle.module_closure()
    assert names == [
        "m7etl", "m7etl.core", "m7etl.core.contracts", "m7etl.core.contracts.loading",
        "m7etl.core.contracts.model", "m7etl.core.contracts.registry", "m7etl.core.layout",
        "m7etl.exceptions", "m7etl.storage", "m7etl.storage.aws", "m7etl.storage.base",
        "m7etl.storage.errors", "m7etl.storage.local", "m7etl.storage.s3", "m7etl.warehouse",
        "m7etl.warehouse.connect",
        "m7etl.warehouse.job", "m7etl.warehouse.loader", "m7etl.warehouse.secrets",
        "m7etl.warehouse.sql",
    ]
    for not_39 in ("m7etl.core.gold", "m7etl.core.validate", "m7etl.local.runner",
                   "m7etl.local.warehouse"):
        assert not_39 not in names


@pytest.mark.parametrize("path", glue_sources(), ids=lambda p: p.name)
def test_parses_as_python_39(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


class _NewApis(ast.NodeVisitor):
    """Calls and names that parse on 3.9 but fail there at run time."""

    def __init__(self):
        self.found: list[str] = []

    def visit_Call(self, node: ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        keywords = {k.arg for k in node.keywords}
        if name == "zip" and "strict" in keywords:
            self.found.append(f"line {node.lineno}: zip(strict=) is 3.10+")
        if name == "dataclass" and keywords & {"slots", "kw_only", "match_args"}:
            self.found.append(f"line {node.lineno}: dataclass({keywords}) is 3.10+")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute):
        if node.attr == "UTC" and isinstance(node.value, ast.Name) and node.value.id == "datetime":
            self.found.append(f"line {node.lineno}: datetime.UTC is 3.11+")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        names = {a.name for a in node.names}
        if node.module == "datetime" and "UTC" in names:
            self.found.append(f"line {node.lineno}: datetime.UTC is 3.11+")
        if node.module == "typing" and names & {"TypeAlias", "ParamSpec", "Self", "TypeGuard"}:
            self.found.append(f"line {node.lineno}: typing {names} is 3.10+")
        if node.module in ("tomllib",):
            self.found.append(f"line {node.lineno}: {node.module} is 3.11+")
        self.generic_visit(node)


@pytest.mark.parametrize("path", glue_sources(), ids=lambda p: p.name)
def test_uses_no_310_runtime_api(path):
    finder = _NewApis()
    finder.visit(ast.parse(path.read_text(encoding="utf-8")))
    assert finder.found == []


def test_vermin_says_39():
    """The lint target `make lint-py39` runs the same check."""
    vermin = Path(sys.executable).with_name("vermin")
    if not vermin.exists():
        pytest.skip("vermin is not installed (pip install vermin==1.9.2)")
    result = subprocess.run(
        [str(vermin), "-t=3.9-", "--violations", "--no-tips", "--eval-annotations",
         *map(str, glue_sources())], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vermin_catches_what_the_core_uses():
    """The check has teeth: aggregate/validate/runner use 3.10+ APIs and are left out."""
    vermin = Path(sys.executable).with_name("vermin")
    if not vermin.exists():
        pytest.skip("vermin is not installed")
    src = ROOT / "src" / "m7etl"
    result = subprocess.run([str(vermin), "-t=3.9-", "--violations", "--no-tips",
                             str(src / "local" / "runner.py")], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "datetime.UTC" in result.stdout


@pytest.mark.skipif(PY39 is None, reason="no Python 3.9 interpreter here")
def test_compiles_with_a_real_python_39(tmp_path):
    files = [str(p) for p in glue_sources()]
    code = ("import sys, py_compile\n"
            "for f in sys.argv[1:]:\n"
            "    py_compile.compile(f, cfile=f + '.pyc39', doraise=True)\n")
    out = tmp_path / "copy"
    out.mkdir()
    copies = []
    for i, f in enumerate(files):  # compile copies: no .pyc written beside the sources
        target = out / f"{i}_{Path(f).name}"
        target.write_bytes(Path(f).read_bytes())
        copies.append(str(target))
    result = subprocess.run([PY39, "-I", "-c", code, *copies], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


PY39_VENV = Path(os.environ.get("M7_PY39_VENV", ROOT / ".work" / "py39")) / "bin" / "python"


@pytest.mark.skipif(not PY39_VENV.exists(),
                    reason="no Python 3.9 venv with the Glue modules (make py39-venv)")
def test_runs_on_python_39_with_the_glue_modules(tmp_path):
    """The bundle, unzipped alone, loads a day under 3.9 with snowflake-connector 3.12.4."""
    import zipfile

    folder = tmp_path / "bundle"
    with zipfile.ZipFile(bundle.build_glue_bundle(tmp_path / "m7etl_glue.zip")) as zf:
        zf.extractall(folder)
    work = tmp_path / "work"
    work.mkdir()
    smoke = Path(__file__).with_name("py39_smoke.py")
    result = subprocess.run([str(PY39_VENV), "-I", str(smoke), str(folder), str(work)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "py39 smoke ok 3.9" in result.stdout
