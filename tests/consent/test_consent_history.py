"""A consent history an import cannot corrupt, and the rough edges of the people and consent commands."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consent_db.models import AuditEvent, ConsentRecord, FaceTemplate, Person
from consent_db.session import unit_of_work
from gatekeeper.consent import mis_csv as people_csv
from gatekeeper.consent import mis_import as people_import
from gatekeeper.consent import records as consent_service
from helpers import add_person, person_row, run, write_csv


def counts(runtime: Any) -> dict[str, int]:
    with unit_of_work(runtime.sessions) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Person, ConsentRecord, FaceTemplate, AuditEvent)
        }


def audit_actions(runtime: Any) -> list[str]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all())


def show(runtime: Any, external_id: str) -> dict[str, Any]:
    result = run(runtime, "people", "show", external_id, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def channel(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in summary["channels"] if c["channel"] == name)


def import_json(runtime: Any, csv: Path) -> tuple[int, dict[str, Any]]:
    result = run(runtime, "people", "import", csv, "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def grant(runtime: Any, external_id: str, channel_name: str, *extra: str) -> Any:
    result = run(runtime, "consent", "grant", external_id, "--channel", channel_name, *extra)
    assert result.exit_code == 0, result.output
    return result


# --- re-importing after consent was recorded in the gatekeeper -------------------------------------


def test_reimporting_after_a_staff_grant_on_a_listed_channel_adds_nothing(
    runtime: Any, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "p.csv", [person_row("P1", None, tmp_path, channels="website")])
    assert run(runtime, "people", "import", csv).exit_code == 0
    grant(runtime, "P1", "website", "--granted-by", "parent", "--named", "yes")
    before = counts(runtime)
    for _ in range(2):
        code, report = import_json(runtime, csv)
        assert (code, report["imported"], report["unchanged"], report["changes"]) == (0, 0, 1, [])
    assert counts(runtime) == before
    assert channel(show(runtime, "P1"), "website")["named"] == "yes"


def test_an_import_never_withdraws_a_grant_made_in_the_gatekeeper(runtime: Any, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "p.csv", [person_row("P1", None, tmp_path, channels="website")])
    assert run(runtime, "people", "import", csv).exit_code == 0
    grant(runtime, "P1", "print", "--granted-by", "self")
    before = counts(runtime)
    code, report = import_json(runtime, csv)
    assert (code, report["changes"]) == (0, [])
    assert counts(runtime) == before
    assert channel(show(runtime, "P1"), "print")["publishable"] is True
    assert "consent.withdraw" not in audit_actions(runtime)


def test_a_channel_the_import_granted_is_withdrawn_by_it_unless_staff_granted_it_since(
    runtime: Any, tmp_path: Path
) -> None:
    both = write_csv(tmp_path / "a.csv", [person_row("P1", None, tmp_path, channels="website;print;press")])
    assert run(runtime, "people", "import", both).exit_code == 0
    grant(runtime, "P1", "press", "--granted-by", "self")
    code, report = import_json(
        runtime, write_csv(tmp_path / "b.csv", [person_row("P1", None, tmp_path, channels="website")])
    )
    assert code == 0
    assert [(c["action"], c["channel"]) for c in report["changes"]] == [("consent.withdraw", "print")]
    assert [(w["code"], w["message"].split(":")[0]) for w in report["warnings"]] == [
        ("gatekeeper_record_kept", "press")
    ]
    summary = show(runtime, "P1")
    assert channel(summary, "print")["reasons"] == ["consent_withdrawn"]
    assert channel(summary, "press")["publishable"] is True


def test_an_older_export_does_not_undo_a_withdrawal_recorded_in_the_gatekeeper(
    runtime: Any, tmp_path: Path
) -> None:
    rows = [person_row("P1", None, tmp_path, channels="website", granted_on="2025-09-01")]
    assert run(runtime, "people", "import", write_csv(tmp_path / "a.csv", rows)).exit_code == 0
    assert run(runtime, "consent", "withdraw", "P1", "--channel", "website").exit_code == 0
    before = counts(runtime)
    changed = [person_row("P1", None, tmp_path, channels="website", granted_on="2025-09-01", named="yes")]
    code, report = import_json(runtime, write_csv(tmp_path / "b.csv", changed))
    assert (code, report["changes"], report["consent_records_added"]) == (0, [], 0)
    assert [w["code"] for w in report["warnings"]] == ["gatekeeper_record_kept", "not_publishable"]
    assert "withdrawal recorded in the gatekeeper" in report["warnings"][0]["message"]
    assert counts(runtime) == before
    assert channel(show(runtime, "P1"), "website")["reasons"] == ["consent_withdrawn"]


def test_a_grant_dated_after_a_gatekeeper_withdrawal_is_imported(
    runtime: Any, tmp_path: Path, now: datetime
) -> None:
    def do_import(rows: list[dict[str, str]], at: datetime) -> people_import.ImportReport:
        data = write_csv(tmp_path / "p.csv", rows).read_bytes()
        parsed, problems = people_csv.parse_people_csv(data, tmp_path, runtime.settings, today=at.date())
        assert problems == []
        with unit_of_work(runtime.sessions) as session:
            return people_import.import_people(
                session, parsed, engine=None, settings=runtime.settings, now=at, actor="t", source="t"
            )

    do_import([person_row("P1", None, tmp_path, granted_on="2025-09-01")], now)
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(
            session, "P1", ["website"], settings=runtime.settings, now=now, actor="t"
        )
    later = now + timedelta(days=10)
    regranted = (now + timedelta(days=5)).date().isoformat()
    report = do_import([person_row("P1", None, tmp_path, granted_on=regranted)], later)
    assert [(c.action, c.channel) for c in report.changes] == [("consent.grant", "website")]
    assert report.warnings == []


def test_every_change_an_import_makes_is_listed_in_its_report(runtime: Any, tmp_path: Path) -> None:
    rows = [
        person_row("P1", None, tmp_path, channels="website;print", granted_by="parent"),
        person_row("P2", None, tmp_path, channels=""),
    ]
    code, report = import_json(runtime, write_csv(tmp_path / "a.csv", rows))
    assert code == 0
    assert [(c["line"], c["external_id"], c["action"], c["channel"]) for c in report["changes"]] == [
        (2, "P1", "person.created", None),
        (2, "P1", "consent.grant", "website"),
        (2, "P1", "consent.grant", "print"),
        (3, "P2", "person.created", None),
    ]
    assert "granted by parent" in report["changes"][1]["detail"]
    changed = [
        person_row("P1", None, tmp_path, channels="website", granted_by="parent", name="Pat One"),
        person_row("P2", None, tmp_path, channels=""),
    ]
    result = run(runtime, "people", "import", write_csv(tmp_path / "b.csv", changed))
    assert result.exit_code == 0
    assert "1 imported, 1 unchanged" in result.stdout
    assert "line 2 P1: person.updated (display_name)" in result.stdout
    assert "line 2 P1: consent.withdraw print (no longer in the export)" in result.stdout
    with unit_of_work(runtime.sessions) as session:
        events = session.scalar(select(func.count()).select_from(AuditEvent))
    assert events == 6  # exactly the six changes listed across both reports


def test_a_file_without_consent_columns_leaves_consent_untouched(runtime: Any, tmp_path: Path) -> None:
    assert (
        run(
            runtime, "people", "import", write_csv(tmp_path / "a.csv", [person_row("P1", None, tmp_path)])
        ).exit_code
        == 0
    )
    names_only = tmp_path / "b.csv"
    names_only.write_text("external_id,name\nP1,Pat One\nP2,Sam Two\n", encoding="utf-8")
    code, report = import_json(runtime, names_only)
    assert code == 0
    assert [(c["external_id"], c["action"]) for c in report["changes"]] == [
        ("P1", "person.updated"),
        ("P2", "person.created"),
    ]
    summary = show(runtime, "P1")
    assert (summary["name"], summary["date_of_birth"]) == ("Pat One", "1980-01-01")
    assert channel(summary, "website")["publishable"] is True


# --- named -----------------------------------------------------------------------------------------


def test_regranting_after_a_withdrawal_keeps_the_last_named(runtime: Any) -> None:
    add_person(runtime, "P1", named="first_name")
    assert run(runtime, "consent", "withdraw", "P1", "--channel", "website").exit_code == 0
    result = grant(runtime, "P1", "website", "--granted-by", "self")
    assert "named: first_name" in result.stdout
    assert channel(show(runtime, "P1"), "website")["named"] == "first_name"
    grant(runtime, "P1", "website", "--granted-by", "self", "--named", "no")
    assert channel(show(runtime, "P1"), "website")["named"] == "no"
    grant(runtime, "P1", "print", "--granted-by", "self")
    assert channel(show(runtime, "P1"), "print")["named"] == "no"


# --- grants that cannot make a person publishable --------------------------------------------------


def test_consent_grant_has_no_default_for_who_granted_it(runtime: Any) -> None:
    add_person(runtime, "P1", channels=())
    result = run(runtime, "consent", "grant", "P1", "--channel", "website")
    assert result.exit_code == 2
    assert "--granted-by" in result.output
    assert counts(runtime)["consent_records"] == 0


@pytest.mark.parametrize(
    ("date_of_birth", "safeguarding", "granted_by", "expected"),
    [
        (date(2015, 3, 1), False, "self", "guardian_consent_required"),
        (None, False, "self", "date_of_birth_unknown"),
        (date(1980, 1, 1), True, "self", "safeguarding"),
        (date(2015, 3, 1), True, "parent", "safeguarding"),
        (date(2015, 3, 1), False, "parent", None),
        (date(1980, 1, 1), False, "self", None),
    ],
)
def test_a_grant_that_cannot_make_the_person_publishable_warns(
    runtime: Any,
    date_of_birth: date | None,
    safeguarding: bool,
    granted_by: str,
    expected: str | None,
) -> None:
    add_person(runtime, "P1", channels=(), born=date_of_birth)
    if safeguarding:
        assert run(runtime, "people", "safeguarding", "P1", "--set", "--reason", "court order").exit_code == 0
    result = grant(runtime, "P1", "website", "--granted-by", granted_by)
    assert "granted: P1 on website" in result.stdout
    if expected is None:
        assert result.stderr == ""
    else:
        assert "NOT publishable on website" in result.stderr and expected in result.stderr


def test_the_import_flags_rows_that_cannot_become_publishable_without_failing_them(
    runtime: Any, tmp_path: Path
) -> None:
    rows = [
        person_row("MINOR", None, tmp_path, date_of_birth="2014-05-05", granted_by="self"),
        person_row("NODOB", None, tmp_path, date_of_birth="", granted_by="self"),
        person_row("CHILD", None, tmp_path, date_of_birth="2014-05-05", granted_by="parent"),
    ]
    code, report = import_json(runtime, write_csv(tmp_path / "p.csv", rows))
    assert (code, report["problems"], report["imported"]) == (0, [], 3)
    flagged = {(w["external_id"], w["code"]): w["message"] for w in report["warnings"]}
    assert list(flagged) == [("MINOR", "not_publishable"), ("NODOB", "not_publishable")]
    assert "guardian_consent_required" in flagged["MINOR", "not_publishable"]
    assert "date_of_birth_unknown" in flagged["NODOB", "not_publishable"]
    text = run(runtime, "people", "import", tmp_path / "p.csv")
    assert "2 warnings" in text.stdout
    assert (
        "warning: line 2 MINOR: website: not publishable after import (guardian_consent_required)"
        in text.stderr
    )


# --- dates of birth and enrolment photos -----------------------------------------------------------


def test_a_date_of_birth_in_the_future_fails_its_row(runtime: Any, tmp_path: Path) -> None:
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    rows = [person_row("P1", None, tmp_path, date_of_birth=tomorrow), person_row("P2", None, tmp_path)]
    code, report = import_json(runtime, write_csv(tmp_path / "p.csv", rows))
    assert code == 1
    assert report["problems"] == [{"line": 2, "reason": f"date_of_birth {tomorrow} is in the future"}]
    assert report["imported"] == 1


def test_photos_without_biometric_consent_and_biometric_consent_without_photos_are_warned(
    runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    rows = [
        person_row("PHOTO", corpus.faces_dir / "biden/biden.jpg", tmp_path, biometric_consent="no"),
        person_row("NOPHOTO", None, tmp_path, biometric_consent="yes"),
    ]
    code, report = import_json(runtime, write_csv(tmp_path / "p.csv", rows))
    assert (code, report["problems"], report["templates_added"]) == (0, [], 0)
    assert [(w["line"], w["code"]) for w in report["warnings"]] == [
        (2, "photos_without_biometric_consent"),
        (3, "biometric_consent_without_photos"),
    ]
    assert show(runtime, "NOPHOTO")["biometric_consent"] is True


# --- people show -----------------------------------------------------------------------------------


def test_people_show_prints_the_last_valid_day_the_user_wrote(runtime: Any) -> None:
    add_person(runtime, "P1", valid_until=date(2099, 8, 31))
    text = run(runtime, "people", "show", "P1").stdout
    assert "until 2099-08-31" in text and "last_valid_day=2099-08-31" in text
    assert "2099-09-01" not in text
    summary = show(runtime, "P1")
    assert channel(summary, "website")["last_valid_day"] == "2099-08-31"
    assert summary["history"][0]["last_valid_day"] == "2099-08-31"


# --- the CSV ---------------------------------------------------------------------------------------


def test_only_external_id_and_name_are_required_in_any_case(runtime: Any, tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text(
        " External_ID ,NAME, Channels ,Granted_By,Date_Of_Birth\n"
        "P1,Pat One,website,self,1990-02-02\nP2,Sam,,,\n",
        encoding="utf-8",
    )
    code, report = import_json(runtime, csv)
    assert (code, report["problems"], report["people_created"]) == (0, [], 2)
    assert channel(show(runtime, "P1"), "website")["publishable"] is True
    assert show(runtime, "P2")["date_of_birth"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"external_id;name;channels\nP1;Pat;website\n", "separated by ';'"),
        (b"", "the CSV is empty"),
        (b"\xef\xbb\xbf\n\n", "the CSV is empty"),
        (b"External_ID,external_id,name\n", "repeats column(s): external_id"),
        (b"id,name\nP1,Pat\n", "lacks column(s): external_id"),
    ],
)
def test_a_csv_that_cannot_be_read_says_why(
    runtime: Any, tmp_path: Path, content: bytes, message: str
) -> None:
    csv = tmp_path / "p.csv"
    csv.write_bytes(content)
    result = run(runtime, "people", "import", csv)
    assert result.exit_code == 1
    assert message in result.output
    assert counts(runtime)["people"] == 0


# --- biometric withdrawal and the safeguarding flag ------------------------------------------------


def test_withdrawing_biometric_consent_deletes_templates_and_an_import_does_not_restore_it(
    runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "p.csv", [person_row("B1", corpus.faces_dir / "biden/biden.jpg", tmp_path)])
    assert run(runtime, "people", "import", csv).exit_code == 0
    assert show(runtime, "B1")["templates"] == 1
    result = run(runtime, "consent", "biometric", "B1", "withdraw")
    assert result.exit_code == 0, result.output
    assert "1 template(s) deleted" in result.stdout
    summary = show(runtime, "B1")
    assert (summary["templates"], summary["biometric_consent"]) == (0, False)
    assert summary["history"][-1] | {"at": None} == {
        "at": None,
        "kind": "biometric",
        "channel": "biometric",
        "action": "withdraw",
        "granted_by": "self",
        "by": None,
        "named": None,
        "valid_until": None,
        "last_valid_day": None,
        "how": "staff",
        "recorded_by": summary["history"][-1]["recorded_by"],
        "evidence": None,
        "wording": None,
    }
    assert audit_actions(runtime)[-2:] == ["consent.withdraw", "template.deleted"]
    code, report = import_json(runtime, csv)
    assert (code, report["changes"], report["templates_added"]) == (0, [], 0)
    assert show(runtime, "B1")["templates"] == 0
    again = run(runtime, "consent", "biometric", "B1", "withdraw")
    assert again.exit_code == 0 and "nothing to withdraw" in again.stdout


def test_the_safeguarding_flag_is_set_and_cleared_with_an_audited_reason(runtime: Any) -> None:
    add_person(runtime, "P1")
    result = run(runtime, "people", "safeguarding", "P1", "--set", "--reason", "placement order")
    assert result.exit_code == 0 and "safeguarding flag set" in result.stdout
    summary = show(runtime, "P1")
    assert summary["safeguarding"] is True
    assert channel(summary, "website")["reasons"] == ["safeguarding"]
    assert "unchanged" in run(runtime, "people", "safeguarding", "P1", "--set", "--reason", "again").stdout
    assert run(runtime, "people", "safeguarding", "P1", "--clear", "--reason", "order ended").exit_code == 0
    assert channel(show(runtime, "P1"), "website")["publishable"] is True
    with unit_of_work(runtime.sessions) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("person.safeguarding%")).order_by(AuditEvent.id)
        ).all()
        # Who and when are audited; the free-text reason is kept apart, for consent admins only.
        assert [e.action for e in events] == ["person.safeguarding_set", "person.safeguarding_cleared"]
        assert not any("placement order" in str(e.details) or "order ended" in str(e.details) for e in events)
    assert run(runtime, "people", "safeguarding", "P1", "--reason", "x").exit_code == 2
    assert run(runtime, "people", "safeguarding", "P1", "--set").exit_code == 2
    blank = run(runtime, "people", "safeguarding", "P1", "--set", "--reason", "  ")
    assert blank.exit_code == 1 and "reason is required" in blank.output
    assert run(runtime, "audit", "verify").exit_code == 0
