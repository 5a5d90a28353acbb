"""Where photos went, as staff pages list them: publications and takedown tasks with their people."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db.models import Person, Publication, TakedownTask
from gatekeeper.services.publish import list_tasks


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
