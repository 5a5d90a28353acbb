"""Deciding every live publication again, and taking down what no longer passes.

Runs after a withdrawal (the takedown job) and on the re-check schedule; an external placement that
no longer passes becomes a takedown task for staff.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from consent_db.models import Decision, Face, Publication, TakedownTask
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.errors import (
    StorageError,
)
from gatekeeper.photos.gate import recheck
from gatekeeper.publishing.publish import lock_people
from gatekeeper.publishing.takedowns import TakedownReport, delete_copies, record_takedown, take_down
from gatekeeper.staff import alerts


def live_publications(session: Session, person_id: int | None = None) -> list[Publication]:
    """Publications still live: copies in our stores not taken down, external ones without a task.

    With `person_id`, only those of photos whose recorded faces name that person as a candidate or
    were identified as them by a reviewer.
    """
    query = select(Publication).where(Publication.taken_down_at.is_(None)).order_by(Publication.id)
    if person_id is not None:
        photos = (
            select(Decision.photo_id)
            .join(Face, Face.decision_id == Decision.id)
            .where(
                or_(
                    Face.person_id == person_id,
                    Face.second_person_id == person_id,
                    Face.reviewed_person_id == person_id,
                )
            )
        )
        query = query.where(Publication.photo_id.in_(photos))
    return list(session.scalars(query))


def settings_as_published(settings: Settings, publication: Publication) -> Settings:
    """`settings` with the publication's channel at the size its copy was made at.

    A copy is re-decided for what it shows: raising a channel's output size later must not make
    an existing smaller copy read as `analysis_too_coarse`. Copies from before the size was kept
    are decided at today's size.
    """
    if publication.long_edge is None or settings.media.long_edge(publication.channel) == (
        publication.long_edge or None
    ):
        return settings
    # Later entries win (`MediaSettings.long_edge` reads them into a dict).
    sizes = (*settings.media.output_sizes, (publication.channel, publication.long_edge))
    return settings.with_(media={"output_sizes": sizes})


def recheck_publications(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    person_id: int | None = None,
) -> TakedownReport:
    """Decide every live publication again (of one person's photos, or all) and take down what fails.

    Staff are told of the takedown tasks it opens, in one message (`alerts.takedowns_opened`).
    Copies are deleted concurrently once every decision is made. Raises StorageError when a store
    refuses any delete: the job is retried, and copies already gone are then simply recorded.
    """
    report = TakedownReport()
    if person_id is not None:
        lock_people(session, [person_id])
    failing: list[tuple[Publication, list[str]]] = []
    opened: list[TakedownTask] = []
    for publication in live_publications(session, person_id):
        report.checked += 1
        fresh = recheck(
            session, publication.decision_id, settings=settings_as_published(settings, publication), now=now
        )
        if fresh.verdict == policy.Verdict.PUBLISHABLE:
            report.kept += 1
        elif publication.external:
            who = person_id if person_id is not None else _blocking_person(fresh)
            task = take_down(session, publication, reasons=fresh.reasons, now=now, actor=actor, person_id=who)
            if task is not None:
                report.tasks.append(task.id)
                opened.append(task)
        else:
            failing.append((publication, list(fresh.reasons)))
    alerts.takedowns_opened(session, opened, settings=settings, now=now, actor=actor)
    errors = delete_copies([p for p, _ in failing])
    for publication, reasons in failing:
        if publication.id not in errors:
            record_takedown(session, publication, reasons, now=now, actor=actor)
            report.deleted.append(publication.id)
    if errors:
        # The copies that did go are deleted again (harmlessly) and recorded when the job is retried.
        raise StorageError(
            f"{len(errors)} copies could not be taken down: "
            + "; ".join(f"publication {pid}: {exc}" for pid, exc in sorted(errors.items()))
        )
    return report


def _blocking_person(verdict: policy.PhotoVerdict) -> int | None:
    """The first identified person without consent now, whose face keeps the photo from its channel."""
    for face in verdict.faces:
        if face.person is not None and face.outcome == "no_consent":
            return int(face.person)
    return None
