"""A reviewer-confirmed face becomes a new template, only with biometric consent."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consent_db.models import AuditEvent, Face, FaceTemplate
from consent_db.session import unit_of_work
from gatekeeper.errors import FaceNotFoundError
from gatekeeper.photos import gate as gate_service
from gatekeeper.photos.review import confirm_face
from helpers import add_person

pytestmark = pytest.mark.slow


def gate(runtime: Any, photo: Path, now: datetime) -> gate_service.GateResult:
    with unit_of_work(runtime.sessions) as session:
        tools = gate_service.load_tools(session, runtime.settings, runtime.faces, runtime.originals)
    with unit_of_work(runtime.sessions) as session:
        return gate_service.gate_photo(
            session, photo.read_bytes(), channel="website", tools=tools, now=now, actor="t"
        )


@pytest.fixture
def setup(runtime: Any, corpus: Any, now: datetime) -> tuple[Any, int, int]:
    """obama enrolled (biometric consent), biden not enrolled (no biometric consent); group photo gated."""
    add_person(
        runtime, "obama", photos=[corpus.faces_dir / "obama/obama.jpg"], now=now, actor="t", source="t"
    )
    add_person(runtime, "biden", now=now, actor="t", source="t")
    result = gate(runtime, corpus.faces_dir / "group/two_people.jpg", now)
    assert [f.person for f in result.faces] == ["obama", None]
    with unit_of_work(runtime.sessions) as session:
        faces = session.scalars(select(Face.id).order_by(Face.position)).all()
    return runtime, faces[0], faces[1]


def templates(runtime: Any) -> int:
    with unit_of_work(runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(FaceTemplate)) or 0


def test_a_confirmed_face_of_a_biometrically_consenting_person_becomes_a_template(
    setup: tuple[Any, int, int], corpus: Any, now: datetime
) -> None:
    runtime, obama_face, _ = setup
    with unit_of_work(runtime.sessions) as session:
        template = confirm_face(
            session,
            obama_face,
            "obama",
            engine=runtime.faces,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="reviewer",
        )
        assert template is not None
    assert templates(runtime) == 2
    # The photo the template came from now matches almost exactly.
    again = gate(runtime, corpus.faces_dir / "group/two_people.jpg", now)
    assert again.faces[0].person == "obama"
    assert again.faces[0].distance is not None and again.faces[0].distance < 0.05
    with unit_of_work(runtime.sessions) as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "face.confirmed" in actions and actions.count("template.created") == 2


def test_without_biometric_consent_the_review_is_recorded_but_no_template_made(
    setup: tuple[Any, int, int], now: datetime
) -> None:
    runtime, _, unknown_face = setup
    with unit_of_work(runtime.sessions) as session:
        template = confirm_face(
            session,
            unknown_face,
            "biden",
            engine=runtime.faces,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="reviewer",
        )
        assert template is None
        face = session.get(Face, unknown_face)
        assert face is not None and (face.reviewer_outcome, face.reviewed_by) == ("confirmed", "reviewer")
    assert templates(runtime) == 1


def test_confirming_an_unknown_face_id_is_a_clear_error(setup: tuple[Any, int, int], now: datetime) -> None:
    runtime, _, _ = setup
    with (
        pytest.raises(FaceNotFoundError, match="no recorded face with id 999"),
        unit_of_work(runtime.sessions) as s,
    ):
        confirm_face(
            s,
            999,
            "obama",
            engine=runtime.faces,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="reviewer",
        )
