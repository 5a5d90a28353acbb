"""Biometric templates: made from enrolment photos or a reviewer's confirmed face, and deleted.

Templates exist only with biometric consent; every creation and deletion is audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import FaceTemplate, Person
from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.errors import EnrolmentPhotoError, GatekeeperError, InvalidInputError, MediaError
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import explain
from gatekeeper.people.dpia import require_matching
from gatekeeper.people.lookup import subject
from gatekeeper.people.templates import template_keys


def enrol(
    session: Session,
    person: Person,
    photos: Sequence[Path],
    *,
    engine: FaceEngine | None,
    settings: Settings,
    now: datetime,
    actor: str,
) -> int:
    """Make a template from each new enrolment photo (the caller has checked biometric consent).

    Every photo is checked before any template is made (enrolment_refusals); raises InvalidInputError
    naming each refused photo and why, DpiaRequiredError before a DPIA is recorded.
    """
    known = {t.source_sha256 for t in person.templates}
    fresh: list[tuple[Path, str, bytes]] = []
    for path in photos:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in known and digest not in {d for _, d, _ in fresh}:
            fresh.append((path, digest, data))
    if not fresh:
        return 0
    if engine is None:
        raise InvalidInputError("no face engine available to enrol photos")
    require_matching(session, settings)
    encodings, refusals = encode_photos(engine, [(path.name, data) for path, _, data in fresh], settings)
    if refusals:
        raise InvalidInputError(
            "; ".join(f"enrolment photo {name}: {message}" for name, _, message in refusals)
        )
    for (_, digest, _), encoding in zip(fresh, encodings, strict=True):
        add_template(
            session,
            person,
            encoding,
            model=engine.model,
            source_sha256=digest,
            now=now,
            actor=actor,
            details={"source_sha256": digest},
            settings=settings,
        )
    return len(fresh)


def encode_photos(
    engine: FaceEngine, photos: Sequence[tuple[str, bytes]], settings: Settings
) -> tuple[list[NDArray[np.float64]], list[tuple[str, str, str]]]:
    """Each enrolment photo's encoding, and (name, reason code, message) for every photo refused.

    Each photo is checked on its own (one face, large enough, clear: engine.encode_single), so one
    answer names every photo to replace and why.
    """
    encodings: list[NDArray[np.float64]] = []
    refusals: list[tuple[str, str, str]] = []
    for name, data in photos:
        try:
            encodings.append(
                engine.encode_single(media.decode(data, max_pixels=settings.media.max_pixels).pixels)
            )
        except EnrolmentPhotoError as exc:
            refusals.append((name, exc.reason or exc.code, str(exc)))
        except GatekeeperError as exc:
            refusals.append((name, exc.code, _reason(exc)))
    return encodings, refusals


def _reason(exc: GatekeeperError) -> str:
    # In our own words: a decoder's message may quote the file's first bytes (an upload must never
    # learn what a file holds) or internals.
    return explain(exc).words if isinstance(exc, MediaError) else str(exc)


def add_template(
    session: Session,
    person: Person,
    encoding: NDArray[np.float64],
    *,
    model: str,
    source_sha256: str,
    now: datetime,
    actor: str,
    details: dict[str, Any],
    settings: Settings,
) -> FaceTemplate:
    """Store one template of `person`, sealed, and audit it; the caller has checked biometric consent.

    Raises ConfigError when the template keys cannot be read, FaceError on a bad encoding.
    """
    if person.id is None:
        session.flush()  # the person's id seals the template
    template = FaceTemplate(
        person=person,
        encoding=template_keys(settings).seal(encoding, person.id),
        model=model,
        source_sha256=source_sha256,
        created_at=now,
    )
    session.add(template)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.TEMPLATE_CREATED,
        subject=subject(person),
        details={"template": template.id, "model": model, **details},
    )
    return template


def delete_templates(session: Session, person: Person, *, now: datetime, actor: str, why: str) -> int:
    """Delete every biometric template of `person`, auditing the deletion."""
    count = len(person.templates)
    if count:
        ids = [t.id for t in person.templates]
        person.templates.clear()
        session.flush()
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.TEMPLATE_DELETED,
            subject=subject(person),
            details={"templates": ids, "why": why},
        )
    return count
