"""People's email contacts: from the MIS roll's `contact_email` and `guardian_emails` columns and
`people contacts`, who a consent request goes to, and what an erasure leaves of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from consent_db.models import AuditEvent, ConsentLink, OutboxMessage, Person, PersonContact
from consent_db.session import unit_of_work
from helpers import person_row, run, write_csv


def _contacts(runtime: Any, external_id: str) -> list[dict[str, Any]]:
    result = run(runtime, "people", "contacts", external_id, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)["contacts"]
    return rows


def _import(runtime: Any, tmp_path: Path, *rows: dict[str, str]) -> Any:
    return run(runtime, "people", "import", "--json", write_csv(tmp_path / "people.csv", list(rows)))


def test_the_mis_roll_brings_contacts_and_a_later_roll_replaces_them(runtime: Any, tmp_path: Path) -> None:
    row = person_row(
        "L001",
        None,
        tmp_path,
        date_of_birth="2014-03-27",
        granted_by="parent",
        contact_email="amy@pupils.example",
        guardian_emails="Mother:mum@example.org; carer : nan@example.org ; dad@example.org",
    )
    result = _import(runtime, tmp_path, row)
    assert result.exit_code == 0, result.output
    changes = [c for c in json.loads(result.stdout)["changes"] if c["action"] == "contact"]
    assert len(changes) == 4
    assert _contacts(runtime, "L001") == [
        {"email": "amy@pupils.example", "role": "self", "relationship": None},
        {"email": "mum@example.org", "role": "parent", "relationship": "Mother"},
        {"email": "nan@example.org", "role": "guardian", "relationship": "carer"},
        {"email": "dad@example.org", "role": "parent", "relationship": "parent"},
    ]
    # The same roll again changes nothing; a roll without dad and the learner's own address removes them.
    assert [
        c for c in json.loads(_import(runtime, tmp_path, row).stdout)["changes"] if c["action"] == "contact"
    ] == []
    result = _import(
        runtime, tmp_path, {**row, "contact_email": "", "guardian_emails": "mother:mum@example.org"}
    )
    assert result.exit_code == 0, result.output
    assert [c["email"] for c in _contacts(runtime, "L001")] == ["mum@example.org"]
    with unit_of_work(runtime.sessions) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like("contact.%"))).all()
        # Audited by role only: the chain outlives an erasure, an address must not.
        assert events and all("@" not in json.dumps(e.details) for e in events)


def test_a_bad_address_in_the_roll_is_reported_by_line_and_the_row_is_not_imported(
    runtime: Any, tmp_path: Path
) -> None:
    good = person_row("L001", None, tmp_path, guardian_emails="mum@example.org")
    bad = person_row("L002", None, tmp_path, guardian_emails="mother:not an address")
    result = _import(runtime, tmp_path, good, bad)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["problems"] == [{"line": 3, "reason": "not one plain email address: 'not an address'"}]
    with unit_of_work(runtime.sessions) as session:
        assert session.scalar(select(Person).where(Person.external_id == "L002")) is None


def test_people_contacts_adds_and_removes_and_explains_what_it_refuses(runtime: Any, tmp_path: Path) -> None:
    assert _import(runtime, tmp_path, person_row("L001", None, tmp_path)).exit_code == 0
    result = run(
        runtime,
        "people",
        "contacts",
        "L001",
        "--add",
        "guardian:g@example.org",
        "--add",
        "self:me@example.org",
    )
    assert result.exit_code == 0, result.output
    assert "g@example.org" in result.stdout and "own address" in result.stdout
    assert [(c["email"], c["role"]) for c in _contacts(runtime, "L001")] == [
        ("me@example.org", "self"),
        ("g@example.org", "guardian"),
    ]
    # A second own address replaces the first.
    run(runtime, "people", "contacts", "L001", "--add", "self:new@example.org")
    assert [c["email"] for c in _contacts(runtime, "L001")] == ["new@example.org", "g@example.org"]
    result = run(runtime, "people", "contacts", "L001", "--remove", "g@example.org")
    assert result.exit_code == 0 and [c["email"] for c in _contacts(runtime, "L001")] == ["new@example.org"]
    for bad, words in (
        (("--add", "mother:nope"), "not one plain email address"),
        (("--remove", "who@example.org"), "L001 has no contact who@example.org"),
    ):
        result = run(runtime, "people", "contacts", "L001", *bad)
        assert result.exit_code == 1 and words in result.output, result.output
    assert run(runtime, "people", "contacts", "NOBODY").exit_code == 1


def test_consent_request_asks_those_who_may_answer_and_reports_the_rest(runtime: Any, tmp_path: Path) -> None:
    rows = [
        person_row(
            "CHILD",
            None,
            tmp_path,
            date_of_birth="2016-01-01",
            channels="",
            guardian_emails="mum@example.org",
        ),
        person_row("ADULT", None, tmp_path, channels="", contact_email="adult@example.org"),
        person_row("NOONE", None, tmp_path, channels=""),
        person_row("DONE", None, tmp_path, channels="website;social_media;print;press;internal"),
    ]
    assert _import(runtime, tmp_path, *rows).exit_code == 0
    result = run(runtime, "consent", "request", "--all-without-answer", "--json")
    assert result.exit_code == 1  # someone could not be asked
    report = json.loads(result.stdout)
    assert report["sent"] == [{"external_id": "ADULT", "links": 1}, {"external_id": "CHILD", "links": 1}]
    assert report["skipped"] == [
        {"external_id": "NOONE", "why": "NOONE has no contact who may answer: add their own email address"}
    ]
    with unit_of_work(runtime.sessions) as session:
        sent = {m.recipients[0]: m for m in session.scalars(select(OutboxMessage))}
        assert set(sent) == {"mum@example.org", "adult@example.org"}
        assert all(m.state == "queued" for m in sent.values())  # no SMTP server configured
        links = session.scalars(select(ConsentLink)).all()
        # Every channel for the child; the token itself is never stored.
        assert all(len(link.token_hash) == 64 for link in links)
    result = run(runtime, "consent", "request", "--people", "CHILD", "--channels", "website,nowhere")
    assert result.exit_code == 1 and "nowhere" in result.output
    assert run(runtime, "consent", "request").exit_code == 2


def test_erasing_a_person_erases_their_contacts_and_closes_their_links(runtime: Any, tmp_path: Path) -> None:
    row = person_row(
        "L001", None, tmp_path, date_of_birth="2015-05-05", channels="", guardian_emails="mum@example.org"
    )
    assert _import(runtime, tmp_path, row).exit_code == 0
    assert run(runtime, "consent", "request", "--people", "L001").exit_code == 0
    result = run(runtime, "people", "erase", "L001")
    assert result.exit_code == 0, result.output
    now = datetime.now(UTC)
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(PersonContact)).all() == []
        [link] = session.scalars(select(ConsentLink)).all()
        assert link.contact_id is None and link.expires_at <= now
        [message] = session.scalars(select(OutboxMessage)).all()
        assert message.recipients == [] and message.state == "failed"
