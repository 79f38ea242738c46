"""Where the sources of the artefacts are: the project's checkout."""

from __future__ import annotations

from pathlib import Path

from m7etl.exceptions import PackageError

CORE_PACKAGE = "m7etl"


def project_root(start: Path | None = None) -> Path:
    """The checkout holding ``lambda_src/`` and ``src/m7etl`` (cwd first, then this file's)."""
    for candidate in (start or Path.cwd(), Path(__file__).resolve().parents[3]):
        if (candidate / "lambda_src").is_dir() and (candidate / "src" / CORE_PACKAGE).is_dir():
            return candidate.resolve()
    raise PackageError("Cannot find lambda_src/ and src/m7etl/.",
                       hint="Run m7etl package from the project's checkout.")
