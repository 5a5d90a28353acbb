"""Every photo of one person, for a subject access or erasure request, and its export.

The export is a zip: `manifest.json` and `manifest.csv` (photos, decisions, publications), the
person's consent history, and one image per photo that shows them. No image in it shows anyone
else's face: where the person is the only face, the image is the original stripped of every
metadata block; where other faces are in the photo, they are covered (solid fill, verified by
detecting again when a face engine is given) and the copy is re-encoded without metadata. A photo
in which the person is only a possible match (not identified by the matcher or a reviewer) is
listed without an image: it may show someone else.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.models import Decision, Face, Person, Photo, Publication
from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.errors import GatekeeperError, MediaError
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import explain
from gatekeeper.services.people import find_person, subject
from gatekeeper.services.publish import covered_copy
from gatekeeper.services.purge import photos_showing
from gatekeeper.storage import BlobStore


@dataclass(frozen=True)
class PhotoOfPerson:
    """One photo whose recorded faces name the person, with what was decided and where it went."""

    photo: Photo
    decision: Decision | None
    # Positions of the faces taken to be the person (by the matcher or a reviewer).
    shown_at: tuple[int, ...]
    # True when the person is only a candidate (an uncertain or second-best match).
    possible_only: bool
    publications: tuple[Publication, ...]


def _shown(face: Face) -> int | None:
    if face.review_resolution is not None:
        return face.reviewed_person_id if face.review_resolution == "person" else None
    return face.person_id if face.outcome != "uncertain" else None


def photos_of(session: Session, external_id: str) -> tuple[Person, list[PhotoOfPerson]]:
    """The person and every photo that names them, newest first; raises PersonNotFoundError."""
    person = find_person(session, external_id)
    ids = photos_showing(session, person.id)
    photos = session.scalars(
        select(Photo)
        .where(Photo.id.in_(ids))
        .options(selectinload(Photo.decisions).selectinload(Decision.faces))
    ).all()
    publications: dict[int, list[Publication]] = {}
    for pub in session.scalars(
        select(Publication).where(Publication.photo_id.in_(ids)).order_by(Publication.id)
    ):
        publications.setdefault(pub.photo_id, []).append(pub)
    found = []
    for photo in sorted(photos, key=lambda p: p.id, reverse=True):
        decision = photo.decisions[-1] if photo.decisions else None
        faces = decision.faces if decision is not None else []
        shown = tuple(f.position for f in faces if _shown(f) == person.id)
        found.append(
            PhotoOfPerson(
                photo=photo,
                decision=decision,
                shown_at=shown,
                possible_only=not shown,
                publications=tuple(publications.get(photo.id, ())),
            )
        )
    return person, found


def _image(
    item: PhotoOfPerson, originals: BlobStore, settings: Settings, engine: FaceEngine | None
) -> tuple[media.CleanCopy | None, str]:
    """The clean image of one photo for the export and how it was made (or why there is none)."""
    if item.possible_only:
        return None, "not included: the person is only a possible match; a reviewer should identify the face"
    if item.photo.original_key is None or item.decision is None:
        return None, "not included: the original is no longer kept"
    others = [
        (f.left, f.top, f.right, f.bottom)
        for f in item.decision.faces
        if f.position not in item.shown_at and f.review_resolution != "not_a_face"
    ]
    try:
        original = originals.get(item.photo.original_key)
        if not others:
            copy = media.sanitise(
                original, max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality
            )
            return copy, "the original, stripped of metadata (no other face in it)"
        if engine is None:
            return (
                None,
                "not included: other faces are in it and no face engine is available to check the cover",
            )
        source = media.decode_source(original, max_pixels=settings.max_pixels)
        copy = covered_copy(source, others, settings=settings, engine=engine)
    except GatekeeperError as exc:
        return None, f"not included: {explain(exc).words if isinstance(exc, MediaError) else exc}"
    return copy, f"other people's faces covered ({len(others)})"


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def export_person(
    session: Session,
    external_id: str,
    *,
    originals: BlobStore,
    settings: Settings,
    engine: FaceEngine | None,
    now: datetime,
    actor: str,
) -> bytes:
    """The zip for a subject access request (audited); raises PersonNotFoundError."""
    person, items = photos_of(session, external_id)
    buffer = io.BytesIO()
    rows: list[dict[str, Any]] = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, item in enumerate(items, start=1):
            copy, how = _image(item, originals, settings, engine)
            name = f"photos/{number:04d}.{copy.extension.lstrip('.')}" if copy is not None else None
            if copy is not None and name is not None:
                archive.writestr(name, copy.data)
            decision = item.decision
            rows.append(
                {
                    "photo": item.photo.id,
                    "file": name,
                    "image": how,
                    "channel": item.photo.channel,
                    "uploaded_at": _when(item.photo.created_at),
                    "verdict": decision.verdict if decision else item.photo.status,
                    "reasons": list(decision.reasons) if decision else list(item.photo.reasons),
                    "decided_at": _when(decision.decided_at) if decision else None,
                    "faces_of_person": [p + 1 for p in item.shown_at],  # numbered from 1
                    "faces_in_photo": len(decision.faces) if decision else 0,
                    "retention_until": _when(item.photo.retention_until),
                    "publications": [
                        {
                            "channel": p.channel,
                            "where": p.target if p.external else "our published store",
                            "published_at": _when(p.published_at),
                            "taken_down_at": _when(p.taken_down_at),
                        }
                        for p in item.publications
                    ],
                }
            )
        manifest = {
            "person": {
                "external_id": person.external_id,
                "name": person.display_name,
                "date_of_birth": person.date_of_birth.isoformat() if person.date_of_birth else None,
                "status": person.status,
                "left_on": person.left_on.isoformat() if person.left_on else None,
                "face_templates": len(person.templates),
            },
            "exported_at": now.isoformat(),
            "photos": rows,
            "consent_history": [
                {
                    "at": r.at.isoformat(),
                    "kind": r.kind,
                    "channel": r.channel,
                    "action": r.action,
                    "granted_by": r.granted_by,
                    "by": r.granted_by_name,
                    "evidence": r.evidence_ref,
                    "wording": r.wording_version,
                    "valid_until": _when(r.valid_until),
                    "named": r.named if r.action == "grant" else None,
                    "how": r.how,
                }
                for r in sorted(person.consents, key=lambda r: r.id)
            ],
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(
            ["photo", "file", "image", "channel", "verdict", "reasons", "decided_at", "publications"]
        )
        for row in rows:
            writer.writerow(
                [
                    row["photo"],
                    row["file"] or "",
                    row["image"],
                    row["channel"],
                    row["verdict"],
                    ";".join(row["reasons"]),
                    row["decided_at"] or "",
                    ";".join(f"{p['channel']}@{p['published_at']}" for p in row["publications"]),
                ]
            )
        archive.writestr("manifest.csv", table.getvalue())
    audit.append(
        session,
        at=now,
        actor=actor,
        action="person.exported",
        subject=subject(person),
        details={"photos": len(rows), "images": sum(1 for r in rows if r["file"])},
    )
    return buffer.getvalue()
