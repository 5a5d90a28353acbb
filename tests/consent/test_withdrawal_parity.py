"""Withdrawing is at least as easy as granting (UK GDPR art. 7(3)): every grant has a withdrawal
that needs no more than the grant did, and it takes effect at once."""

from __future__ import annotations

import json
from typing import Any

import click
import factories
import pytest

from consent_db.session import unit_of_work
from gatekeeper.cli import main
from helpers import run

# (grant command, withdrawal command): paths under `gatekeeper`.
PAIRS = [
    (("consent", "grant"), ("consent", "withdraw")),
    (("consent", "biometric"), ("consent", "biometric")),
]


def command(path: tuple[str, ...]) -> click.Command:
    found: click.Command = main
    for name in path:
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


def required(cmd: click.Command) -> set[str]:
    return {p.name or "" for p in cmd.params if p.required}


@pytest.mark.parametrize(("grant", "withdraw"), PAIRS)
def test_a_withdrawal_needs_no_more_than_the_grant(grant, withdraw):
    assert required(command(withdraw)) <= required(command(grant))


def summary(runtime: Any, external_id: str) -> dict[str, Any]:
    result = run(runtime, "people", "show", external_id, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_the_shortest_withdrawal_undoes_what_the_fullest_grant_gave(runtime: Any) -> None:
    with unit_of_work(runtime.sessions) as session:
        factories.person(session, "P1", channels=())
    granted = [
        run(runtime, "consent", "grant", "P1", "--channel", name, "--granted-by", "self", "--named", "yes")
        for name in ("website", "print")
    ]
    bio = run(runtime, "consent", "biometric", "P1", "grant", "--role", "self")
    assert [r.exit_code for r in (*granted, bio)] == [0, 0, 0], [r.output for r in (*granted, bio)]
    before = summary(runtime, "P1")
    assert [c["publishable"] for c in before["channels"] if c["channel"] in ("website", "print")] == [
        True,
        True,
    ]
    assert before["biometric_consent"] is True

    # Nothing but the person's id: every channel, and biometric consent.
    assert run(runtime, "consent", "withdraw", "P1").exit_code == 0
    assert run(runtime, "consent", "biometric", "P1", "withdraw").exit_code == 0

    after = summary(runtime, "P1")
    assert not any(c["publishable"] for c in after["channels"])
    assert after["biometric_consent"] is False
