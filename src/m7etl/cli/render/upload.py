"""What ``m7etl upload`` prints: a bar per large file, the objects table, the totals line.

The bars are drawn only on a terminal: in CI logs a redrawn bar is noise, and the table
says what happened to every file anyway.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from m7etl.cli.render.console import console as shared_console
from m7etl.deploy.upload import LARGE_FILE, ObjectResult, UploadItem, UploadProgress, UploadReport


def console(json_mode: bool) -> Console:
    return shared_console(json_mode, soft_wrap=False)


def human_size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


class UploadBars(UploadProgress):
    """A rich bar for each file over :data:`LARGE_FILE` (the layer is about 48 MB)."""

    def __init__(self, out: Console, threshold: int = LARGE_FILE):
        self.out = out
        self.threshold = threshold
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> UploadBars:
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start(self, item: UploadItem) -> None:
        if item.size < self.threshold or not self.out.is_terminal:
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), console=self.out)
            self.progress.start()
        self.tasks[item.key] = self.progress.add_task(item.key, total=item.size)

    def advance(self, item: UploadItem, nbytes: int) -> None:
        if self.progress is not None and item.key in self.tasks:
            self.progress.advance(self.tasks[item.key], nbytes)

    def finish(self, result: ObjectResult) -> None:
        task = self.tasks.get(result.item.key)
        if self.progress is not None and task is not None:
            self.progress.update(task, completed=result.item.size)


def objects_table(report: UploadReport) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)  # narrow: fold the version, not the rest
    table.add_column("key", no_wrap=True)
    table.add_column("action", no_wrap=True, min_width=8)
    table.add_column("size", justify="right", no_wrap=True, min_width=8)
    table.add_column("version", overflow="fold")
    for o in report.objects:
        table.add_row(o.item.key, o.action, human_size(o.item.size), o.version_id or "-")
    return table


def totals_line(report: UploadReport) -> str:
    return (f"Uploaded {len(report.uploaded)} file(s), {human_size(report.bytes_uploaded)}; "
            f"skipped {len(report.skipped)} unchanged")


def print_report(out: Console, report: UploadReport) -> None:
    out.print(objects_table(report))
    out.print(totals_line(report), soft_wrap=True)
    if report.template_url:
        out.print(f"Template URL: {report.template_url}", soft_wrap=True)
