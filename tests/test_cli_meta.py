"""Every command has help text with an example, and is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from m7etl.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_has_help_and_is_in_the_readme(name):
    command = cli.commands[name]
    assert command.help and len(command.help.strip()) > 10
    for param in command.params:
        if param.param_type_name == "option" and not param.hidden:
            assert param.help, f"{name} {param.opts[0]} has no help text"
    assert f"m7etl {name}" in README
    assert f"Example: m7etl {name}" in command.help, f"{name}'s help has no example"
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_readme_opens_with_the_two_commands():
    head = README[:1500]
    assert "make demo" in head and "make test" in head
