"""``m7etl package``: every artefact the stack deploys, built into one folder.

The four function zips (:mod:`~m7etl.deploy.functions`), the ``etl-dependencies`` layer
(:mod:`~m7etl.deploy.layer`) and the Glue job's files (:mod:`~m7etl.deploy.glue`), all
reproducible (:mod:`~m7etl.deploy.zips`), and the size budget: each function plus the
layer must stay under Lambda's unzipped limit with a margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from m7etl.deploy.functions import HANDLERS, LAYER, build_function
from m7etl.deploy.glue import GLUE_DIR, build_glue
from m7etl.deploy.layer import (
    ARCHS,
    DEFAULT_ARCH,
    DEFAULT_RUNTIME,
    RUNTIMES,
    build_layer,
    check_shared_libraries,
    layer_import_names,
    layer_requirements,
)
from m7etl.deploy.project import project_root
from m7etl.deploy.zips import Artefact, describe_zip
from m7etl.exceptions import PackageError

__all__ = [
    "ARCHS", "BUDGET", "DEFAULT_ARCH", "DEFAULT_RUNTIME", "GLUE_DIR", "HANDLERS", "LAMBDA_UNZIPPED_LIMIT",
    "LAYER", "RUNTIMES", "Artefact", "BuildResult", "PackageError", "build_all", "build_function",
    "build_glue", "build_layer", "check_budget", "check_shared_libraries", "layer_requirements",
    "size_rows",
]

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # function + layers, bytes
BUDGET_MARGIN = 0.10  # keep 10% free for the next dependency bump
BUDGET = int(LAMBDA_UNZIPPED_LIMIT * (1 - BUDGET_MARGIN))


@dataclass
class BuildResult:
    functions: list[Artefact]
    layer: Artefact | None
    glue: list[Artefact] = field(default_factory=list)
    budget: int = BUDGET

    @property
    def artefacts(self) -> list[Artefact]:
        return self.functions + ([self.layer] if self.layer else []) + self.glue


def check_budget(functions: list[Artefact], layer: Artefact | None,
                 budget: int | None = None) -> None:
    budget = budget or BUDGET
    layer_size = layer.unzipped if layer else 0
    for fn in functions:
        total = fn.unzipped + layer_size
        if total > budget:
            raise PackageError(
                f"{fn.name} + {LAYER}.zip unzip to {total:,} bytes, over the budget of "
                f"{budget:,} (Lambda's limit {LAMBDA_UNZIPPED_LIMIT:,} with a "
                f"{BUDGET_MARGIN:.0%} margin).",
                hint="Drop a dependency from lambda_src/requirements-layer.txt or strip more "
                     "of it (m7etl.deploy.layer.STRIP_GLOBS).")


def build_all(out_dir: Path, *, runtime: str = DEFAULT_RUNTIME, arch: str = DEFAULT_ARCH,
              skip_layer: bool = False, wheel_cache: Path | None = None,
              root: Path | None = None, handlers: tuple[str, ...] = HANDLERS,
              glue: bool = True) -> BuildResult:
    root = root or project_root()
    version = RUNTIMES.get(runtime, "3.12")
    requirements = layer_requirements(root / "lambda_src" / "requirements-layer.txt", version, arch)
    imports = layer_import_names(requirements)
    functions = [build_function(h, out_dir, root=root, layer_imports=imports) for h in handlers]
    layer_zip = out_dir / f"{LAYER}.zip"
    if skip_layer:
        layer = describe_zip(layer_zip, "layer", changed=False) if layer_zip.is_file() else None
    else:
        layer = build_layer(out_dir, runtime=runtime, arch=arch, root=root,
                            wheel_cache=wheel_cache)
    check_budget(functions, layer)
    return BuildResult(functions, layer, build_glue(out_dir, root=root) if glue else [])


def size_rows(result: BuildResult) -> list[list]:
    """Rows of the size table: artefact, zipped, unzipped, with layer, sha256."""
    layer = result.layer.unzipped if result.layer else 0
    rows = []
    for a in result.artefacts:
        with_layer = a.unzipped + layer if a.kind == "function" else a.unzipped if a.kind == "layer" else "-"
        rows.append([a.name, f"{a.zipped:,}", f"{a.unzipped:,}",
                     f"{with_layer:,}" if isinstance(with_layer, int) else with_layer,
                     "written" if a.changed else "unchanged", a.sha256])
    return rows
