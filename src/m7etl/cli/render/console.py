"""The one rich console the commands print through.

On click's stdout, or stderr when stdout carries the ``--output json`` document. Off a
terminal (a CI log, a pipe) tables get 160 columns instead of rich's 80, so logical ids,
keys and version ids are not folded.
"""

from __future__ import annotations

import click
from rich.console import Console

LOG_WIDTH = 160


def console(json_mode: bool, *, soft_wrap: bool = True) -> Console:
    file = click.get_text_stream("stderr" if json_mode else "stdout")
    out = Console(file=file, highlight=False, soft_wrap=soft_wrap)
    if not out.is_terminal:
        out.width = max(out.width, LOG_WIDTH)
    return out
