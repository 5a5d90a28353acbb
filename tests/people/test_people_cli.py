"""Importing people and consent from CSV, and managing one person's consent, from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from consent_db.models import AuditEvent, ConsentRecord, FaceTemplate, Person
from consent_db.session import unit_of_work
from helpers import person_row, run, write_csv


def counts(runtime: Any) -> dict[str, int]:
    with unit_of_work(runtime.sessions) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Person, ConsentRecord, FaceTemplate, AuditEvent)
        }


def show(runtime: Any, external_id: str) -> dict[str, Any]:
    result = run(runtime, "people", "show", external_id, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def channel(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in summary["channels"] if c["channel"] == name)


def test_a_csv_with_bom_and_extra_columns_imports(runtime: Any, tmp_path: Path) -> None:
    rows = [
        person_row("L001", None, tmp_path, channels="website;social_media:instagram", named="first_name"),
        person_row("L002", None, tmp_path, name="Zoë Ångström", channels=""),
    ]
    result = run(runtime, "people", "import", write_csv(tmp_path / "p.csv", rows, bom=True, extra=True))
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 imported" in result.stdout
    summary = show(runtime, "L001")
    assert channel(summary, "website")["publishable"] is True
    assert channel(summary, "social_media:instagram")["publishable"] is True
    assert channel(summary, "social_media")["publishable"] is False
    assert channel(summary, "website")["named"] == "first_name"
    assert show(runtime, "L002")["name"] == "Zoë Ångström"


def test_reimporting_the_same_file_changes_nothing(runtime: Any, tmp_path: Path) -> None:
    rows = [
        person_row("L001", None, tmp_path, channels="website;print", granted_on=""),
        person_row("L002", None, tmp_path, valid_until="2027-07-31"),
    ]
    csv = write_csv(tmp_path / "p.csv", rows)
    assert run(runtime, "people", "import", csv).exit_code == 0
    before = counts(runtime)
    result = run(runtime, "people", "import", csv)
    assert result.exit_code == 0
    assert "0 imported, 2 unchanged" in result.stdout
    assert counts(runtime) == before


def test_a_changed_row_adds_records_and_keeps_the_history(runtime: Any, tmp_path: Path) -> None:
    assert (
        run(
            runtime,
            "people",
            "import",
            write_csv(tmp_path / "a.csv", [person_row("L001", None, tmp_path, channels="website;print")]),
        ).exit_code
        == 0
    )
    changed = [person_row("L001", None, tmp_path, channels="website", named="yes")]
    assert run(runtime, "people", "import", write_csv(tmp_path / "b.csv", changed)).exit_code == 0
    summary = show(runtime, "L001")
    actions = [(r["channel"], r["action"], r["named"]) for r in summary["history"]]
    assert actions == [
        ("website", "grant", "no"),
        ("print", "grant", "no"),
        ("website", "grant", "yes"),
        ("print", "withdraw", None),
    ]
    assert channel(summary, "website")["named"] == "yes"
    assert channel(summary, "print")["reasons"] == ["consent_withdrawn"]


def test_bad_rows_are_reported_by_line_and_good_rows_still_import(runtime: Any, tmp_path: Path) -> None:
    rows = [
        person_row("L001", None, tmp_path),
        person_row("L002", None, tmp_path, date_of_birth="2010-13-01"),
        person_row("L003", None, tmp_path, channels="website;billboards"),
        person_row("", None, tmp_path),
        person_row("L005", None, tmp_path, granted_by="teacher"),
        person_row("L001", None, tmp_path, name="Duplicate"),
        person_row("L007", None, tmp_path, named="maybe"),
        person_row("L008", None, tmp_path, photos="missing.jpg", biometric_consent="yes"),
        person_row("L009", None, tmp_path),
    ]
    result = run(runtime, "people", "import", write_csv(tmp_path / "p.csv", rows), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    problems = {p["line"]: p["reason"] for p in report["problems"]}
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 9]
    assert "date_of_birth" in problems[3]
    assert "billboards" in problems[4]
    assert "external_id is empty" in problems[5]
    assert "granted_by" in problems[6]
    assert "already on line 2" in problems[7]
    assert "named" in problems[8]
    assert "missing.jpg" in problems[9]
    assert report["imported"] == 2
    assert (report["people_created"], report["consent_records_added"]) == (2, 2)
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(Person.external_id).order_by(Person.external_id)).all() == [
            "L001",
            "L009",
        ]


def test_a_csv_without_the_required_header_is_refused_whole(runtime: Any, tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("id,name\nL001,Ann\n", encoding="utf-8")
    result = run(runtime, "people", "import", bad)
    assert result.exit_code == 1
    assert "lacks column(s): external_id" in result.output
    assert counts(runtime)["people"] == 0


def test_a_csv_that_is_not_utf8_is_refused(runtime: Any, tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_bytes(",".join(["external_id", "name"]).encode() + b"\nL001,Zo\xeb\n")
    result = run(runtime, "people", "import", bad)
    assert result.exit_code == 1
    assert "not UTF-8" in result.output


def test_an_enrolment_photo_with_two_faces_stores_nothing_of_its_row(
    runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    rows = [
        person_row("G1", corpus.faces_dir / "group/two_people.jpg", tmp_path),
        person_row("N1", corpus.metadata_dir / "canon_eos_40d.jpg", tmp_path),
        person_row("OK", corpus.faces_dir / "biden/biden.jpg", tmp_path),
    ]
    result = run(runtime, "people", "import", write_csv(tmp_path / "p.csv", rows), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    problems = {p["line"]: p["reason"] for p in report["problems"]}
    assert "two_people.jpg" in problems[2] and "2" in problems[2]
    assert "canon_eos_40d.jpg" in problems[3]
    assert (report["people_created"], report["templates_added"], report["consent_records_added"]) == (1, 1, 2)
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(Person.external_id)).all() == ["OK"]
        assert session.scalar(select(func.count()).select_from(FaceTemplate)) == 1
        assert session.scalar(select(func.count()).select_from(ConsentRecord)) == 2  # website + biometric


def test_templates_are_made_only_with_biometric_consent_and_deleted_when_it_goes(
    runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    photo = corpus.faces_dir / "biden/biden.jpg"
    no_bio = [person_row("B1", photo, tmp_path, biometric_consent="no")]
    assert run(runtime, "people", "import", write_csv(tmp_path / "a.csv", no_bio)).exit_code == 0
    assert show(runtime, "B1")["templates"] == 0
    assert (
        run(
            runtime, "people", "import", write_csv(tmp_path / "b.csv", [person_row("B1", photo, tmp_path)])
        ).exit_code
        == 0
    )
    assert show(runtime, "B1")["templates"] == 1
    assert show(runtime, "B1")["biometric_consent"] is True
    assert run(runtime, "people", "import", write_csv(tmp_path / "a.csv", no_bio)).exit_code == 0
    summary = show(runtime, "B1")
    assert (summary["templates"], summary["biometric_consent"]) == (0, False)
    with unit_of_work(runtime.sessions) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "template.deleted")
            )
            == 1
        )


def test_grant_and_withdraw_one_person_from_the_command_line(runtime: Any, tmp_path: Path) -> None:
    # A learner: a parent's grant holds until the age threshold (an adult needs their own).
    rows = [person_row("L001", None, tmp_path, channels="", date_of_birth="2020-05-05")]
    assert run(runtime, "people", "import", write_csv(tmp_path / "p.csv", rows)).exit_code == 0
    result = run(
        runtime,
        "consent",
        "grant",
        "L001",
        "--channel",
        "print",
        "--granted-by",
        "parent",
        "--granted-by-name",
        "Pat Parent",
        "--until",
        "2099-12-31",
        "--named",
        "first_name",
    )
    assert result.exit_code == 0, result.output
    assert (
        run(runtime, "consent", "grant", "L001", "--channel", "website", "--granted-by", "parent").exit_code
        == 0
    )
    summary = show(runtime, "L001")
    assert channel(summary, "print")["publishable"] is True
    assert channel(summary, "print")["valid_until"].startswith("2100-01-01")
    assert run(runtime, "consent", "withdraw", "L001", "--channel", "print").exit_code == 0
    assert channel(show(runtime, "L001"), "print")["reasons"] == ["consent_withdrawn"]
    assert channel(show(runtime, "L001"), "website")["publishable"] is True
    assert run(runtime, "consent", "withdraw", "L001").exit_code == 0
    summary = show(runtime, "L001")
    assert not any(c["publishable"] for c in summary["channels"])
    text = run(runtime, "people", "show", "L001").stdout
    assert "NOT publishable: consent_withdrawn" in text and "history:" in text


def test_consent_commands_refuse_unknown_people_and_channels(runtime: Any, tmp_path: Path) -> None:
    result = run(runtime, "consent", "grant", "NOPE", "--channel", "website", "--granted-by", "self")
    assert result.exit_code == 1
    assert "no person with external id 'NOPE'" in result.output
    assert (
        run(
            runtime, "people", "import", write_csv(tmp_path / "p.csv", [person_row("L001", None, tmp_path)])
        ).exit_code
        == 0
    )
    result = run(runtime, "consent", "grant", "L001", "--channel", "billboards", "--granted-by", "self")
    assert result.exit_code == 1
    assert "unknown channel 'billboards'" in result.output
    result = run(
        runtime,
        "consent",
        "grant",
        "L001",
        "--channel",
        "website",
        "--granted-by",
        "self",
        "--until",
        "2001-01-01",
    )
    assert result.exit_code == 1 and "in the past" in result.output
    assert run(runtime, "people", "show", "NOPE").exit_code == 1


def test_every_change_is_audited_in_an_intact_chain(runtime: Any, tmp_path: Path) -> None:
    rows = [person_row("L001", None, tmp_path, channels="website;print")]
    assert run(runtime, "people", "import", write_csv(tmp_path / "p.csv", rows)).exit_code == 0
    assert run(runtime, "consent", "withdraw", "L001", "--channel", "print").exit_code == 0
    with unit_of_work(runtime.sessions) as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["person.created", "consent.grant", "consent.grant", "consent.withdraw"]
    result = run(runtime, "audit", "verify")
    assert result.exit_code == 0 and "4 events" in result.stdout
