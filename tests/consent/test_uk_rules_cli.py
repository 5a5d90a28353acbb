"""The UK rules end to end: the DPIA switch, POFA biometric answers, objections, leavers, consent due."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from engines import recorded_runtime
from sqlalchemy import func, select

from consent_db.models import AuditEvent, FaceTemplate
from consent_db.session import unit_of_work
from gatekeeper.cli import main
from gatekeeper.config import Settings
from gatekeeper.errors import ConfigError
from gatekeeper.runtime import Runtime
from helpers import add_person, gate_json, person_row, run, write_csv
from workers import JobQueue

CHILD_DOB = "2015-05-05"


def show(runtime: Any, external_id: str) -> dict[str, Any]:
    result = run(runtime, "people", "show", external_id, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def channel(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in summary["channels"] if c["channel"] == name)


def audit_actions(runtime: Any) -> list[str]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all())


def import_json(runtime: Any, csv: Path) -> tuple[int, dict[str, Any]]:
    result = run(runtime, "people", "import", csv, "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def templates(runtime: Any) -> int:
    with unit_of_work(runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(FaceTemplate)) or 0


@pytest.fixture
def make_runtime(settings: Settings) -> Iterator[Any]:
    """Build a runtime on the test's database with some policy settings changed."""
    built: list[Runtime] = []

    def make(**changes: Any) -> Runtime:
        rt = recorded_runtime(settings.with_(policy=changes), sender=JobQueue)
        built.append(rt)
        return rt

    yield make
    for rt in built:
        if "db" in rt.__dict__:
            rt.db.dispose()


def child_row(external_id: str, photo: Path | None, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A learner whose parent consented to the website and, with a photo, to face matching."""
    fields = {"date_of_birth": CHILD_DOB, "granted_by": "parent", **overrides}
    return person_row(external_id, photo, tmp_path, **fields)


def add_child(runtime: Any, external_id: str, **arguments: Any) -> None:
    """The learner of child_row, made as an import makes them (tests/factories.py)."""
    add_person(
        runtime, external_id, **{"born": date.fromisoformat(CHILD_DOB), "granted_by": "parent", **arguments}
    )


# --- the DPIA switch -------------------------------------------------------------------------------


def test_without_a_dpia_nobody_is_enrolled_and_faces_go_to_review(
    make_runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    strict = make_runtime(dpia_required=True)
    rows = [person_row("biden", corpus.faces_dir / "biden/biden.jpg", tmp_path)]
    result = run(strict, "people", "import", write_csv(tmp_path / "p.csv", rows), "--json")
    assert result.exit_code == 1
    assert "no DPIA is recorded" in json.loads(result.stdout)["problems"][0]["reason"]
    assert templates(strict) == 0
    assert "face matching: off" in run(strict, "dpia", "show").stdout
    [line] = gate_json(strict, "website", corpus.faces_dir / "biden/biden2.jpg")
    assert (line["verdict"], line["reasons"]) == ("review", ["matching_disabled"])
    assert all(f["person"] is None for f in line["faces"])

    refused = run(
        strict, "dpia", "record", "--ref", "DPIA-1", "--approved-by", "A. DPO", "--on", "2999-01-01"
    )
    assert refused.exit_code == 1 and "in the future" in refused.output
    recorded = run(
        strict, "dpia", "record", "--ref", "DPIA-1", "--approved-by", "A. DPO", "--on", "2026-01-10"
    )
    assert recorded.exit_code == 0, recorded.output
    assert "dpia.recorded" in audit_actions(strict)
    assert "face matching: on" in run(strict, "dpia", "show").stdout
    assert run(strict, "people", "import", tmp_path / "p.csv").exit_code == 0
    assert templates(strict) == 1
    [line] = gate_json(strict, "website", corpus.faces_dir / "biden/biden2.jpg")
    assert line["verdict"] == "publishable"


def test_turning_the_dpia_switch_off_warns_at_every_start(tmp_path: Path) -> None:
    env = {"GATEKEEPER_HOME": str(tmp_path / "instance"), "GATEKEEPER_DPIA_REQUIRED": "0"}
    result = CliRunner().invoke(main, ["dpia", "show"], env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert "GATEKEEPER_DPIA_REQUIRED=0" in result.stderr
    quiet = CliRunner().invoke(main, ["dpia", "show"], env={**env, "GATEKEEPER_DPIA_REQUIRED": "1"})
    assert quiet.stderr == "" and "no DPIA recorded" in quiet.stdout


# --- biometric consent -----------------------------------------------------------------------------


@pytest.mark.parametrize(("unknown_faces", "verdict"), [("block", "blocked"), ("review", "review")])
def test_a_refusing_learners_templates_are_deleted_and_their_photos_follow_the_unknown_faces_setting(
    make_runtime: Any, corpus: Any, tmp_path: Path, unknown_faces: str, verdict: str
) -> None:
    rt = make_runtime(unknown_faces=unknown_faces)
    rows = [child_row("kit", corpus.faces_dir / "kit_harington/kit_harington_john1.jpeg", tmp_path)]
    assert run(rt, "people", "import", write_csv(tmp_path / "p.csv", rows)).exit_code == 0
    assert templates(rt) == 1
    photo = corpus.faces_dir / "kit_harington/kit_harington_john2.jpeg"
    [before] = gate_json(rt, "website", photo)
    assert (before["verdict"], before["faces"][0]["person"]) == ("publishable", "kit")

    result = run(rt, "consent", "biometric", "kit", "refuse")
    assert result.exit_code == 0, result.output
    assert "NOT allowed (biometric_refused)" in result.stdout and "1 template(s) deleted" in result.stdout
    assert templates(rt) == 0
    assert audit_actions(rt)[-2:] == ["consent.refuse", "template.deleted"]
    summary = show(rt, "kit")
    assert (summary["biometric_consent"], summary["biometric_reasons"]) == (False, ["biometric_refused"])

    [after] = gate_json(rt, "website", photo)
    assert (after["verdict"], after["reasons"]) == (verdict, ["unknown_face"])
    code, report = import_json(rt, tmp_path / "p.csv")
    assert (code, report["templates_added"]) == (0, 0)
    assert [w["code"] for w in report["warnings"]] == ["matching_not_allowed"]


def test_parents_who_disagree_stop_matching_and_one_parent_is_enough(runtime: Any, corpus: Any) -> None:
    add_child(runtime, "kit", photos=[corpus.faces_dir / "kit_harington/kit_harington_john1.jpeg"])
    mum = run(runtime, "consent", "biometric", "kit", "grant", "--role", "parent", "--by", "Mum")
    assert mum.exit_code == 0 and "face matching allowed" in mum.stdout
    dad = run(runtime, "consent", "biometric", "kit", "object", "--by", "Dad")
    assert "NOT allowed (biometric_objection)" in dad.stdout
    assert templates(runtime) == 0
    assert run(runtime, "consent", "biometric", "kit", "grant").exit_code == 2  # who granted it?
    again = run(runtime, "consent", "biometric", "kit", "grant", "--role", "parent", "--by", "Dad")
    assert "face matching allowed" in again.stdout
    assert show(runtime, "kit")["biometric_consent"] is True


def test_a_learners_own_biometric_consent_is_not_enough_under_pofa_but_is_under_gdpr(
    make_runtime: Any, corpus: Any, tmp_path: Path
) -> None:
    photo = corpus.faces_dir / "kit_harington/kit_harington_john1.jpeg"
    rows = [child_row("kit", photo, tmp_path, biometric_granted_by="self")]
    pofa = make_runtime()
    code, report = import_json(pofa, write_csv(tmp_path / "p.csv", rows))
    assert (code, report["templates_added"]) == (0, 0)
    assert "parent_biometric_consent_required" in report["warnings"][0]["message"]
    gdpr = make_runtime(biometric_rules="gdpr")
    assert run(gdpr, "people", "import", tmp_path / "p.csv").exit_code == 0
    assert templates(gdpr) == 1


def test_an_objection_in_the_csv_stops_matching(runtime: Any, corpus: Any, tmp_path: Path) -> None:
    photo = corpus.faces_dir / "kit_harington/kit_harington_john1.jpeg"
    assert (
        run(
            runtime, "people", "import", write_csv(tmp_path / "a.csv", [child_row("kit", photo, tmp_path)])
        ).exit_code
        == 0
    )
    assert templates(runtime) == 1
    objecting = [child_row("kit", photo, tmp_path, biometric_objection="parent")]
    code, report = import_json(runtime, write_csv(tmp_path / "b.csv", objecting))
    assert code == 0
    assert [(c["action"], c["channel"]) for c in report["changes"]] == [
        ("consent.object", "biometric"),
        ("template.deleted", None),
    ]
    assert templates(runtime) == 0


# --- objections, leavers, consent due --------------------------------------------------------------


def test_an_objection_blocks_as_a_withdrawal_and_is_recorded_by_the_channels_lawful_basis(
    make_runtime: Any,
) -> None:
    rt = make_runtime(lawful_bases=(("internal", "public_task"),))
    add_person(rt, "P1", channels=("website", "internal"))
    result = run(rt, "consent", "object", "P1", "--channel", "internal")
    assert result.exit_code == 0 and "as an objection" in result.stdout
    assert run(rt, "consent", "object", "P1", "--channel", "website").stdout.count("as a withdrawal") == 1
    summary = show(rt, "P1")
    assert channel(summary, "internal")["reasons"] == ["objected"]
    assert channel(summary, "website")["reasons"] == ["consent_withdrawn"]
    assert [(r["channel"], r["action"], r["how"]) for r in summary["history"][-2:]] == [
        ("internal", "object", "objection"),
        ("website", "withdraw", "objection"),
    ]


def test_a_leavers_consent_ends_the_day_after_they_leave(runtime: Any, tmp_path: Path) -> None:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    rows = [
        person_row("P1", None, tmp_path, left_on=yesterday),
        person_row("P2", None, tmp_path, left_on="2099-07-20"),
    ]
    code, report = import_json(runtime, write_csv(tmp_path / "p.csv", rows))
    assert code == 0
    assert [
        (c["external_id"], c["action"], c["detail"])
        for c in report["changes"]
        if c["action"] == "person.left_on"
    ] == [
        ("P1", "person.left_on", yesterday),
        ("P2", "person.left_on", "2099-07-20"),
    ]
    left = show(runtime, "P1")
    assert (left["status"], left["left_on"]) == ("left", yesterday)
    assert channel(left, "website")["reasons"] == ["person_left"]
    staying = show(runtime, "P2")
    assert (staying["status"], channel(staying, "website")["publishable"]) == ("active", True)
    assert "person.left" in audit_actions(runtime)
    kept = run(
        runtime, "consent", "grant", "P1", "--channel", "print", "--granted-by", "self", "--after-leaving"
    )
    assert kept.exit_code == 0 and kept.stderr == ""
    assert channel(show(runtime, "P1"), "print")["publishable"] is True


def test_consent_due_lists_coming_of_age_and_expiry_for_the_letters(runtime: Any) -> None:
    today = date.today()
    eighteenth = today + timedelta(days=10)
    if (eighteenth.month, eighteenth.day) == (2, 29):  # a birthday every year keeps the sums plain
        eighteenth += timedelta(days=1)
    turning = eighteenth.replace(year=eighteenth.year - 18)
    expiring = (today + timedelta(days=5)).isoformat()
    add_person(runtime, "TURNING", born=turning, granted_by="parent")
    add_person(runtime, "EXPIRING", valid_until=date.fromisoformat(expiring))
    add_person(runtime, "FINE")
    result = run(runtime, "consent", "due", "--within", "60", "--json")
    assert result.exit_code == 0
    items = [json.loads(line) for line in result.stdout.splitlines()]
    lapse = (eighteenth + timedelta(days=30)).isoformat()
    assert [(i["external_id"], i["why"], i["due"], i["overdue"]) for i in items] == [
        ("EXPIRING", "expires", expiring, False),
        ("TURNING", "reconsent_required", lapse, False),
    ]
    short = run(runtime, "consent", "due", "--within", "20")
    assert "EXPIRING" in short.stdout and "TURNING" not in short.stdout


# --- settings --------------------------------------------------------------------------------------


def test_the_uk_settings_are_read_and_checked(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "GATEKEEPER_HOME": str(tmp_path),
            "GATEKEEPER_BIOMETRIC_RULES": "gdpr",
            "GATEKEEPER_RECONSENT_GRACE_DAYS": "14",
            "GATEKEEPER_LAWFUL_BASES": "internal=public_task, social_media=legitimate_interests",
            "GATEKEEPER_UNKNOWN_FACES": "review",
            "GATEKEEPER_DPIA_REQUIRED": "0",
        }
    )
    policy = settings.policy
    assert (policy.biometric_rules, policy.reconsent_grace_days, policy.unknown_faces) == (
        "gdpr",
        14,
        "review",
    )
    assert policy.lawful_bases == (("internal", "public_task"), ("social_media", "legitimate_interests"))
    assert policy.dpia_required is False
    assert Settings.from_env({"GATEKEEPER_HOME": str(tmp_path)}).policy.dpia_required is True
    for env, message in [
        ({"GATEKEEPER_BIOMETRIC_RULES": "usa"}, "biometric rules"),
        ({"GATEKEEPER_UNKNOWN_FACES": "allow"}, "unknown faces"),
        ({"GATEKEEPER_LAWFUL_BASES": "internal"}, "channel=basis"),
        ({"GATEKEEPER_LAWFUL_BASES": "billboards=consent"}, "not in the channel list"),
        ({"GATEKEEPER_LAWFUL_BASES": "internal=vital_interests"}, "lawful basis of 'internal'"),
        ({"GATEKEEPER_DPIA_REQUIRED": "maybe"}, "1 or 0"),
        ({"GATEKEEPER_RECONSENT_GRACE_DAYS": "-1"}, "must not be negative"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env({"GATEKEEPER_HOME": str(tmp_path), **env})


def test_a_learner_who_comes_of_age_without_their_own_biometric_consent_is_no_longer_matched(
    runtime: Any, corpus: Any, now: Any
) -> None:
    from gatekeeper.photos import gate as gate_service

    seventeen = now.date().replace(year=now.year - 17)
    add_child(
        runtime,
        "kit",
        photos=[corpus.faces_dir / "kit_harington/kit_harington_john1.jpeg"],
        born=seventeen,
        granted_on=date(2025, 9, 1),
        now=now,
        actor="t",
        source="t",
    )
    assert templates(runtime) == 1
    with unit_of_work(runtime.sessions) as session:
        tools = gate_service.load_tools(session, runtime.settings, runtime.faces, runtime.originals)
    photo = (corpus.faces_dir / "kit_harington/kit_harington_john2.jpeg").read_bytes()
    for moment, person, verdict in [
        (now, "kit", "publishable"),
        # Eighteen: POFA's parental consent no longer covers face matching (publication consent
        # from the parent also lapses after the grace period, but the face is not matched at all).
        (now + timedelta(days=366), None, "blocked"),
    ]:
        with unit_of_work(runtime.sessions) as session:
            result = gate_service.gate_photo(
                session, photo, channel="website", tools=tools, now=moment, actor="t"
            )
        assert (result.verdict, [f.person for f in result.faces]) == (verdict, [person])
