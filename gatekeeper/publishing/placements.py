"""Placements outside our stores (a page URL, a post) and what staff pages list of where photos went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Person, Publication, TakedownTask
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.errors import InvalidInputError
from gatekeeper.photos.gate import latest_decision, recheck
from gatekeeper.publishing.publish import check_photo_channel
from gatekeeper.publishing.takedowns import list_tasks, open_task
from gatekeeper.staff import alerts


@dataclass(frozen=True)
class TaskView:
    """An external takedown task and the person whose withdrawal (or change) opened it, if known."""

    task: TakedownTask
    person: str | None


def all_publications(session: Session, *, live_only: bool = False, limit: int = 500) -> list[Publication]:
    """Publications, newest first: copies in our stores and external placements, live or taken down."""
    query = select(Publication).order_by(Publication.id.desc()).limit(limit)
    if live_only:
        query = query.where(Publication.taken_down_at.is_(None))
    return list(session.scalars(query))


def task_views(session: Session, *, open_only: bool) -> list[TaskView]:
    """Takedown tasks, oldest first, each with its person's name and MIS id."""
    tasks = list_tasks(session, open_only=open_only)
    ids = {t.person_id for t in tasks if t.person_id is not None}
    people = {
        p.id: f"{p.display_name} ({p.external_id})"
        for p in session.scalars(select(Person).where(Person.id.in_(ids)))
    }
    return [TaskView(t, people.get(t.person_id) if t.person_id is not None else None) for t in tasks]


def record_external(
    session: Session,
    photo_id: int,
    *,
    channel: str,
    where: str,
    settings: Settings,
    now: datetime,
    actor: str,
) -> tuple[Publication, TakedownTask | None]:
    """Record that a clean copy was placed outside our stores (a page URL, a post reference).

    The placement is a fact and is always recorded; if the photo does not pass today, a takedown
    task is opened for it at once, and staff are told (`alerts.takedowns_opened`). Raises
    RecordNotFoundError, InvalidInputError.
    """
    where = where.strip()
    if not where:
        raise InvalidInputError("say where the photo was placed (a URL or a post reference)", field="where")
    decision = latest_decision(session, photo_id)
    check_photo_channel(settings, decision.photo, channel)
    publication = Publication(
        photo_id=photo_id,
        decision_id=decision.id,
        channel=channel,
        target=where,
        sha256=None,
        published_at=now,
        external=True,
        published_by=actor,
    )
    session.add(publication)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PUBLICATION_RECORDED,
        subject=f"photo:{photo_id}",
        details={"publication": publication.id, "where": where, "channel": channel},
    )
    fresh = recheck(session, decision.id, settings=settings, now=now)
    task = None
    if fresh.verdict != policy.Verdict.PUBLISHABLE:
        task = open_task(session, publication, fresh.reasons, person_id=None, now=now, actor=actor)
    if task is not None:
        alerts.takedowns_opened(session, [task], settings=settings, now=now, actor=actor)
    return publication, task
