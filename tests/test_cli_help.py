"""Every command and option of `gatekeeper` explains itself."""

from __future__ import annotations

from collections.abc import Iterator

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
