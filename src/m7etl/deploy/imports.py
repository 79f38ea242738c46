"""The one import walker: which local modules an entry point needs, read from the source.

Used for the Lambda zips (from ``lambda_src/<handler>.py``) and the Glue bundle (from
``m7etl.warehouse.job``), so both carry exactly what their entry imports, at any depth,
imports inside functions included, parent packages' ``__init__`` too. Reaching the CLI or
the deploy code is an error: it must never ship to Lambda or Glue.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from m7etl.exceptions import PackageError

FORBIDDEN = ("m7etl.cli", "m7etl.deploy")
ENTRY = "(entry)"


@dataclass
class ModuleGraph:
    files: dict[str, Path]  # module name -> source file (local modules only)
    third_party: dict[str, str]  # top-level name -> first importer
    parents: dict[str, str]  # module -> the module that imported it first

    def chain(self, name: str) -> list[str]:
        """``name`` and its importers back to the entry point."""
        chain, cur = [name], name
        while self.parents.get(cur, ENTRY) != ENTRY:
            cur = self.parents[cur]
            chain.append(cur)
        return chain


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[str, ...]]:
    """Every import of a file (also inside functions), as absolute candidate names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, ...]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name,) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from a import b``: b may be a submodule or a name; try both.
            found.append((base, *(f"{base}.{a.name}" for a in node.names)))
    return found


def local_file(name: str, roots: list[Path]) -> tuple[Path, bool] | None:
    """The source of a local module (and whether it is a package), or None."""
    rel = Path(*name.split("."))
    for root in roots:
        if (root / rel / "__init__.py").is_file():
            return root / rel / "__init__.py", True
        if (root / rel).with_suffix(".py").is_file():
            return (root / rel).with_suffix(".py"), False
    return None


def module_graph(entry: str, roots: list[Path], *, what: str,
                 forbidden: tuple[str, ...] = FORBIDDEN) -> ModuleGraph:
    """Walk the imports from module ``entry`` through the modules found under ``roots``.

    ``what`` names the artefact in the error raised when a forbidden module is reached.
    """
    graph = ModuleGraph({}, {}, {})
    todo = [(entry, ENTRY)]
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    while todo:
        name, importer = todo.pop()
        if name in graph.files:
            continue
        found = local_file(name, roots)
        if found is None:
            continue
        path, is_package = found
        graph.files[name] = path
        graph.parents.setdefault(name, importer)
        parts = name.split(".")
        for i in range(1, len(parts)):  # parent packages' __init__ run first
            todo.append((".".join(parts[:i]), name))
        for candidates in _imports(path, name, is_package):
            for candidate in candidates:
                top = candidate.split(".")[0]
                if not top or top in stdlib:
                    break
                if local_file(candidate, roots) is not None:
                    todo.append((candidate, name))
                elif candidate is candidates[0] and local_file(top, roots) is None:
                    graph.third_party.setdefault(top, name)
    for name in graph.files:
        if any(name == f or name.startswith(f + ".") for f in forbidden):
            raise PackageError(
                f"{what} reaches {name} ({' <- '.join(graph.chain(name))}); CLI and deploy "
                "code must not ship in a Lambda package or the Glue bundle.",
                hint="Move the needed function into the core.")
    return graph
