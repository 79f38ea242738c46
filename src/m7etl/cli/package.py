"""``m7etl package``: build the Lambda zips and the etl-dependencies layer in build/."""

from __future__ import annotations

from pathlib import Path

import click

from m7etl.cli.render import text_table
from m7etl.deploy.artefacts import (
    ARCHS,
    BUDGET,
    DEFAULT_ARCH,
    DEFAULT_RUNTIME,
    GLUE_DIR,
    LAMBDA_UNZIPPED_LIMIT,
    RUNTIMES,
    build_all,
    size_rows,
)


@click.command("package")
@click.option("--runtime", type=click.Choice(sorted(RUNTIMES)), default=DEFAULT_RUNTIME,
              show_default=True, help="Lambda runtime the layer's wheels are built for.")
@click.option("--arch", type=click.Choice(sorted(ARCHS)), default=DEFAULT_ARCH,
              show_default=True, help="Lambda architecture the layer's wheels are built for.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Folder the zips are written to.")
@click.option("--skip-layer", is_flag=True,
              help="Build only the function zips (the layer in --out, if any, is kept).")
@click.option("--wheel-cache", type=click.Path(file_okay=False, path_type=Path),
              help="Folder caching the downloaded wheels (default: .work/wheels).")
def command(runtime: str, arch: str, out_dir: Path, skip_layer: bool,
            wheel_cache: Path | None) -> None:
    """Build raw_to_silver.zip, silver_to_gold.zip, s3_event.zip, maintenance.zip,
    etl-dependencies.zip (reproducible; sizes checked against Lambda's limit), and the Glue
    job's glue/gold_to_snowflake.py and glue/m7etl_glue.zip.

    Example: m7etl package --runtime python3.12 --arch x86_64
    """
    if not skip_layer:
        click.echo(f"Building the layer for {runtime} {arch} (pip, manylinux wheels)...", err=True)
    result = build_all(out_dir, runtime=runtime, arch=arch, skip_layer=skip_layer,
                       wheel_cache=wheel_cache)
    click.echo(text_table(["artefact", "zipped", "unzipped", "with layer", "file", "sha256"],
                     size_rows(result), right={1, 2, 3}))
    if result.layer is None:
        click.echo("\nNo layer in the output folder: the budget was checked on the functions "
                   "alone.")
    click.echo(f"\nBudget per function + layer (unzipped): {BUDGET:,} bytes "
               f"(Lambda's limit {LAMBDA_UNZIPPED_LIMIT:,} minus margin). Output: {out_dir}/ "
               f"(the Glue job's files in {out_dir / GLUE_DIR}/).")
