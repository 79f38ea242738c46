"""The CLI's single error boundary.

Library code raises :class:`m7etl.exceptions.M7Error` (or botocore's errors); here they
become one line on stderr and exit code 1. ``--debug`` re-raises to show the traceback.
"""

from __future__ import annotations

import sys

import click

from m7etl.exceptions import M7Error


def _message(exc: BaseException) -> str | None:
    if isinstance(exc, M7Error):
        return str(exc)
    try:
        from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = exc.operation_name
        return f"AWS refused {op}: {err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": ")
    if isinstance(exc, NoCredentialsError):
        return ("No AWS credentials found. Configure them (aws configure, AWS_PROFILE or "
                "environment variables) and run again.")
    if isinstance(exc, NoRegionError):
        return "No AWS region set. Pass --region or set AWS_REGION and run again."
    return None


class ErrorBoundaryGroup(click.Group):
    """A Click group that turns expected errors into one message and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            message = _message(exc)
            debug = bool(ctx.obj and ctx.obj.get("debug")) or "--debug" in sys.argv
            if message is None or debug:
                raise
            click.secho(f"Error: {message}", fg="red", err=True)
            ctx.exit(1)
