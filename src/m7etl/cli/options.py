"""Options every AWS-facing command shares, and the context they build.

``--env`` picks the table of ``m7etl.toml``; ``--config``, ``--profile`` and ``--region``
override it; ``--output json`` makes stdout one JSON document (messages go to stderr).
Endpoints: ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by boto3
itself; the environment's ``endpoint_url`` / ``endpoints`` keys add to them.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from m7etl.deploy.config import EnvConfig, load_env
from m7etl.storage.aws import INTERACTIVE, Clients

# Exit codes, documented in README ("Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1  # an expected error: one line on stderr says what and what to do
EXIT_FAILED = 2  # the command ran and the outcome is a failure (rollback, failed run or check)
EXIT_INTERRUPTED = 130  # Ctrl-C (the shell's 128 + SIGINT): watching stopped, not the work


@dataclass
class Context:
    """What a command needs: the environment's configuration, its clients, how to print."""

    config: EnvConfig
    clients: Clients
    output: str  # "text" or "json"

    @property
    def json(self) -> bool:
        return self.output == "json"

    def info(self, message: str = "") -> None:
        """A message for the person at the terminal: stdout in text mode, stderr in JSON mode."""
        click.echo(message, err=self.json)

    def warn(self, message: str) -> None:
        click.secho(message, fg="yellow", err=True)

    def result(self, document: Any) -> None:
        """The command's result: printed as JSON in JSON mode, nothing in text mode."""
        if self.json:
            click.echo(json.dumps(document, indent=2, default=str, sort_keys=True))


def env_options(command):
    """Add ``--env``, ``--config``, ``--profile``, ``--region``, ``--output``; pass ``ctx``."""

    @click.option("--env", "env", default="test", show_default=True, metavar="NAME",
                  help="Environment: a table of m7etl.toml (names m7-etl-data-solocco-NAME, ...).")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Configuration file (default: ./m7etl.toml or a parent's, or $M7ETL_CONFIG).")
    @click.option("--profile", help="AWS profile (overrides the file's).")
    @click.option("--region", help="AWS region (overrides the file's).")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
                  help="json: one JSON document on stdout, messages on stderr.")
    @functools.wraps(command)
    def wrapper(env: str, config_path: Path | None, profile: str | None, region: str | None,
                output: str, **kwargs):
        config = load_env(env, config_path).with_flags(profile=profile, region=region)
        clients = Clients(config.profile, config.region, config.endpoint_url, config.endpoints,
                          config=INTERACTIVE)
        return command(Context(config, clients, output), **kwargs)

    return wrapper


def is_interactive() -> bool:
    return sys.stdin.isatty()
