"""Plain-text tables for the terminal (no dependency beyond click)."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[object]], right: set[int] | None = None) -> str:
    """Aligned columns; ``right`` holds the indexes of right-aligned (numeric) columns."""
    right = right or set()
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        return "  ".join(parts).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)
