"""The CLI's single error boundary.

Library code raises :class:`m7etl.exceptions.M7Error` (or botocore's errors); here they
become one line on stderr and exit code 1. ``--debug`` re-raises to show the traceback.
"""

from __future__ import annotations

import sys

import click

from m7etl.exceptions import M7Error
from m7etl.storage import errors

# What to do next, by the kind of AWS error (m7etl.storage.errors): a refusal alone is
# not an answer.
NEXT_STEP = {
    errors.THROTTLED: " AWS is throttling the calls: run the command again in a minute.",
    errors.TRANSIENT: " A transient AWS failure: run the command again.",
    errors.EXPIRED: " Refresh the credentials (e.g. aws sso login) and run again.",
    errors.DENIED: " Grant the caller that permission, or use --profile for one that has it.",
}


def _message(exc: BaseException) -> str | None:
    if isinstance(exc, M7Error):
        return str(exc)
    try:
        from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    kind = errors.classify(exc)
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        refused = f"AWS refused {exc.operation_name}: {err.get('Code', '?')}: " \
                  f"{err.get('Message', '')}".rstrip(": ")
        return refused + NEXT_STEP.get(kind, "")
    if kind == errors.TRANSIENT and type(exc).__module__.startswith(("botocore", "urllib3")):
        return (f"Cannot reach AWS ({type(exc).__name__}: {exc}). Check the network and run "
                "again.")
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):  # this machine's disk
        where = f" ({exc.filename})" if exc.filename else ""
        return (f"A local file operation failed{where}: {exc.strerror or exc}. Check the disk "
                "space and permissions there (TMPDIR for temporary files), then run again.")
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
