"""The ``etl-dependencies`` layer: the third-party libraries every function imports.

Built from ``lambda_src/requirements-layer.txt`` under ``python/`` by pip, from manylinux
wheels for the target runtime and architecture (never from this machine's site-packages),
with what Lambda never loads stripped (tests, caches, headers, Cython sources, static
libraries, unused Arrow components), and checked: every shared library a binary links to
is in the layer or in the runtime image.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from m7etl.deploy.functions import LAYER
from m7etl.deploy.project import project_root
from m7etl.deploy.zips import Artefact, describe_zip, write_zip
from m7etl.exceptions import PackageError

RUNTIMES = {"python3.12": "3.12", "python3.13": "3.13"}
ARCHS = {"x86_64": "x86_64", "arm64": "aarch64"}
DEFAULT_RUNTIME = "python3.12"
DEFAULT_ARCH = "x86_64"
# Lambda AL2023 runtimes have glibc 2.34: manylinux_2_28 and older wheels all run there.
PLATFORM_TAGS = ("manylinux_2_28_{m}", "manylinux_2_17_{m}", "manylinux2014_{m}")
IMPORT_NAMES = {"pyyaml": "yaml", "aws-lambda-powertools": "aws_lambda_powertools",
                "typing-extensions": "typing_extensions"}
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
                    hint="Stop stripping it (m7etl.deploy.layer.STRIP_GLOBS).")


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
