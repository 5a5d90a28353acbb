"""A reviewer's word on a face: who it is, by eye, and learning from it when consent allows.

The review queue holds the faces that sent a photo to review: uncertain matches, possible and too
small faces, and unknown faces where `GATEKEEPER_UNKNOWN_FACES=review` (the reasonable alternative to
face matching for people who refused it). A reviewer resolves a face as a person, a stranger or not
a face at all; the photo is then decided again by the consent rules, as a new decision. A reviewer
identifies; they never override consent. Nothing of a reviewed face is kept as a template unless
the person has biometric consent that the rules allow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, selectinload

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Decision, Face, FaceTemplate, Person, Photo
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import (
    check_choice,
    decision_state,
    matching_reasons,
    policy_for,
    stored_face_input,
)
from gatekeeper.errors import (
    FaceNotFoundError,
    InvalidInputError,
    MediaError,
    PhotoNotFoundError,
    StaleDecisionError,
)
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import explain
from gatekeeper.people.dpia import matching_enabled
from gatekeeper.people.enrolment import add_template
from gatekeeper.people.identity import SYSTEM, stored_identity, verdict_identity
from gatekeeper.people.lookup import find_person
from gatekeeper.photos.status import PhotoStatus
from gatekeeper.policy import PersonStatus
from gatekeeper.storage import BlobStore

MIN_BOX_OVERLAP = 0.5
# Faces a reviewer can settle: they are what sends a photo to review.
OPEN_OUTCOMES = ("uncertain", "unknown")


@dataclass(frozen=True)
class ReviewItem:
    """One face waiting for a reviewer, on the latest decision of a photo in review."""

    photo_id: int
    decision_id: int
    channel: str
    position: int
    box: tuple[int, int, int, int]
    outcome: str
    reasons: tuple[str, ...]
    # The possible match of an uncertain face (external id), for viewers who may be told, else None.
    candidate: str | None
    distance: float | None
    # Where the reviewer finds the photo: its key in the private originals store.
    original_key: str | None = None
    candidate_name: str | None = None

    @property
    def number(self) -> int:
        """The face's number as people count, from 1 (`position` counts from 0)."""
        return self.position + 1


@dataclass(frozen=True)
class ReviewedFace:
    """One face of a photo after a review: who it is now taken to be, and its outcome."""

    position: int
    box: tuple[int, int, int, int]
    person: str | None
    outcome: str
    reasons: tuple[str, ...]
    # How a reviewer resolved it (person, stranger, not_a_face), or None if nobody has.
    review: str | None


@dataclass(frozen=True)
class ReviewResult:
    """The photo decided again after a reviewer resolved one face, recorded as a new decision."""

    photo_id: int
    decision_id: int
    previous_decision_id: int
    verdict: str
    reasons: tuple[str, ...]
    faces: tuple[ReviewedFace, ...]
    # The template learnt from the face (only with biometric consent the rules allow), else None.
    template_id: int | None = None
    # Why a template that was allowed could not be made (too small or unclear to encode, say).
    template_note: str | None = None


def open_reviews(session: Session, *, viewer: str) -> list[ReviewItem]:
    """Every face waiting for a reviewer, by photo and position, as `viewer` (a role) may see them.

    A face waits when its photo's latest decision is `review` and the face is why: an uncertain
    match, a possible or too small face, matching disabled, or an unknown face under
    `GATEKEEPER_UNKNOWN_FACES=review`. Faces already resolved by a reviewer do not wait. An
    uncertain match names its candidate only to the roles identity.face_identity allows.
    """
    latest = select(func.max(Decision.id)).group_by(Decision.photo_id).scalar_subquery()
    candidate = aliased(Person)
    rows = session.execute(
        select(
            Face,
            Decision.photo_id,
            Photo.channel,
            Photo.original_key,
            candidate.external_id,
            candidate.display_name,
        )
        .join(Decision, Face.decision_id == Decision.id)
        .join(Photo, Decision.photo_id == Photo.id)
        .outerjoin(candidate, Face.person_id == candidate.id)
        .where(
            Decision.id.in_(latest),
            Decision.verdict == policy.Verdict.REVIEW,
            Face.outcome.in_(OPEN_OUTCOMES),
            Face.review_resolution.is_(None),
        )
        .order_by(Decision.photo_id, Face.position)
    ).all()
    items = []
    for face, photo_id, channel, key, external_id, name in rows:
        possible = stored_identity(face, viewer=viewer, context="review").possible is not None
        items.append(
            ReviewItem(
                photo_id=photo_id,
                decision_id=face.decision_id,
                channel=channel,
                position=face.position,
                box=(face.left, face.top, face.right, face.bottom),
                outcome=face.outcome,
                reasons=tuple(face.reasons),
                candidate=external_id if possible else None,
                distance=face.distance if possible else None,
                original_key=key,
                candidate_name=name if possible else None,
            )
        )
    return items


def resolve_face(
    session: Session,
    photo_id: int,
    position: int,
    resolution: str,
    *,
    person_external_id: str | None = None,
    reason: str,
    decision_id: int | None = None,
    settings: Settings,
    engine: FaceEngine,
    originals: BlobStore,
    now: datetime,
    actor: str,
    learn: bool = True,
) -> ReviewResult:
    """Record a reviewer's identification of face `position` of a photo, and decide the photo again.

    `resolution` is `person` (the face is `person_external_id`), `stranger` (someone not enrolled:
    the face stays unknown and blocks) or `not_a_face` (the detection plays no part). The photo's
    latest decision is copied into a new one with that face marked as reviewed, and the pure
    decision runs again on today's consent: an identified person without consent for the channel
    still blocks. `decision_id`, when given, must still be the photo's latest decision (a screen
    showing an older one is stale). With the person's biometric consent (allowed by the rules, and
    face matching on), the face also becomes a template through `confirm_face` unless `learn` is
    False; never otherwise. Audited with the reason. Raises PhotoNotFoundError,
    PersonNotFoundError, StaleDecisionError, InvalidInputError.
    """
    check_choice("resolution", resolution, policy.RESOLUTIONS)
    why = reason.strip()
    if not why:
        raise InvalidInputError("a reason is required to resolve a face", field="reason")
    if (resolution == "person") != (person_external_id is not None):
        raise InvalidInputError(
            "name the person exactly when the face is resolved as a person", field="person"
        )
    person = find_person(session, person_external_id) if person_external_id is not None else None
    # Locked (PostgreSQL) so that two reviewers of one photo take turns, each building on the other.
    photo = session.get(Photo, photo_id, with_for_update=True)
    if photo is None:
        raise PhotoNotFoundError(photo_id)
    previous = session.scalar(
        select(Decision)
        .where(Decision.photo_id == photo_id)
        .order_by(Decision.id.desc())
        .limit(1)
        .options(selectinload(Decision.faces))
    )
    if previous is None:
        raise PhotoNotFoundError(photo_id)
    if decision_id is not None and decision_id != previous.id:
        raise StaleDecisionError(decision_id, previous.id)
    positions = [f.position for f in previous.faces]
    if position not in positions:
        # Faces are numbered from 1 wherever people see them.
        shown = ", ".join(str(p + 1) for p in positions) if positions else "none"
        raise InvalidInputError(
            f"photo {photo_id} has no face {position + 1} (its faces: {shown})", field="face"
        )

    decision = _copy_decision(previous, now=now, actor=actor)
    target = next(f for f in decision.faces if f.position == position)
    target.review_resolution = resolution
    target.reviewed_person_id = person.id if person is not None else None
    target.reviewed_by, target.reviewed_at = actor, now

    inputs = [stored_face_input(f) for f in decision.faces]
    people = _load_people(session, (key for fi in inputs for key in fi.people))
    states = {k: decision_state(p, settings.policy, now) for k, p in people.items()}
    limit = next((r for r in previous.reasons if r in policy.LIMIT_REASONS), None)
    rules = policy_for(settings.policy, matching_enabled=matching_enabled(session, settings))
    verdict = policy.decide(inputs, states, photo.channel, now, rules, limit=limit)
    for face, result in zip(decision.faces, verdict.faces, strict=True):
        face.outcome, face.reasons, face.covered = result.outcome, list(result.reasons), result.covered
    decision.verdict, decision.reasons = verdict.verdict, list(verdict.reasons)
    session.add(decision)
    photo.status, photo.reasons, photo.decided_at = (
        PhotoStatus.of(verdict.verdict),
        list(verdict.reasons),
        now,
    )
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.FACE_REVIEWED,
        subject=f"photo:{photo.id}",
        details={
            "face": target.id,
            "position": position,
            "resolution": resolution,
            "person": person.id if person is not None else None,
            "reason": why,
            "previous_decision": previous.id,
            "decision": decision.id,
            "verdict": verdict.verdict,
            "reasons": list(verdict.reasons),
        },
    )

    template_id, note = None, None
    if learn and person is not None and person.status != PersonStatus.ERASED:
        try:
            template = confirm_face(
                session,
                target.id,
                person.external_id,
                engine=engine,
                originals=originals,
                settings=settings,
                now=now,
                actor=actor,
            )
        except (InvalidInputError, MediaError) as exc:
            # The identification stands; only the learning failed (too small to encode, say).
            note = explain(exc).words if isinstance(exc, MediaError) else str(exc)
        else:
            template_id = template.id if template is not None else None
    faces = tuple(
        ReviewedFace(
            position=face.position,
            box=(face.left, face.top, face.right, face.bottom),
            person=_external_id(people, verdict_identity(result, viewer=SYSTEM).person),
            outcome=result.outcome,
            reasons=result.reasons,
            review=face.review_resolution,
        )
        for face, result in zip(decision.faces, verdict.faces, strict=True)
    )
    return ReviewResult(
        photo_id=photo.id,
        decision_id=decision.id,
        previous_decision_id=previous.id,
        verdict=verdict.verdict,
        reasons=verdict.reasons,
        faces=faces,
        template_id=template_id,
        template_note=note,
    )


def _external_id(people: dict[str, Person], key: str | None) -> str | None:
    return people[key].external_id if key is not None and key in people else None


def _copy_decision(previous: Decision, *, now: datetime, actor: str) -> Decision:
    """A new decision of the same photo with the same faces and reviewer marks (decisions are history)."""
    return Decision(
        photo_id=previous.photo_id,
        verdict=previous.verdict,
        reasons=list(previous.reasons),
        decided_at=now,
        decided_by=actor,
        model=previous.model,
        settings=dict(previous.settings),
        analysis_scale=previous.analysis_scale,
        min_detect_px=previous.min_detect_px,
        faces=[
            Face(
                position=f.position,
                left=f.left,
                top=f.top,
                right=f.right,
                bottom=f.bottom,
                outcome=f.outcome,
                reasons=list(f.reasons),
                covered=f.covered,
                person_id=f.person_id,
                distance=f.distance,
                second_person_id=f.second_person_id,
                second_distance=f.second_distance,
                reviewer_outcome=f.reviewer_outcome,
                reviewed_by=f.reviewed_by,
                reviewed_at=f.reviewed_at,
                review_resolution=f.review_resolution,
                reviewed_person_id=f.reviewed_person_id,
            )
            for f in previous.faces
        ],
    )


def _load_people(session: Session, keys: Iterable[str]) -> dict[str, Person]:
    ids = sorted({int(k) for k in keys})
    if not ids:
        return {}
    found = session.scalars(select(Person).where(Person.id.in_(ids)).options(selectinload(Person.consents)))
    return {str(p.id): p for p in found}


def confirm_face(
    session: Session,
    face_id: int,
    external_id: str,
    *,
    engine: FaceEngine,
    originals: BlobStore,
    settings: Settings,
    now: datetime,
    actor: str,
) -> FaceTemplate | None:
    """Record that a reviewer confirmed face `face_id` shows `external_id`.

    With the person's biometric consent, the face also becomes a new template (re-encoded from the
    private original; face encodings are never stored otherwise). Returns the template, or None
    without biometric consent. Raises FaceNotFoundError, PersonNotFoundError, InvalidInputError.
    """
    face = session.get(Face, face_id)
    if face is None:
        raise FaceNotFoundError(face_id)
    person = find_person(session, external_id)
    if person.status == PersonStatus.ERASED:
        raise InvalidInputError(f"{external_id} was erased")
    face.reviewer_outcome, face.reviewed_by, face.reviewed_at = "confirmed", actor, now
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.FACE_CONFIRMED,
        subject=f"face:{face.id}",
        details={"person": person.id, "photo": face.decision.photo_id},
    )
    if matching_reasons(person, settings.policy, now) or not matching_enabled(session, settings):
        return None
    photo = face.decision.photo
    if photo.original_key is None:
        raise InvalidInputError("the photo's original is no longer kept; it cannot be enrolled")
    pixels = media.decode(originals.get(photo.original_key), max_pixels=settings.media.max_pixels).pixels
    box = (face.left, face.top, face.right, face.bottom)
    found = [f for f in engine.analyse(pixels).faces if _overlap(f.box, box) >= MIN_BOX_OVERLAP]
    if len(found) != 1 or found[0].encoding is None:
        raise InvalidInputError(
            "the confirmed face cannot be enrolled: it is too small or unclear to encode", field="face"
        )
    source = hashlib.sha256(f"{photo.sha256}:{box}".encode()).hexdigest()
    if any(t.source_sha256 == source and t.model == engine.model for t in person.templates):
        return None
    return add_template(
        session,
        person,
        found[0].encoding,
        model=engine.model,
        source_sha256=source,
        now=now,
        actor=actor,
        details={"from_face": face.id},
        settings=settings,
    )


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
