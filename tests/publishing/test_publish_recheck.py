"""Publishing decides again from the stored faces and the consent in force at that moment."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consent_db.models import AuditEvent, Publication
from consent_db.session import unit_of_work
from gatekeeper.consent import records as consent_service
from gatekeeper.people.templates import template_keys
from gatekeeper.photos import gate as gate_service
from gatekeeper.publishing import publish as publish_service
from gatekeeper.storage import LocalBlobStore
from helpers import add_person

pytestmark = pytest.mark.slow


@pytest.fixture
def gated(runtime: Any, corpus: Any, now: datetime) -> tuple[Any, gate_service.GateResult]:
    """biden enrolled and consenting to the website; biden2.jpg gated and found publishable at `now`."""
    add_person(
        runtime, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"], now=now, actor="t", source="t"
    )
    with unit_of_work(runtime.sessions) as session:
        index = gate_service.load_template_index(
            session, runtime.faces.model, template_keys(runtime.settings)
        )
    tools = gate_service.GateTools(runtime.settings, runtime.faces, runtime.originals, index)
    with unit_of_work(runtime.sessions) as session:
        result = gate_service.gate_photo(
            session,
            (corpus.faces_dir / "biden/biden2.jpg").read_bytes(),
            channel="website",
            tools=tools,
            now=now,
            actor="t",
        )
    assert result.verdict == "publishable" and result.clean is not None
    return runtime, result


def test_a_withdrawal_between_gating_and_publishing_stops_the_publication(
    gated: tuple[Any, gate_service.GateResult], tmp_path: Path, now: datetime
) -> None:
    runtime, result = gated
    later = now + timedelta(minutes=5)
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(
            session, "biden", ["website"], settings=runtime.settings, now=later, actor="t"
        )
    out = tmp_path / "out"
    with unit_of_work(runtime.sessions) as session:
        published = _publish(session, runtime, result, out, later + timedelta(seconds=1))
    assert not published.published
    assert not out.exists() or list(out.iterdir()) == []
    with unit_of_work(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Publication)) == 0
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.action == "publication.refused")).one()
        assert refusal.details["reasons"] == ["consent_withdrawn"]


def test_consent_that_expires_before_publishing_stops_the_publication(
    gated: tuple[Any, gate_service.GateResult], tmp_path: Path, now: datetime
) -> None:
    runtime, result = gated
    with unit_of_work(runtime.sessions) as session:
        consent_service.grant_consent(
            session,
            "biden",
            "website",
            settings=runtime.settings,
            now=now + timedelta(seconds=1),
            actor="t",
            granted_by="self",
            valid_until=now.date(),
        )
    tomorrow = now + timedelta(days=1)
    with unit_of_work(runtime.sessions) as session:
        assert gate_service.recheck(
            session, result.decision_id, settings=runtime.settings, now=tomorrow
        ).reasons == ("consent_expired",)
        published = _publish(session, runtime, result, tmp_path / "out", tomorrow)
    assert not published.published


def test_a_still_valid_decision_publishes_only_when_committed(
    gated: tuple[Any, gate_service.GateResult], tmp_path: Path, now: datetime
) -> None:
    runtime, result = gated
    out = tmp_path / "out"
    with unit_of_work(runtime.sessions) as session:
        published = _publish(session, runtime, result, out, now)
        assert published.published
        # Before the record commits, only a hidden partial file exists.
        assert [p.name.startswith(".") for p in out.iterdir()] == [True]
    assert [p.name for p in out.iterdir()] == [published.key]
    assert (out / str(published.key)).read_bytes() == result.clean.data  # type: ignore[union-attr]


def _publish(
    session: Any, runtime: Any, result: gate_service.GateResult, out: Path, now: datetime
) -> publish_service.PublishOutcome:
    return publish_service.publish_photo(
        session,
        result.photo_id,
        channel="website",
        store=LocalBlobStore(out),
        originals=runtime.originals,
        settings=runtime.settings,
        now=now,
        actor="t",
        clean=result.clean,
    )
