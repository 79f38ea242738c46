"""The one reproducible zip writer, for the Lambda zips, the layer and the Glue bundle.

Sorted entries, a fixed timestamp, normalised permissions and a fixed compression level:
the same sources give the same bytes, so an unchanged artefact has an unchanged sha256
and uploads nothing. A zip whose bytes did not change is not rewritten (its mtime stays).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6


@dataclass
class Artefact:
    name: str  # file name, e.g. raw_to_silver.zip
    path: Path
    zipped: int
    unzipped: int
    sha256: str
    files: int
    kind: str  # "function", "layer" or "glue"
    changed: bool = True
    modules: list[str] = field(default_factory=list)

    def row(self) -> list:
        return [self.name, self.zipped, self.unzipped, self.sha256]


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
        if target.is_file() and sha256(target) == sha256(Path(tmp)):
            os.unlink(tmp)
            return False
        os.replace(tmp, target)
        return True
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(data: bytes, target: Path) -> bool:
    """Write ``data`` atomically; False (the old file untouched) if it already holds it."""
    if target.is_file() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return True


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_zip(path: Path, kind: str, changed: bool = True) -> Artefact:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    return Artefact(path.name, path, path.stat().st_size, sum(i.file_size for i in infos),
                    sha256(path), len(infos), kind, changed)


def describe_file(path: Path, kind: str, changed: bool = True) -> Artefact:
    size = path.stat().st_size
    return Artefact(path.name, path, size, size, sha256(path), 1, kind, changed)
