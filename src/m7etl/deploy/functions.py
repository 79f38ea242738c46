"""The Lambda function zips: a handler and exactly the local modules it imports.

A zip holds ``lambda_src/<name>.py`` at the root, the handler-side modules it imports,
the ``m7etl`` modules found by walking the import graph (:mod:`m7etl.deploy.imports`),
and the contract YAML files when the contracts are among them. A third-party import that
neither the layer nor the Lambda runtime provides is an error, found here rather than as
an ``ImportModuleError`` in AWS.
"""

from __future__ import annotations

from pathlib import Path

from m7etl.deploy.imports import ModuleGraph, module_graph
from m7etl.deploy.project import project_root
from m7etl.deploy.zips import Artefact, describe_zip, write_zip
from m7etl.exceptions import PackageError

HANDLERS = ("raw_to_silver", "silver_to_gold", "s3_event", "maintenance")
LAYER = "etl-dependencies"
DATA_FILES = {"m7etl.core.contracts": ("datasets/*.yaml",)}
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                    "awslambdaric"}


def function_entries(handler: str, root: Path) -> tuple[dict[str, Path], ModuleGraph]:
    """Archive name -> source file for one function zip."""
    lambda_dir, src_dir = root / "lambda_src", root / "src"
    if not (lambda_dir / f"{handler}.py").is_file():
        raise PackageError(f"Handler source lambda_src/{handler}.py does not exist.")
    graph = module_graph(handler, [lambda_dir, src_dir], what=f"Handler {handler}")
    entries: dict[str, Path] = {}
    for name, path in graph.files.items():
        base = lambda_dir if path.is_relative_to(lambda_dir) else src_dir
        entries[path.relative_to(base).as_posix()] = path
        for pattern in DATA_FILES.get(name, ()):
            for data in sorted(path.parent.glob(pattern)):
                entries[data.relative_to(src_dir).as_posix()] = data
    return entries, graph


def build_function(handler: str, out_dir: Path, *, root: Path | None = None,
                   layer_imports: set[str] | None = None) -> Artefact:
    """``<out_dir>/<handler>.zip``; with ``layer_imports``, every third-party import checked."""
    entries, graph = function_entries(handler, root or project_root())
    if layer_imports is not None:
        missing = sorted(set(graph.third_party) - layer_imports - RUNTIME_PROVIDED)
        if missing:
            name = missing[0]
            raise PackageError(
                f"{handler}: {graph.third_party[name]} imports '{name}', which neither the "
                f"{LAYER} layer nor the Lambda runtime provides.",
                hint="Add it to lambda_src/requirements-layer.txt or drop the import.")
    changed = write_zip(entries, out_dir / f"{handler}.zip")
    artefact = describe_zip(out_dir / f"{handler}.zip", "function", changed)
    artefact.modules = sorted(graph.files)
    return artefact
