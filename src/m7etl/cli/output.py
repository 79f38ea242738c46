"""Terminal output helpers for the CLI."""

from m7etl.report import text_table as table

__all__ = ["table"]
