"""Taking publications down: deleting our copies, recording it, and tasks for copies outside our stores."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Publication, TakedownTask
from gatekeeper.errors import (
    InvalidInputError,
    RecordNotFoundError,
    StorageError,
)
from gatekeeper.storage import BlobStore, open_store


@dataclass
class TakedownReport:
    """What a takedown or re-check run did."""

    checked: int = 0
    deleted: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    kept: int = 0


def take_down(
    session: Session,
    publication: Publication,
    *,
    reasons: Iterable[str],
    now: datetime,
    actor: str,
    person_id: int | None = None,
) -> TakedownTask | None:
    """Delete a copy from our store and record it, or open a task for an external placement.

    The key is deleted (every version) before the record changes, so a crash in between leaves a
    live record whose copy is gone: the next run deletes again (a missing key is fine) and records
    it. Raises StorageError when the store refuses, leaving the publication live.
    """
    reasons = list(reasons)
    if publication.external:
        return open_task(session, publication, reasons, person_id=person_id, now=now, actor=actor)
    if publication.taken_down_at is not None:
        return None
    if publication.store is not None and publication.key is not None:
        open_store(publication.store).delete(publication.key)
    record_takedown(session, publication, reasons, now=now, actor=actor)
    return None


def record_takedown(
    session: Session, publication: Publication, reasons: list[str], *, now: datetime, actor: str
) -> None:
    publication.taken_down_at = now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PUBLICATION_TAKEN_DOWN,
        subject=f"photo:{publication.photo_id}",
        details={
            "publication": publication.id,
            "store": publication.store,
            "key": publication.key,
            "reasons": reasons,
        },
    )


# Deletes to object stores are network round trips: a takedown sends this many at once.
DELETE_CONCURRENCY = 16
# From this many copies in one store, they are deleted from one listing of it (`delete_many`).
DELETE_MANY_FROM = 50


def delete_copies(publications: list[Publication]) -> dict[int, StorageError]:
    """Delete every publication's key (every version); the errors by publication id.

    A few copies in a store are deleted concurrently, key by key; many are deleted together from
    one listing of the store (on S3, a request per 1,000 versions rather than three per copy).
    """
    by_store: dict[str, list[Publication]] = {}
    for publication in publications:
        if publication.store is not None and publication.key is not None:
            by_store.setdefault(publication.store, []).append(publication)
    errors: dict[int, StorageError] = {}
    singles: list[tuple[int, BlobStore, str]] = []
    for url, copies in by_store.items():
        store = open_store(url)
        if len(copies) < DELETE_MANY_FROM:
            singles.extend((p.id, store, p.key or "") for p in copies)
            continue
        try:
            _, failed = store.delete_many([p.key or "" for p in copies])
        except StorageError as exc:
            errors.update((p.id, exc) for p in copies)
            continue
        errors.update((p.id, StorageError(failed[p.key or ""])) for p in copies if p.key in failed)

    def delete(job: tuple[int, BlobStore, str]) -> tuple[int, StorageError | None]:
        publication_id, store, key = job
        try:
            store.delete(key)
            return publication_id, None
        except StorageError as exc:
            return publication_id, exc

    with ThreadPoolExecutor(max_workers=DELETE_CONCURRENCY) as pool:
        errors.update((pid, exc) for pid, exc in pool.map(delete, singles) if exc is not None)
    return errors


def open_task(
    session: Session,
    publication: Publication,
    reasons: Iterable[str],
    *,
    person_id: int | None,
    now: datetime,
    actor: str,
) -> TakedownTask | None:
    existing = session.scalar(
        select(TakedownTask).where(
            TakedownTask.publication_id == publication.id, TakedownTask.done_at.is_(None)
        )
    )
    if existing is not None:
        return None
    task = TakedownTask(
        publication_id=publication.id,
        photo_id=publication.photo_id,
        person_id=person_id,
        channel=publication.channel,
        target=publication.target,
        reasons=list(reasons),
        since=now,
    )
    session.add(task)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.TAKEDOWN_OPENED,
        subject=f"photo:{publication.photo_id}",
        details={"task": task.id, "publication": publication.id, "where": publication.target},
    )
    return task


def list_tasks(session: Session, *, open_only: bool) -> list[TakedownTask]:
    """Takedown tasks, oldest first; only those not yet done with `open_only`."""
    query = select(TakedownTask).order_by(TakedownTask.id)
    if open_only:
        query = query.where(TakedownTask.done_at.is_(None))
    return list(session.scalars(query))


def complete_task(session: Session, task_id: int, *, note: str, now: datetime, actor: str) -> TakedownTask:
    """Mark an external takedown done with a note; raises RecordNotFoundError, InvalidInputError."""
    task = session.get(TakedownTask, task_id)
    if task is None:
        raise RecordNotFoundError("takedown task", task_id)
    if not note.strip():
        raise InvalidInputError("say what was done (--note)", field="note")
    if task.done_at is not None:
        raise InvalidInputError(f"takedown task {task_id} was already done on {task.done_at.date()}")
    task.done_at, task.done_by, task.note = now, actor, note.strip()
    if task.publication_id is not None:
        publication = session.get(Publication, task.publication_id)
        if publication is not None and publication.taken_down_at is None:
            publication.taken_down_at = now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.TAKEDOWN_DONE,
        subject=f"photo:{task.photo_id}",
        details={"task": task.id, "where": task.target, "note": task.note},
    )
    return task
