"""Identifying a face by eye on real photos: the reasonable alternative to face matching.

A learner whose parent refused face matching has no template, so their face is unknown. With
GATEKEEPER_UNKNOWN_FACES=review the photo goes to a reviewer, who identifies them by eye; their
consent then decides, at the review and again at every publish-time re-check.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from engines import recorded_runtime
from PIL import Image
from sqlalchemy import func, select

from consent_db.models import AuditEvent, Decision, Face, FaceTemplate, Person
from consent_db.session import unit_of_work
from gatekeeper.config import Settings
from gatekeeper.photos import gate as gate_service
from helpers import add_person, gate_json, run
from workers import JobQueue

pytestmark = pytest.mark.slow

GROUP = "group/two_people.jpg"  # obama (face 1) and biden (face 2), numbered from 1


@pytest.fixture
def reviewing(settings: Settings) -> Any:
    """A runtime on the test's database that sends photos with unknown faces to review."""
    rt = recorded_runtime(settings.with_(policy={"unknown_faces": "review"}), sender=JobQueue)
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


def people(rt: Any, corpus: Any, *, kim_channels: tuple[str, ...]) -> None:
    """obama, an adult matched by face; kim (biden's face), a learner whose parent refused matching."""
    add_person(rt, "obama", photos=[corpus.faces_dir / "obama/obama.jpg"])
    add_person(
        rt,
        "kim",
        born=date(2015, 5, 5),
        granted_by="parent",
        channels=kim_channels,
        biometric_objection="parent",
    )


def waiting(rt: Any) -> list[dict[str, Any]]:
    result = run(rt, "review", "list", "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def resolve(rt: Any, *args: str | int) -> dict[str, Any]:
    result = run(rt, "review", "resolve", *map(str, args), "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def reviews(rt: Any) -> list[dict[str, Any]]:
    with unit_of_work(rt.sessions) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "face.reviewed").order_by(AuditEvent.id)
        ).all()
        return [{"actor": e.actor, "subject": e.subject, **e.details} for e in events]


def recheck(rt: Any, decision: int) -> tuple[str, tuple[str, ...]]:
    with unit_of_work(rt.sessions) as session:
        fresh = gate_service.recheck(session, decision, settings=rt.settings, now=datetime.now(UTC))
    return fresh.verdict, fresh.reasons


def templates_of(rt: Any, external_id: str) -> int:
    with unit_of_work(rt.sessions) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(FaceTemplate)
                .join(Person)
                .where(Person.external_id == external_id)
            )
            or 0
        )


def gated_decision(session: Any, photo: int) -> int:
    """The first decision recorded for `photo`: the gating itself."""
    return int(session.scalar(select(func.min(Decision.id)).where(Decision.photo_id == photo)))


def test_a_learner_who_refused_face_matching_is_identified_by_eye_and_their_consent_decides(
    reviewing: Any, corpus: Any
) -> None:
    people(reviewing, corpus, kim_channels=("social_media",))
    assert templates_of(reviewing, "kim") == 0
    [gated] = gate_json(reviewing, "website", corpus.faces_dir / GROUP)
    assert (gated["verdict"], gated["reasons"]) == ("review", ["unknown_face"])
    assert [(f["person"], f["outcome"]) for f in gated["faces"]] == [
        ("obama", "consented"),
        (None, "unknown"),
    ]

    [item] = waiting(reviewing)
    assert (item["face"], item["outcome"], item["reasons"], item["candidate"]) == (
        2,
        "unknown",
        ["unknown_face"],
        None,
    )
    assert item["channel"] == "website" and len(item["box"]) == 4
    photo = item["photo"]

    # Identified, but kim's parent consented to social media only: a reviewer never overrides consent.
    first = resolve(reviewing, photo, 2, "--person", "kim", "--reason", "Kim, Year 7, seen by eye")
    assert (first["verdict"], first["reasons"]) == ("blocked", ["no_consent_for_channel"])
    assert first["faces"][1] == {
        "face": 2,
        "box": item["box"],
        "person": "kim",
        "outcome": "no_consent",
        "reasons": ["no_consent_for_channel"],
        "review": "person",
    }
    assert first["faces"][0]["review"] is None and first["template_added"] is False
    assert waiting(reviewing) == []

    granted = run(reviewing, "consent", "grant", "kim", "--channel", "website", "--granted-by", "parent")
    assert granted.exit_code == 0, granted.output
    # The publish-time re-check decides the reviewed face as kim, on today's consent.
    assert recheck(reviewing, first["decision"]) == ("publishable", ())
    second = resolve(reviewing, photo, 2, "--person", "kim", "--reason", "website consent now given")
    assert (second["verdict"], second["reasons"]) == ("publishable", [])
    assert second["previous_decision"] == first["decision"]

    # Nothing of kim's face was kept: no template, ever; obama's enrolment template only.
    assert templates_of(reviewing, "kim") == 0
    assert templates_of(reviewing, "obama") == 1

    withdrawn = run(reviewing, "consent", "withdraw", "kim", "--channel", "website")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert recheck(reviewing, second["decision"]) == ("blocked", ("consent_withdrawn",))

    with unit_of_work(reviewing.sessions) as session:
        face = session.scalars(
            select(Face).where(Face.decision_id == second["decision"], Face.position == 1)
        ).one()
        kim = session.scalars(select(Person.id).where(Person.external_id == "kim")).one()
        assert (face.review_resolution, face.reviewed_person_id) == ("person", kim)
        assert face.reviewed_by is not None and face.reviewed_by.startswith("cli:")
        # Decisions are history: the first gating's face is unchanged.
        original = session.scalars(
            select(Face).where(Face.decision_id == gated_decision(session, photo), Face.position == 1)
        ).one()
        assert (original.outcome, original.review_resolution) == ("unknown", None)
    assert [
        (r["subject"], r["position"], r["resolution"], r["person"], r["reason"], r["verdict"])
        for r in reviews(reviewing)
    ] == [
        (f"photo:{photo}", 1, "person", kim, "Kim, Year 7, seen by eye", "blocked"),
        (f"photo:{photo}", 1, "person", kim, "website consent now given", "publishable"),
    ]
    assert all(r["actor"].startswith("cli:") for r in reviews(reviewing))


def test_a_stranger_blocks_a_person_with_biometric_consent_is_learnt_and_mistakes_are_refused(
    reviewing: Any, corpus: Any
) -> None:
    people(reviewing, corpus, kim_channels=("website",))
    [gated] = gate_json(reviewing, "website", corpus.faces_dir / GROUP)
    assert gated["verdict"] == "review"
    [item] = waiting(reviewing)
    photo = item["photo"]

    mistakes = [
        (("--reason", "x"), "give exactly one of"),
        (("--stranger", "--not-a-face", "--reason", "x"), "give exactly one of"),
        (("--stranger", "--reason", "  "), "a reason is required"),
        (("--person", "nobody", "--reason", "x"), "no person with external id 'nobody'"),
        (
            ("--stranger", "--reason", "x", "--decision", str(item["decision"] - 1)),
            "no longer the photo's latest",
        ),
    ]
    for args, message in mistakes:
        refused = run(reviewing, "review", "resolve", photo, 2, *args)
        assert refused.exit_code != 0 and message in refused.output, (args, refused.output)
    no_face = run(reviewing, "review", "resolve", photo, 7, "--stranger", "--reason", "x")
    assert no_face.exit_code == 1 and f"photo {photo} has no face 7 (its faces: 1, 2)" in no_face.output
    zero = run(reviewing, "review", "resolve", photo, 0, "--stranger", "--reason", "x")
    assert zero.exit_code == 2 and "faces are numbered from 1" in zero.output
    no_photo = run(reviewing, "review", "resolve", 999, 1, "--stranger", "--reason", "x")
    assert no_photo.exit_code == 1 and "no photo with id 999" in no_photo.output
    assert reviews(reviewing) == []

    # Someone not enrolled: the face stays unknown and now blocks, even though unknown faces go to review.
    stranger = resolve(
        reviewing, photo, 2, "--stranger", "--reason", "a visitor", "--decision", item["decision"]
    )
    assert (stranger["verdict"], stranger["reasons"]) == ("blocked", ["unknown_face"])
    assert stranger["faces"][1]["review"] == "stranger" and waiting(reviewing) == []

    # obama has biometric consent: a face a reviewer confirms as him becomes a template.
    confirmed = resolve(reviewing, photo, 1, "--person", "obama", "--reason", "confirmed by eye")
    assert confirmed["template_added"] is True
    assert (confirmed["verdict"], [f["review"] for f in confirmed["faces"]]) == (
        "blocked",
        ["person", "stranger"],
    )
    assert templates_of(reviewing, "obama") == 2
    assert [(r["resolution"], r["reason"]) for r in reviews(reviewing)] == [
        ("stranger", "a visitor"),
        ("person", "confirmed by eye"),
    ]


def test_not_a_face_drops_a_face_from_the_decision(reviewing: Any, corpus: Any, tmp_path: Path) -> None:
    # Upside down, the face is found only by the turned search and confirmed by the second look: a
    # face nobody enrolled, whose encoding is not trusted alone; unknown faces go to a reviewer here.
    runtime = reviewing
    upside_down = tmp_path / "upside_down.jpg"
    with Image.open(corpus.faces_dir / "kit_harington/kit_harington_john2.jpeg") as image:
        image.rotate(180).save(upside_down, quality=95)
    [gated] = gate_json(runtime, "website", upside_down)
    assert (gated["verdict"], gated["reasons"]) == ("review", ["unknown_face", "unreliable_face"])
    [item] = waiting(runtime)
    assert (item["face"], item["outcome"], item["reasons"]) == (
        1,
        "unknown",
        ["unknown_face", "unreliable_face"],
    )
    assert (runtime.settings.home / "originals" / item["original"]).read_bytes() == upside_down.read_bytes()
    listed = run(runtime, "review", "list")
    box = " ".join(map(str, item["box"]))
    expected = f"photo {item['photo']} face 1 [{box}] website: unknown (unknown_face, unreliable_face)\n"
    assert listed.stdout == expected
    assert "1 face waiting for review" in listed.stderr

    human = run(runtime, "review", "resolve", item["photo"], 1, "--not-a-face", "--reason", "a poster")
    assert human.exit_code == 0, human.output
    assert f"photo {item['photo']}: PUBLISHABLE" in human.stdout
    assert "face 1: not_a_face, reviewed: not_a_face" in human.stdout
    assert waiting(runtime) == []
    assert recheck(runtime, int(human.stdout.split("(decision ")[1].split(")")[0])) == ("publishable", ())
    [event] = reviews(runtime)
    assert (event["resolution"], event["reason"], event["person"], event["verdict"]) == (
        "not_a_face",
        "a poster",
        None,
        "publishable",
    )
