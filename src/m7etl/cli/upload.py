"""``m7etl upload --env E``: the guide's step 2 in one command."""

from __future__ import annotations

from pathlib import Path

import click

from m7etl.cli.options import Context, env_options
from m7etl.cli.render.upload import UploadBars, console, print_report
from m7etl.deploy.upload import upload_environment


@click.command("upload")
@click.option("--skip-build", is_flag=True,
              help="Upload what is in the build folder as is (a missing file is an error).")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the built artefacts (default: build/ in the project).")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The checkout holding dags/ and templates/ (default: found from the "
                   "current folder).")
@click.option("--wheel-cache", type=click.Path(file_okay=False, path_type=Path),
              help="Folder caching the layer's wheels (default: .work/wheels).")
@env_options
def command(ctx: Context, skip_build: bool, build_dir: Path | None, project_dir: Path | None,
            wheel_cache: Path | None) -> None:
    """Build what is missing or stale, then upload every artefact to the code bucket in the
    guide's layout (lambda/, glue/, layers/, dags/, requirements/, templates/). Unchanged
    objects (same sha256 metadata) are skipped; prints the S3 version ids to pin.

    Example: m7etl upload --env test
    """
    out = console(ctx.json)
    with UploadBars(out) as bars:
        report = upload_environment(ctx.config, ctx.clients, build=not skip_build,
                                    root=project_dir, build_dir=build_dir,
                                    wheel_cache=wheel_cache, progress=bars, on_step=ctx.info)
    if not ctx.json:
        print_report(out, report)
    for warning in report.warnings:
        ctx.warn(f"Warning: {warning}")
    ctx.result(report.to_dict())
