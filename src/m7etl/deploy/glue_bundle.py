"""The zip the Glue job gets with ``--extra-py-files``: exactly the m7etl modules it imports.

The module list is not written by hand: it is the closure of the ``m7etl`` imports (at
any depth, including imports inside functions) starting from :data:`ENTRY_MODULE`, read
from the source with ``ast``, plus the parent packages' ``__init__.py`` and the built-in
contract YAML files. The zip is deterministic (sorted entries, fixed timestamps and
modes), so the same code gives the same bytes and the same checksum.

Upload it as ``s3://<code bucket>/glue/m7etl_glue.zip`` next to ``glue/gold_to_snowflake.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import m7etl

PACKAGE_ROOT = Path(m7etl.__file__).resolve().parent  # .../m7etl
SOURCE_ROOT = PACKAGE_ROOT.parent  # the folder holding m7etl/
ENTRY_MODULE = "m7etl.warehouse.job"
BUNDLE_NAME = "m7etl_glue.zip"
DATA_GLOBS = ("core/contracts/datasets/*.yaml",)


def module_path(name: str) -> Path | None:
    """The source file of an m7etl module or package, or None if there is none."""
    parts = name.split(".")
    if parts[0] != "m7etl":
        return None
    base = SOURCE_ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_names(path: Path, module: str) -> set[str]:
    """Every m7etl module named by an import in ``path`` (``from m7etl import x`` counts x)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in found if n.split(".")[0] == "m7etl" and module_path(n) is not None}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def module_closure(entry: str = ENTRY_MODULE) -> list[str]:
    """The m7etl modules ``entry`` needs, sorted (parent packages included)."""
    seen: set[str] = set()
    todo = _with_parents(entry)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name)
        if path is None:
            continue
        for imported in _imported_names(path, name):
            todo.extend(n for n in _with_parents(imported) if n not in seen)
    return sorted(n for n in seen if module_path(n) is not None)


def bundle_files(entry: str = ENTRY_MODULE) -> list[tuple[str, Path]]:
    """(name in the zip, source file) pairs, sorted by name."""
    files = {}
    for name in module_closure(entry):
        path = module_path(name)
        files[path.relative_to(SOURCE_ROOT).as_posix()] = path
    if "m7etl.core.contracts" in module_closure(entry):
        for pattern in DATA_GLOBS:
            for path in PACKAGE_ROOT.glob(pattern):
                files[path.relative_to(SOURCE_ROOT).as_posix()] = path
    return sorted(files.items())


def build_glue_bundle(out_path: str | Path, entry: str = ENTRY_MODULE) -> Path:
    """Write the zip of the Glue job's modules to ``out_path``: the reproducible writer of
    ``m7etl package`` (which builds it as ``glue/m7etl_glue.zip``), so both give the same bytes."""
    from m7etl.deploy.artefacts import write_zip  # build-time only: not part of the bundle itself

    out = Path(out_path)
    write_zip(dict(bundle_files(entry)), out)
    return out
