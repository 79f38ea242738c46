"""The Glue job's artefacts: its script and ``m7etl_glue.zip`` (``--extra-py-files``).

The bundle holds exactly the m7etl modules :data:`ENTRY_MODULE` imports, found by the
same walker as the Lambda zips (:mod:`m7etl.deploy.imports`), plus the built-in contract
YAML files, written by the same reproducible zip writer, so the same code gives the same
bytes and checksum. Both go to ``s3://<code bucket>/glue/``, where the stack's job reads
them.
"""

from __future__ import annotations

from pathlib import Path

import m7etl
from m7etl.deploy.imports import module_graph
from m7etl.deploy.project import project_root
from m7etl.deploy.zips import Artefact, describe_file, describe_zip, write_file, write_zip

PACKAGE_ROOT = Path(m7etl.__file__).resolve().parent  # .../m7etl
SOURCE_ROOT = PACKAGE_ROOT.parent  # the folder holding m7etl/
ENTRY_MODULE = "m7etl.warehouse.job"
GLUE_DIR = "glue"  # s3://<code bucket>/glue/
GLUE_SCRIPT = "gold_to_snowflake.py"
BUNDLE_NAME = "m7etl_glue.zip"
CONTRACTS = "m7etl.core.contracts"
DATA_GLOBS = ("core/contracts/datasets/*.yaml",)


def module_closure(entry: str = ENTRY_MODULE) -> list[str]:
    """The m7etl modules ``entry`` needs, sorted (parent packages included)."""
    return sorted(module_graph(entry, [SOURCE_ROOT], what="The Glue bundle").files)


def bundle_files(entry: str = ENTRY_MODULE) -> list[tuple[str, Path]]:
    """(name in the zip, source file) pairs, sorted by name."""
    graph = module_graph(entry, [SOURCE_ROOT], what="The Glue bundle")
    files = {path.relative_to(SOURCE_ROOT).as_posix(): path for path in graph.files.values()}
    if CONTRACTS in graph.files:
        for pattern in DATA_GLOBS:
            for path in PACKAGE_ROOT.glob(pattern):
                files[path.relative_to(SOURCE_ROOT).as_posix()] = path
    return sorted(files.items())


def build_glue_bundle(out_path: str | Path, entry: str = ENTRY_MODULE) -> Path:
    """Write the zip of the Glue job's modules to ``out_path`` (``make glue-bundle``)."""
    out = Path(out_path)
    write_zip(dict(bundle_files(entry)), out)
    return out


def build_glue(out_dir: Path, *, root: Path | None = None) -> list[Artefact]:
    """``glue/m7etl_glue.zip`` and ``glue/gold_to_snowflake.py``; unchanged bytes are not rewritten."""
    root = root or project_root()
    target = out_dir / GLUE_DIR
    bundle = target / BUNDLE_NAME
    artefacts = [describe_zip(bundle, "glue", write_zip(dict(bundle_files()), bundle))]
    script = target / GLUE_SCRIPT
    changed = write_file((root / "glue_src" / GLUE_SCRIPT).read_bytes(), script)
    artefacts.append(describe_file(script, "glue", changed))
    return artefacts
