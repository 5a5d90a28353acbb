"""Gating a photo for a channel, and the fresh re-check that publishing runs (publishing/).

The image path (DESIGN §5): validate, keep the original privately, decode upright, detect, encode,
match, decide, record, then (publishable only) sanitise. Publishing is a separate step that decides
again from the stored faces and today's consent, so nothing reaches a channel on a stale verdict.
Encodings of faces live only in memory here; only boxes, candidates and distances are stored.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Decision, Face, FaceTemplate, Person, Photo
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import check_channel, decision_state, policy_for, stored_face_input
from gatekeeper.errors import FileTooLargeError, MediaError, RecordNotFoundError
from gatekeeper.faces import DetectedFace, FaceEngine, TemplateIndex
from gatekeeper.faces.codec import TemplateKeys
from gatekeeper.media.refusals import explain
from gatekeeper.people.dpia import matching_enabled
from gatekeeper.people.identity import SYSTEM, verdict_identity
from gatekeeper.people.templates import template_keys
from gatekeeper.photos.status import PhotoStatus
from gatekeeper.policy import PersonStatus
from gatekeeper.storage import BlobStore


@dataclass(frozen=True)
class GateTools:
    """The collaborators one gating run needs; the template index is loaded once per run."""

    settings: Settings
    engine: FaceEngine
    originals: BlobStore
    index: TemplateIndex
    known_names: tuple[policy.KnownName, ...] = ()
    # False before a DPIA is recorded: faces are detected but never matched.
    matching_enabled: bool = True


@dataclass(frozen=True)
class FaceReport:
    """One face as reported to the uploader."""

    box: tuple[int, int, int, int]
    person: str | None
    distance: float | None
    outcome: str
    reasons: tuple[str, ...]
    covered: bool = False


@dataclass(frozen=True)
class GateResult:
    """The outcome of gating one photo: the recorded decision and, when publishable, a clean copy."""

    verdict: str
    reasons: tuple[str, ...]
    faces: tuple[FaceReport, ...]
    photo_id: int
    decision_id: int
    sha256: str
    clean: media.CleanCopy | None = None
    # Why the photo could not be read or made clean: plain words (what to do) and a reason code.
    error: str | None = None
    caption: str | None = None
    error_code: str | None = None


def load_template_index(session: Session, model: str, keys: TemplateKeys) -> TemplateIndex:
    """Every stored template of `model`, opened with `keys`, as one in-memory matrix keyed by person id.

    Raises FaceError when a template does not open (a missing key, or altered data).
    """
    rows = session.execute(
        select(FaceTemplate.person_id, FaceTemplate.encoding)
        .join(Person)
        .where(FaceTemplate.model == model, Person.status != PersonStatus.ERASED)
        .order_by(FaceTemplate.id)
    ).all()
    if not rows:
        return TemplateIndex.empty()
    return TemplateIndex(
        [str(r.person_id) for r in rows], np.stack([keys.open(r.encoding, r.person_id) for r in rows])
    )


def load_known_names(session: Session) -> tuple[policy.KnownName, ...]:
    """Every enrolled person's name, for scrubbing captions."""
    rows = session.execute(select(Person.id, Person.display_name).order_by(Person.id)).all()
    return tuple(policy.KnownName(str(r.id), r.display_name) for r in rows)


def load_tools(session: Session, settings: Settings, engine: FaceEngine, originals: BlobStore) -> GateTools:
    """The collaborators for a gating run, with templates and names loaded once."""
    enabled = matching_enabled(session, settings)
    index = (
        load_template_index(session, engine.model, template_keys(settings))
        if enabled
        else TemplateIndex.empty()
    )
    return GateTools(settings, engine, originals, index, load_known_names(session), enabled)


def original_key(sha256: str) -> str:
    """The private-store key of an original: content-addressed, so storing twice is harmless.

    Keys are relative to the originals store itself. Photos recorded before keys lost their
    `originals/` prefix keep the key in their row (`Photo.original_key`), which is always used.
    """
    return f"{sha256[:2]}/{sha256}"


def count_templates(session: Session) -> int:
    """How many face templates are enrolled: with none, every face is unknown."""
    return session.scalar(select(func.count()).select_from(FaceTemplate)) or 0


def gate_photo(
    session: Session,
    data: bytes,
    *,
    channel: str,
    tools: GateTools,
    now: datetime,
    actor: str,
    caption: str | None = None,
) -> GateResult:
    """Gate one photo for `channel`, record the decision, and make a clean copy when publishable.

    A photo is publishable only with a verified clean copy. Raises UnknownChannelError; image
    problems become a blocked verdict, never an exception.
    """
    settings = tools.settings
    check_channel(settings.policy, channel)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        if len(data) > settings.media.max_bytes:
            raise FileTooLargeError(len(data), settings.media.max_bytes)
        source = media.decode_source(
            data, max_pixels=settings.media.max_pixels, long_edge=settings.media.long_edge(channel)
        )
    except MediaError as exc:
        return record_unreadable(session, sha256, channel, exc, tools=tools, now=now, actor=actor)

    image = source.image
    # Detection and matching need no database: done before the transaction's first statement, so
    # the write lock (SQLite) is held only for the short bookkeeping that follows. The photo is
    # analysed at the size it will be published on this channel.
    analysis = tools.engine.analyse(image.pixels)
    detected = analysis.faces
    face_inputs = [
        policy.FaceInput(
            candidates=()
            if f.encoding is None
            # Three, so the decision can tell two people too close to call from a crowd of them.
            else tuple(policy.Candidate(m.key, m.distance) for m in tools.index.best_matches(f.encoding, 3)),
            too_small=f.too_small,
            possible=f.possible,
            degraded=f.degraded,
        )
        for f in detected
    ]
    # Boxes are reported and recorded in pixels of the full upright photo.
    full_boxes = [_full_box(f.box, source) for f in detected]
    photo = photo_row(session, sha256, channel, now=now, actor=actor)
    key = photo.original_key or original_key(sha256)
    tools.originals.put(key, data)
    photo.original_key, photo.media_format = key, image.format
    photo.width, photo.height = source.full_size or (image.width, image.height)

    people = _people(session, {c.person for fi in face_inputs for c in fi.candidates})
    states = {k: decision_state(p, settings.policy, now) for k, p in people.items()}
    verdict = policy.decide(
        face_inputs,
        states,
        channel,
        now,
        policy_for(settings.policy, matching_enabled=tools.matching_enabled),
        limit=analysis.limit,
    )
    clean = None
    error = error_code = None
    if verdict.verdict == policy.Verdict.PUBLISHABLE:
        try:
            if any(v.covered for v in verdict.faces):
                clean = _covered_copy(source, verdict, detected, tools)
                if clean is None:
                    verdict = _blocked(verdict, policy.COVER_FAILED)
            else:
                clean = media.sanitise(
                    data,
                    max_pixels=settings.media.max_pixels,
                    jpeg_quality=settings.media.jpeg_quality,
                    source=source,
                )
        except MediaError as exc:
            # Without a verified clean copy there is nothing that could be published.
            error, error_code = f"no clean copy could be made: {explain(exc).reason}", exc.code
            verdict = _blocked(verdict, policy.CLEAN_COPY_FAILED)
    if caption is not None:
        allowed = policy.naming_allowed(verdict, states, channel, now)
        photo.caption = policy.scrub_names(caption, tools.known_names, allowed).text
    decision = _record(
        session,
        photo,
        verdict,
        full_boxes,
        face_inputs,
        now=now,
        actor=actor,
        tools=tools,
        details={"error": error_code} if error_code else None,
        analysis=(source.scale, analysis.min_detect_px),
        error=(error_code, error) if error_code and error else None,
    )
    faces = tuple(
        FaceReport(
            box=box,
            person=_external_id(people, verdict_identity(v, viewer=SYSTEM).person),
            distance=v.distance,
            outcome=v.outcome,
            reasons=v.reasons,
            covered=v.covered,
        )
        for box, v in zip(full_boxes, verdict.faces, strict=True)
    )
    return GateResult(
        verdict.verdict,
        verdict.reasons,
        faces,
        photo.id,
        decision.id,
        sha256,
        clean,
        error,
        photo.caption,
        error_code,
    )


def _external_id(people: dict[str, Person], key: str | None) -> str | None:
    return people[key].external_id if key is not None and key in people else None


def record_unreadable(
    session: Session,
    sha256: str,
    channel: str,
    error: MediaError,
    *,
    tools: GateTools,
    now: datetime,
    actor: str,
) -> GateResult:
    """Record a blocked `unreadable_image` verdict for a file that could not be read as an image,
    with the refusal's reason code and plain words (media/refusals.py)."""
    refusal = explain(error)
    photo = photo_row(session, sha256, channel, now=now, actor=actor)
    verdict = policy.unreadable()
    decision = _record(
        session,
        photo,
        verdict,
        [],
        [],
        now=now,
        actor=actor,
        tools=tools,
        details={"error": refusal.code},
        analysis=(1.0, tools.engine.min_detect_px),
        error=(refusal.code, refusal.words),
    )
    return GateResult(
        verdict.verdict,
        verdict.reasons,
        (),
        photo.id,
        decision.id,
        sha256,
        error=refusal.words,
        error_code=refusal.code,
    )


def record_unreadable_file(session: Session, channel: str, error: str, *, now: datetime, actor: str) -> None:
    """Audit a file that could not be read at all: there is no content, so no photo to record."""
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.FILE_UNREADABLE,
        subject=f"channel:{channel}",
        details={"error": error},
    )


def _blocked(verdict: policy.PhotoVerdict, reason: str) -> policy.PhotoVerdict:
    """A publishable verdict turned to blocked because a later step of the image path failed."""
    return replace(verdict, verdict=policy.Verdict.BLOCKED, reasons=(*verdict.reasons, reason))


def _covered_copy(
    source: media.DecodedSource,
    verdict: policy.PhotoVerdict,
    detected: Sequence[DetectedFace],
    tools: GateTools,
) -> media.CleanCopy | None:
    """The photo with unconsented faces covered, or None when detection still finds one of them."""
    boxes = [f.box for f, v in zip(detected, verdict.faces, strict=True) if v.covered]
    settings = tools.settings
    clean = media.encode_clean(
        media.cover(source.image.pixels, boxes),
        fmt="jpeg",
        jpeg_quality=settings.media.jpeg_quality,
        icc_profile=source.icc_profile,
    )
    # Verify, don't trust: detect again on what would be published.
    again = tools.engine.analyse(media.decode(clean.data, max_pixels=settings.media.max_pixels).pixels)
    for face in again.faces:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        if any(left <= cx <= right and top <= cy <= bottom for left, top, right, bottom in boxes):
            return None
    return clean


def _full_box(box: tuple[int, int, int, int], source: media.DecodedSource) -> tuple[int, int, int, int]:
    """A box in the analysed copy as a box in the full upright photo (rounded outwards)."""
    if source.full_size is None:
        return box
    width, height = source.full_size
    factor = 1 / source.scale
    left, top, right, bottom = box
    return (
        max(0, math.floor(left * factor)),
        max(0, math.floor(top * factor)),
        min(width, math.ceil(right * factor)),
        min(height, math.ceil(bottom * factor)),
    )


def photo_row(session: Session, sha256: str, channel: str, *, now: datetime, actor: str) -> Photo:
    """The photo row of an original on a channel, made (pending, undecided) when it is new."""
    photo = session.scalar(select(Photo).where(Photo.sha256 == sha256, Photo.channel == channel))
    if photo is None:
        photo = Photo(
            sha256=sha256,
            channel=channel,
            status=PhotoStatus.PENDING,
            reasons=[],
            uploaded_by=actor,
            created_at=now,
            decided_at=now,
        )
        session.add(photo)
        session.flush()
    return photo


def _people(session: Session, keys: Iterable[str]) -> dict[str, Person]:
    ids = sorted({int(k) for k in keys})
    if not ids:
        return {}
    found = session.scalars(select(Person).where(Person.id.in_(ids)).options(selectinload(Person.consents)))
    return {str(p.id): p for p in found}


def _record(
    session: Session,
    photo: Photo,
    verdict: policy.PhotoVerdict,
    boxes: Sequence[tuple[int, int, int, int]],
    inputs: Sequence[policy.FaceInput],
    *,
    now: datetime,
    actor: str,
    tools: GateTools,
    details: dict[str, object] | None = None,
    analysis: tuple[float, int],
    error: tuple[str, str] | None = None,
) -> Decision:
    settings = tools.settings
    decision = Decision(
        analysis_scale=analysis[0],
        min_detect_px=analysis[1],
        photo=photo,
        verdict=verdict.verdict,
        reasons=list(verdict.reasons),
        decided_at=now,
        decided_by=actor,
        model=tools.engine.model,
        settings={
            "accept_distance": settings.policy.accept_distance,
            "review_distance": settings.policy.review_distance,
            "margin": settings.policy.margin,
            "age_threshold": settings.policy.age_threshold,
            "min_face_px": settings.faces.min_face_px,
            "long_edge": settings.media.long_edge(photo.channel),
        },
        error_code=error[0] if error else None,
        error=error[1] if error else None,
    )
    for position, (box, face_input, result) in enumerate(zip(boxes, inputs, verdict.faces, strict=True)):
        best = face_input.candidates[0] if face_input.candidates else None
        second = face_input.candidates[1] if len(face_input.candidates) > 1 else None
        left, top, right, bottom = box
        decision.faces.append(
            Face(
                covered=result.covered,
                position=position,
                left=left,
                top=top,
                right=right,
                bottom=bottom,
                outcome=result.outcome,
                reasons=list(result.reasons),
                person_id=int(best.person) if best else None,
                distance=best.distance if best else None,
                second_person_id=int(second.person) if second else None,
                second_distance=second.distance if second else None,
            )
        )
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
        action=AuditAction.PHOTO_GATED,
        subject=f"photo:{photo.id}",
        details={
            "sha256": photo.sha256,
            "channel": photo.channel,
            "decision": decision.id,
            "verdict": verdict.verdict,
            "reasons": list(verdict.reasons),
            "faces": [
                {
                    "box": list(b),
                    "outcome": v.outcome,
                    "person": verdict_identity(v, viewer=SYSTEM).person,
                    "reasons": list(v.reasons),
                    **({"also": list(v.also)} if v.also else {}),
                }
                for b, v in zip(boxes, verdict.faces, strict=True)
            ],
            **(details or {}),
        },
    )
    return decision


# --- publishing ------------------------------------------------------------------------------------


def recheck(
    session: Session, decision_id: int, *, settings: Settings, now: datetime, channel: str | None = None
) -> policy.PhotoVerdict:
    """Decide again from a recorded decision's faces and the consent in force at `now`, for `channel`
    (the photo's own when None).

    A copy made with some faces covered is publishable only if no further face needs covering now.
    A decision whose analysis was coarser than `channel`'s copies need is blocked with
    `analysis_too_coarse`: the photo must be gated again for that channel.
    """
    decision = session.get(Decision, decision_id, options=[selectinload(Decision.faces)])
    if decision is None:
        return policy.unreadable()
    channel = channel or decision.photo.channel
    photo = decision.photo
    if photo.width and photo.height:
        width, _ = media.output_size(photo.width, photo.height, settings.media.long_edge(channel))
        if not policy.is_fine_enough(
            decision.analysis_scale, decision.min_detect_px, width / photo.width, settings.faces.min_detect_px
        ):
            return policy.PhotoVerdict(policy.Verdict.BLOCKED, (policy.ANALYSIS_TOO_COARSE,), ())
    if policy.UNREADABLE_IMAGE in decision.reasons:
        return policy.unreadable()
    failed = [r for r in decision.reasons if r in (policy.COVER_FAILED, policy.CLEAN_COPY_FAILED)]
    if failed:
        return policy.PhotoVerdict(policy.Verdict.BLOCKED, tuple(failed), ())
    # A face a reviewer identified is decided as that person (their consent today), whoever it matched.
    inputs = [stored_face_input(face) for face in decision.faces]
    people = _people(session, {key for fi in inputs for key in fi.people})
    states = {k: decision_state(p, settings.policy, now) for k, p in people.items()}
    limit = next((r for r in decision.reasons if r in policy.LIMIT_REASONS), None)
    rules = policy_for(settings.policy, matching_enabled=matching_enabled(session, settings))
    fresh = policy.decide(inputs, states, channel, now, rules, limit=limit)
    newly_covered = [
        stored.position
        for stored, now_face in zip(decision.faces, fresh.faces, strict=True)
        if now_face.covered and not stored.covered
    ]
    if fresh.verdict == policy.Verdict.PUBLISHABLE and newly_covered:
        # Someone's consent lapsed since the copy was made: that copy shows their face uncovered.
        return _blocked(fresh, policy.CONSENT_CHANGED)
    return fresh


def gate_original(
    session: Session,
    sha256: str,
    channel: str,
    *,
    tools: GateTools,
    now: datetime,
    actor: str,
    caption: str | None = None,
) -> GateResult:
    """Gate an original already kept in the private store; raises BlobNotFoundError, StorageError."""
    data = tools.originals.get(original_key(sha256))
    return gate_photo(session, data, channel=channel, tools=tools, now=now, actor=actor, caption=caption)


def latest_decision(session: Session, photo_id: int) -> Decision:
    """The photo's most recent decision; raises RecordNotFoundError."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise RecordNotFoundError("photo", photo_id)
    decision = session.scalar(
        select(Decision)
        .where(Decision.photo_id == photo_id)
        .order_by(Decision.id.desc())
        .limit(1)
        .options(selectinload(Decision.faces))
    )
    if decision is None:
        raise RecordNotFoundError("decision of photo", photo_id)
    return decision
