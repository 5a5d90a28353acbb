"""Every command and option of `gatekeeper` explains itself, from the root group down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gatekeeper.cli import main


def commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from commands(command, path)


ALL = list(commands(main))
GROUPS = [((), main)] + [(path, command) for path, command in ALL if isinstance(command, click.Group)]


def test_the_expected_commands_exist() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {
        "people import",
        "people show",
        "consent grant",
        "consent withdraw",
        "gate",
        "strip",
        "audit verify",
        "publish",
        "publications add",
        "takedowns list",
        "takedowns done",
        "worker",
        "jobs",
        "db upgrade",
        "audit show",
        "audit export",
        "audit head",
        "review list",
        "review resolve",
    } <= names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert command.help, path
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, (path, param.name)
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_the_root_group_has_help() -> None:
    assert main.help
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize(("path", "group"), GROUPS, ids=[" ".join(p) or "gatekeeper" for p, _ in GROUPS])
def test_every_group_lists_its_commands_with_a_summary(path: tuple[str, ...], group: click.Group) -> None:
    listing = CliRunner().invoke(main, [*path, "--help"]).output.split("Commands:\n", 1)[1]
    # One row per command: its name two spaces in, then its summary.
    rows = [line.split(maxsplit=1) for line in listing.splitlines() if line[:3].strip() and line[:2] == "  "]
    assert sorted(row[0] for row in rows) == sorted(group.commands), path
    assert all(len(row) == 2 for row in rows), path


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_takes_h_for_help(path: tuple[str, ...], command: click.Command) -> None:
    runner = CliRunner()
    assert runner.invoke(main, [*path, "-h"]).output == runner.invoke(main, [*path, "--help"]).output


def test_every_command_is_defined_in_a_module_of_the_command_line_package() -> None:
    modules = {" ".join(path): getattr(command.callback, "__module__", "") for path, command in ALL}
    assert {p: m for p, m in modules.items() if not m.startswith("gatekeeper.cli.")} == {}


def test_python_m_gatekeeper_cli_runs_the_same_command() -> None:
    """`python -m gatekeeper.cli` registers the same commands as the installed `gatekeeper` script."""
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # Help is laid out 78 columns wide both ways (a terminal of 80 columns, less click's margin).
    expected = CliRunner().invoke(main, ["--help"], prog_name="python -m gatekeeper.cli", terminal_width=78)
    assert expected.exit_code == 0
    assert result.stdout == expected.output
