"""``m7etl doctor``: one line per check (status, name, detail, and the fix when it has one)."""

from __future__ import annotations

from collections.abc import Iterator

from rich.markup import escape

from m7etl.cli.render.console import console
from m7etl.deploy.doctor import FAIL, PASS, SKIP, WARN, Check

STYLE = {PASS: "green", FAIL: "bold red", WARN: "yellow", SKIP: "dim"}


def lines(checks: list[Check]) -> Iterator[str]:
    """Plain lines (what tests and logs read); :func:`show` colours the status word."""
    width = max((len(c.name) for c in checks), default=0)
    for c in checks:
        fix = f" Fix: {c.fix}" if c.fix and c.status in (FAIL, WARN) else ""
        yield f"{c.status}  {c.name.ljust(width)}  {c.detail}{'.' if fix else ''}{fix}"


def summary(checks: list[Check], env: str) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, WARN, SKIP)}
    line = (f"{len(checks)} checks: {counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[WARN]} warned, {counts[SKIP]} skipped.")
    if counts[FAIL]:
        line += f" Fix the failed check(s) and run m7etl doctor --env {env} again."
    return line


def show(checks: list[Check], env: str, json_mode: bool) -> None:
    out = console(json_mode)
    for check, line in zip(checks, lines(checks), strict=True):
        word, rest = line[:len(check.status)], line[len(check.status):]
        out.print(f"[{STYLE[check.status]}]{word}[/]{escape(rest)}")
    out.print(summary(checks, env))
