"""Lambda artefacts: one zip per function and the ``etl-dependencies`` layer.

* A function zip holds its handler (``lambda_src/<name>.py``) at the root, the handler-side
  modules it imports, and the ``m7etl`` core modules found by walking the import graph
  from the handler (imports inside functions included), plus the contract YAML files.
  Reaching the CLI or deploy code is an error, and so is a third-party import that
  neither the layer nor the Lambda runtime provides.
* The layer holds the third-party libraries of ``lambda_src/requirements-layer.txt``
  under ``python/``, installed by pip from manylinux wheels for the target runtime and
  architecture (never from this machine's site-packages), with what Lambda never loads
  stripped (tests, caches, headers, Cython sources, static libraries, unused Arrow
  components).
* Zips are reproducible: sorted entries, a fixed timestamp, normalised permissions and a
  fixed compression level, so the same sources give the same bytes and an unchanged
  function uploads nothing. A zip whose bytes did not change is not rewritten.
* Each function plus the layer must stay under Lambda's unzipped limit with a margin.
* The Glue job's artefacts go to ``glue/`` as in the code bucket: its script
  (``glue_src/gold_to_snowflake.py``) and ``m7etl_glue.zip``, the m7etl modules it imports
  (``--extra-py-files``), written by the same reproducible zip writer.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from m7etl.deploy.glue_bundle import BUNDLE_NAME, bundle_files
from m7etl.exceptions import M7Error

HANDLERS = ("raw_to_silver", "silver_to_gold", "s3_event", "maintenance")
LAYER = "etl-dependencies"
GLUE_DIR = "glue"  # s3://<code bucket>/glue/, where the stack's Glue job reads them
GLUE_SCRIPT = "gold_to_snowflake.py"
CORE_PACKAGE = "m7etl"
FORBIDDEN = ("m7etl.cli", "m7etl.deploy")
DATA_FILES = {"m7etl.core.contracts": ("datasets/*.yaml",)}
RUNTIMES = {"python3.12": "3.12", "python3.13": "3.13"}
ARCHS = {"x86_64": "x86_64", "arm64": "aarch64"}
DEFAULT_RUNTIME = "python3.12"
DEFAULT_ARCH = "x86_64"
# Lambda AL2023 runtimes have glibc 2.34: manylinux_2_28 and older wheels all run there.
PLATFORM_TAGS = ("manylinux_2_28_{m}", "manylinux_2_17_{m}", "manylinux2014_{m}")
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # function + layers, bytes
BUDGET_MARGIN = 0.10  # keep 10% free for the next dependency bump
BUDGET = int(LAMBDA_UNZIPPED_LIMIT * (1 - BUDGET_MARGIN))
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                    "awslambdaric"}
IMPORT_NAMES = {"pyyaml": "yaml", "aws-lambda-powertools": "aws_lambda_powertools",
                "typing-extensions": "typing_extensions"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
# What Lambda never loads, stripped from the layer.
STRIP_DIRS = {"__pycache__", "tests", "include"}
STRIP_TOP = {"bin"}
STRIP_SUFFIXES = (".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".c", ".cc", ".cpp",
                  ".a", ".cmake", ".pc")
STRIP_GLOBS = (
    # pip's install bookkeeping: RECORD lists the console scripts with a hash of their
    # shebang, which names pip's temporary folder, so it differs from build to build.
    "*.dist-info/RECORD", "*.dist-info/INSTALLER", "*.dist-info/REQUESTED",
    "*.dist-info/direct_url.json",
    # Arrow parts the pipeline never imports: Flight RPC, the C++ test module.
    # (libarrow_substrait stays: libarrow_python and every pyarrow extension link to it.)
    "pyarrow/libarrow_flight.so*", "pyarrow/libarrow_python_flight.so*", "pyarrow/_flight*.so",
    "pyarrow/flight.py", "pyarrow/_pyarrow_cpp_tests*.so", "pyarrow/src/*",
)
# Shared libraries every Lambda runtime image provides (what manylinux wheels may link to).
SYSTEM_LIBS = ("libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so", "libgcc_s.so",
               "libstdc++.so", "libz.so", "ld-linux", "libutil.so")


class PackageError(M7Error):
    """An artefact cannot be built (names the artefact, the cause and the fix)."""


@dataclass
class Artefact:
    name: str  # file name, e.g. raw_to_silver.zip
    path: Path
    zipped: int
    unzipped: int
    sha256: str
    files: int
    kind: str  # "function" or "layer"
    changed: bool = True
    modules: list[str] = field(default_factory=list)

    def row(self) -> list:
        return [self.name, self.zipped, self.unzipped, self.sha256]


# -- locations -------------------------------------------------------------------------
def project_root(start: Path | None = None) -> Path:
    """The checkout holding ``lambda_src/`` and ``src/m7etl`` (cwd first, then this file's)."""
    for candidate in (start or Path.cwd(), Path(__file__).resolve().parents[3]):
        if (candidate / "lambda_src").is_dir() and (candidate / "src" / CORE_PACKAGE).is_dir():
            return candidate.resolve()
    raise PackageError("Cannot find lambda_src/ and src/m7etl/.",
                       hint="Run m7etl package from the project's checkout.")


# -- import graph ----------------------------------------------------------------------
@dataclass
class ModuleGraph:
    files: dict[str, Path]  # module name -> source file (local modules only)
    third_party: dict[str, str]  # top-level name -> first importer
    parents: dict[str, str]  # module -> the module that imported it first


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


def _local_file(name: str, roots: list[Path]) -> tuple[Path, bool] | None:
    rel = Path(*name.split("."))
    for root in roots:
        if (root / rel / "__init__.py").is_file():
            return root / rel / "__init__.py", True
        if (root / rel).with_suffix(".py").is_file():
            return (root / rel).with_suffix(".py"), False
    return None


def module_graph(handler: str, lambda_dir: Path, src_dir: Path) -> ModuleGraph:
    """Walk the imports from ``lambda_dir/<handler>.py`` through local modules."""
    roots = [lambda_dir, src_dir]
    graph = ModuleGraph({}, {}, {})
    todo = [(handler, "(handler)")]
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    while todo:
        name, importer = todo.pop()
        if name in graph.files:
            continue
        found = _local_file(name, roots)
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
                if _local_file(candidate, roots) is not None:
                    todo.append((candidate, name))
                elif candidate is candidates[0] and _local_file(top, roots) is None:
                    graph.third_party.setdefault(top, name)
    for name in graph.files:
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            chain, cur = [name], name
            while graph.parents.get(cur, "(handler)") != "(handler)":
                cur = graph.parents[cur]
                chain.append(cur)
            raise PackageError(
                f"Handler {handler} reaches {name} ({' <- '.join(chain)}); CLI and deploy code "
                "must not ship in a Lambda package.",
                hint="Move the needed function into the core.")
    return graph


def function_entries(handler: str, root: Path) -> tuple[dict[str, Path], ModuleGraph]:
    """Archive name -> source file for one function zip."""
    lambda_dir, src_dir = root / "lambda_src", root / "src"
    if not (lambda_dir / f"{handler}.py").is_file():
        raise PackageError(f"Handler source lambda_src/{handler}.py does not exist.")
    graph = module_graph(handler, lambda_dir, src_dir)
    entries: dict[str, Path] = {}
    for name, path in graph.files.items():
        base = lambda_dir if path.is_relative_to(lambda_dir) else src_dir
        entries[path.relative_to(base).as_posix()] = path
        for pattern in DATA_FILES.get(name, ()):
            for data in sorted(path.parent.glob(pattern)):
                entries[data.relative_to(src_dir).as_posix()] = data
    return entries, graph


# -- requirements ----------------------------------------------------------------------
def layer_requirements(path: Path, python_version: str, arch: str) -> list[str]:
    """The requirement lines that apply to the target (markers evaluated for it, not here)."""
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    env = {"python_version": python_version, "python_full_version": f"{python_version}.0",
           "platform_machine": ARCHS.get(arch, arch), "sys_platform": "linux",
           "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
           "platform_python_implementation": "CPython"}
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or Marker(str(req.marker)).evaluate(env):
            req.marker = None
            lines.append(str(req))
    return lines


def layer_import_names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    names = set()
    for line in requirements:
        dist = Requirement(line).name.lower()
        names.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    return names


# -- zips ------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & 0o111 else 0o644


def write_zip(entries: dict[str, Path], target: Path) -> bool:
    """Write a reproducible zip; False (and the old file untouched) if the bytes are equal."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zf:
            for arcname in sorted(entries):
                source = entries[arcname]
                info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
                info.create_system = 3  # unix, so the permission bits below are honoured
                info.external_attr = (0o100000 | _mode(source)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with source.open("rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
        if target.is_file() and _sha256(target) == _sha256(Path(tmp)):
            os.unlink(tmp)
            return False
        os.replace(tmp, target)
        return True
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_zip(path: Path, kind: str, changed: bool = True) -> Artefact:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    return Artefact(path.name, path, path.stat().st_size, sum(i.file_size for i in infos),
                    _sha256(path), len(infos), kind, changed)


# -- functions -------------------------------------------------------------------------
def build_function(handler: str, out_dir: Path, *, root: Path | None = None,
                   layer_imports: set[str] | None = None) -> Artefact:
    root = root or project_root()
    entries, graph = function_entries(handler, root)
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


# -- layer -----------------------------------------------------------------------------
def _pip(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          check=False)


def _platform_args(python_version: str, arch: str) -> list[str]:
    machine = ARCHS[arch]
    args = []
    for tag in PLATFORM_TAGS:
        args += ["--platform", tag.format(m=machine)]
    abi = "cp" + python_version.replace(".", "")
    return [*args, "--python-version", python_version, "--implementation", "cp", "--abi", abi,
            "--only-binary=:all:"]


def install_layer_tree(requirements: list[str], target: Path, *, python_version: str, arch: str,
                       wheel_cache: Path) -> None:
    """pip-install the wheels for the target into ``target`` (offline from the cache when it
    has them; else download them into the cache first)."""
    cache = wheel_cache / f"cp{python_version.replace('.', '')}-{arch}"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(requirements) + "\n")
        req_file = f.name
    try:
        platform = _platform_args(python_version, arch)
        install = ["install", "--target", str(target), "--no-compile", "--no-cache-dir",
                   "--disable-pip-version-check", "--no-warn-conflicts", "--ignore-installed",
                   *platform, "-r", req_file]
        offline = _pip([*install, "--no-index", "--find-links", str(cache)])
        if offline.returncode == 0:
            return
        shutil.rmtree(target, ignore_errors=True)
        download = _pip(["download", "--dest", str(cache), "--disable-pip-version-check",
                         *platform, "-r", req_file])
        if download.returncode != 0:
            raise PackageError(
                f"pip could not download the layer's wheels for Python {python_version} "
                f"{arch}: {_last_line(download.stderr)}",
                hint="Check network access to PyPI and that every pinned version has a "
                     "manylinux wheel for this runtime.")
        again = _pip([*install, "--no-index", "--find-links", str(cache)])
        if again.returncode != 0:
            raise PackageError(f"pip could not install the layer: {_last_line(again.stderr)}")
    finally:
        os.unlink(req_file)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def strip_tree(root: Path) -> int:
    """Delete what Lambda never loads; returns the bytes removed."""
    removed = 0
    for top in STRIP_TOP:
        removed += _remove(root / top)
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        here = Path(dirpath)
        for name in list(dirnames):
            if name in STRIP_DIRS:
                removed += _remove(here / name)
                dirnames.remove(name)
        for name in filenames:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if name.endswith(STRIP_SUFFIXES) or any(fnmatch.fnmatch(rel, g) for g in STRIP_GLOBS):
                removed += _remove(path)
    for dirpath, _dirs, _files in sorted(os.walk(root), reverse=True):
        if dirpath != str(root) and not os.listdir(dirpath):
            os.rmdir(dirpath)
    return removed


def _remove(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        size = path.lstat().st_size
        path.unlink()
        return size
    if path.is_dir():
        size = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return size
    return 0


def elf_needed(path: Path) -> list[str] | None:
    """The DT_NEEDED libraries of a 64-bit little-endian ELF file (None if not one)."""
    import struct

    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    needed = []
    for _name, sh_type, _f, _a, offset, size, link, _i, _al, _es in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        str_offset = sections[link][4]
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", str_offset + value)
                needed.append(data[str_offset + value:end].decode())
    return needed


def check_shared_libraries(root: Path) -> None:
    """Every shared library a layer binary links to is in the layer or the runtime image."""
    present = {p.name for p in root.rglob("*.so*")}
    for path in sorted(root.rglob("*.so*")):
        for lib in elf_needed(path) or ():
            if lib not in present and not lib.startswith(SYSTEM_LIBS):
                raise PackageError(
                    f"{path.relative_to(root)} needs {lib}, which the layer no longer holds.",
                    hint="Stop stripping it (m7etl.deploy.artefacts.STRIP_GLOBS).")


def tree_entries(root: Path, prefix: str) -> dict[str, Path]:
    entries = {}
    for path in root.rglob("*"):
        if path.is_symlink():
            raise PackageError(f"The layer tree holds a symbolic link {path}; zips cannot keep it.")
        if path.is_file():
            entries[f"{prefix}{path.relative_to(root).as_posix()}"] = path
    return entries


def build_layer(out_dir: Path, *, runtime: str = DEFAULT_RUNTIME, arch: str = DEFAULT_ARCH,
                root: Path | None = None, wheel_cache: Path | None = None,
                name: str = LAYER) -> Artefact:
    """Build ``<out_dir>/<name>.zip`` (``python/...``) for the runtime and architecture."""
    root = root or project_root()
    if runtime not in RUNTIMES:
        raise PackageError(f"Runtime {runtime} is not supported.",
                           hint=f"Use one of {', '.join(RUNTIMES)}.")
    if arch not in ARCHS:
        raise PackageError(f"Architecture {arch} is not supported.",
                           hint=f"Use one of {', '.join(ARCHS)}.")
    version = RUNTIMES[runtime]
    requirements = layer_requirements(root / "lambda_src" / "requirements-layer.txt", version, arch)
    wheel_cache = wheel_cache or root / ".work" / "wheels"
    with tempfile.TemporaryDirectory(prefix="m7-layer-") as tmp:
        tree = Path(tmp) / "python"
        install_layer_tree(requirements, tree, python_version=version, arch=arch,
                           wheel_cache=wheel_cache)
        strip_tree(tree)
        check_shared_libraries(tree)
        target = out_dir / f"{name}.zip"
        changed = write_zip(tree_entries(tree, "python/"), target)
    return describe_zip(target, "layer", changed)


# -- all of it -------------------------------------------------------------------------
@dataclass
class BuildResult:
    functions: list[Artefact]
    layer: Artefact | None
    glue: list[Artefact] = field(default_factory=list)
    budget: int = BUDGET

    @property
    def artefacts(self) -> list[Artefact]:
        return self.functions + ([self.layer] if self.layer else []) + self.glue


# -- Glue ------------------------------------------------------------------------------
def build_glue(out_dir: Path, *, root: Path | None = None) -> list[Artefact]:
    """``glue/gold_to_snowflake.py`` and ``glue/m7etl_glue.zip``; unchanged bytes are not rewritten."""
    root = root or project_root()
    target = out_dir / GLUE_DIR
    bundle = target / BUNDLE_NAME
    artefacts = [describe_zip(bundle, "glue", write_zip(dict(bundle_files()), bundle))]
    source, script = root / "glue_src" / GLUE_SCRIPT, target / GLUE_SCRIPT
    text = source.read_bytes()
    changed = not script.is_file() or script.read_bytes() != text
    if changed:
        tmp = script.with_name(f".{GLUE_SCRIPT}.tmp")
        tmp.write_bytes(text)
        os.replace(tmp, script)
    artefacts.append(Artefact(GLUE_SCRIPT, script, len(text), len(text), _sha256(script), 1, "glue", changed))
    return artefacts


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
                     "of it (m7etl.deploy.artefacts.STRIP_GLOBS).")


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
