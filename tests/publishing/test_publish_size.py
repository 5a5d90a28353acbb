"""The periodic re-check decides each copy at the size it was published at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from consent_db.models import Decision, Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper.publishing import recheck as publication_checks
from gatekeeper.runtime import Runtime
from helpers import add_people, run, seed_gated_photo
from workers import JobQueue


@pytest.fixture
def published(runtime: Runtime, corpus: Any, now: datetime) -> tuple[int, int]:
    """Two copies on the website at 2048 px of a 4000 x 3000 photo analysed just finely enough."""
    ids = add_people(runtime, now, "ann")
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    photo_ids = []
    for extra in (b"", b"x"):
        photo_id = seed_gated_photo(runtime, data + extra, now=now, person_ids=(ids["ann"],))
        with unit_of_work(runtime.sessions) as session:
            photo = session.get(Photo, photo_id)
            assert photo is not None
            photo.width, photo.height = 4000, 3000
            decision = session.scalars(select(Decision).where(Decision.photo_id == photo_id)).one()
            decision.analysis_scale = 2048 / 4000
            decision.min_detect_px = runtime.settings.faces.min_detect_px
        result = run(runtime, "publish", photo_id, "--channel", "website")
        assert result.exit_code == 0, result.output
        photo_ids.append(photo_id)
    with unit_of_work(runtime.sessions) as session:
        assert [p.long_edge for p in session.scalars(select(Publication))] == [2048, 2048]
    return photo_ids[0], photo_ids[1]


def _larger(runtime: Runtime) -> Iterator[Runtime]:
    sizes = (*runtime.settings.media.output_sizes, ("website", 4096))
    other = Runtime(runtime.settings.with_(media={"output_sizes": sizes}), sender=JobQueue)
    yield other
    if "db" in other.__dict__:
        other.db.dispose()


def test_raising_a_channels_size_later_does_not_take_down_copies_made_smaller(
    runtime: Runtime, published: tuple[int, int], now: datetime
) -> None:
    current, older = published
    # A copy recorded before its size was kept is decided at today's size (the fallback).
    with unit_of_work(runtime.sessions) as session:
        session.scalars(select(Publication).where(Publication.photo_id == older)).one().long_edge = None
    for larger in _larger(runtime):
        assert larger.settings.media.long_edge("website") == 4096
        with unit_of_work(larger.sessions) as session:
            report = publication_checks.recheck_publications(
                session, settings=larger.settings, now=now, actor="t"
            )
        assert report.checked == 2 and report.kept == 1
        with unit_of_work(larger.sessions) as session:
            live = {p.photo_id for p in publication_checks.live_publications(session)}
        assert live == {current}
        # A new publication at the larger size needs a finer analysis: it is refused.
        again = run(larger, "publish", current, "--channel", "website")
        assert "analysis_too_coarse" in again.output
    assert len(list(runtime.published.iter_keys())) == 1
