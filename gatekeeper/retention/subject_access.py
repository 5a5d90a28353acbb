"""Every photo of one person, for a subject access or erasure request, and its export.

Only photos in which the person is confirmed count: a face matched to them with confidence, or
identified as them by a reviewer (identity.face_identity). A photo in which they are only an
uncertain candidate is a possible match: listed apart for consent admins, never with an image.

The export is a zip: `manifest.json` and `manifest.csv` (photos, decisions, publications), the
person's consent history, and one image per photo. Every face in an image other than the person's
is covered: every other recorded face (other people, unknown and uncertain faces, faces a reviewer
said were someone else or not a face) and every face that detection finds again at the export's
size that is not the person's. Detection then runs on the image as exported, at every angle the
gate searches; an image in which it still finds any face but the person's is withheld and listed
as such, never included. The manifest names no one but the person.
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
from consent_db.audit import AuditAction
from consent_db.models import Decision, Face, Person, Photo, Publication
from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.errors import GatekeeperError, MediaError
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import explain
from gatekeeper.people.identity import confirmed_person, masked_reasons
from gatekeeper.people.lookup import find_person, subject
from gatekeeper.retention.purge import photos_showing
from gatekeeper.staff.roles import Role
from gatekeeper.storage import BlobStore

Box = tuple[int, int, int, int]
WITHHELD = "withheld: could not cover every other face"


@dataclass(frozen=True)
class PhotoOfPerson:
    """One photo in which the person is confirmed, with what was decided and where it went."""

    photo: Photo
    decision: Decision | None
    # Positions of the faces that are the person (matched with confidence or identified by a reviewer).
    shown_at: tuple[int, ...]
    publications: tuple[Publication, ...]


@dataclass(frozen=True)
class PossibleMatch:
    """A photo in which the person is only an uncertain candidate: for consent admins, no image."""

    photo: Photo
    # Positions of the uncertain faces that may be the person.
    faces: tuple[int, ...]


def _possibly(face: Face, person_id: int) -> bool:
    return (
        face.review_resolution is None
        and face.outcome == "uncertain"
        and person_id in (face.person_id, face.second_person_id)
    )


def _latest(session: Session, person: Person) -> list[tuple[Photo, Decision | None]]:
    ids = photos_showing(session, person.id)
    photos = session.scalars(
        select(Photo)
        .where(Photo.id.in_(ids))
        .options(selectinload(Photo.decisions).selectinload(Decision.faces))
    ).all()
    return [
        (photo, photo.decisions[-1] if photo.decisions else None)
        for photo in sorted(photos, key=lambda p: p.id, reverse=True)
    ]


def photos_of(session: Session, external_id: str) -> tuple[Person, list[PhotoOfPerson]]:
    """The person and every photo in which they are confirmed, newest first; raises PersonNotFoundError."""
    person = find_person(session, external_id)
    found = []
    latest = [
        (photo, decision, shown)
        for photo, decision in _latest(session, person)
        if (
            shown := tuple(
                f.position for f in (decision.faces if decision else []) if confirmed_person(f) == person.id
            )
        )
    ]
    publications: dict[int, list[Publication]] = {}
    for pub in session.scalars(
        select(Publication)
        .where(Publication.photo_id.in_([photo.id for photo, _, _ in latest]))
        .order_by(Publication.id)
    ):
        publications.setdefault(pub.photo_id, []).append(pub)
    for photo, decision, shown in latest:
        found.append(PhotoOfPerson(photo, decision, shown, tuple(publications.get(photo.id, ()))))
    return person, found


def possible_matches(session: Session, external_id: str) -> list[PossibleMatch]:
    """Photos in which the person is only an uncertain candidate, newest first (no image is given)."""
    person = find_person(session, external_id)
    found = []
    for photo, decision in _latest(session, person):
        faces = decision.faces if decision is not None else []
        if any(confirmed_person(f) == person.id for f in faces):
            continue
        possible = tuple(f.position for f in faces if _possibly(f, person.id))
        if possible:
            found.append(PossibleMatch(photo, possible))
    return found


def _scaled(box: Box, scale: float) -> Box:
    left, top, right, bottom = box
    return (int(left * scale), int(top * scale), round(right * scale), round(bottom * scale))


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _is_subject(found: Box, subject_boxes: list[Box]) -> bool:
    """True when a detected box is one of the person's faces: each box holds the other's centre."""
    return any(_inside(_centre(found), own) and _inside(_centre(own), found) for own in subject_boxes)


def _others_found(engine: FaceEngine, pixels: Any, subject_boxes: list[Box]) -> list[Box] | None:
    """Boxes of faces detection finds that are not the person's; None when the search stopped early."""
    analysis = engine.analyse(pixels)
    if analysis.limit is not None:
        return None
    return [face.box for face in analysis.faces if not _is_subject(face.box, subject_boxes)]


def _image(
    item: PhotoOfPerson, originals: BlobStore, settings: Settings, engine: FaceEngine | None
) -> tuple[media.CleanCopy | None, str]:
    """The image of one photo for the export, with every other face covered, and how it was made
    (or why there is none)."""
    if item.photo.original_key is None or item.decision is None:
        return None, "not included: the original is no longer kept"
    if engine is None:
        return None, "not included: no face engine is available to check that only this person is shown"
    try:
        original = originals.get(item.photo.original_key)
        source = media.decode_source(original, max_pixels=settings.media.max_pixels)
        scale = source.scale
        subject_boxes = [
            _scaled((f.left, f.top, f.right, f.bottom), scale)
            for f in item.decision.faces
            if f.position in item.shown_at
        ]
        recorded = [
            _scaled((f.left, f.top, f.right, f.bottom), scale)
            for f in item.decision.faces
            if f.position not in item.shown_at
        ]
        # Faces the gate did not record (found only now, at the export's size) are covered too.
        found_now = _others_found(engine, source.image.pixels, subject_boxes)
        if found_now is None:
            return None, WITHHELD
        others = recorded + [box for box in found_now if not any(_inside(_centre(box), r) for r in recorded)]
        if others:
            copy = media.encode_clean(
                media.cover(source.image.pixels, others),
                fmt="jpeg",
                jpeg_quality=settings.media.jpeg_quality,
                icc_profile=source.icc_profile,
            )
        else:
            copy = media.sanitise(
                original,
                max_pixels=settings.media.max_pixels,
                jpeg_quality=settings.media.jpeg_quality,
                source=source,
            )
        # Checked as exported: any face but the person's still found, and the image is left out.
        exported = media.decode(copy.data, max_pixels=settings.media.max_pixels).pixels
        if _others_found(engine, exported, subject_boxes) != []:
            return None, WITHHELD
    except GatekeeperError as exc:
        return None, f"not included: {explain(exc).words if isinstance(exc, MediaError) else exc}"
    if not others:
        return copy, "the original, stripped of metadata (no other face in it)"
    return copy, f"other faces covered ({len(others)})"


def _where(publication: Publication) -> str:
    if not publication.external:
        return "our published store"
    # A download's record names the member of staff: the export names no one but its subject.
    if publication.target.startswith("downloaded by "):
        return "downloaded as a clean copy"
    return publication.target


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
    possible = possible_matches(session, external_id)
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
                    # No safeguarding flag, the person's or anyone else's, is told in an export.
                    "reasons": list(
                        masked_reasons(
                            decision.reasons if decision else item.photo.reasons, role=Role.UPLOADER
                        )
                    ),
                    "decided_at": _when(decision.decided_at) if decision else None,
                    "faces_of_person": [p + 1 for p in item.shown_at],  # numbered from 1
                    "faces_in_photo": len(decision.faces) if decision else 0,
                    "retention_until": _when(item.photo.retention_until),
                    "publications": [
                        {
                            "channel": p.channel,
                            "where": _where(p),
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
            "withheld": [r["photo"] for r in rows if r["image"] == WITHHELD],
            # Photos where the person is only a possible match: listed, never shown, until a
            # reviewer identifies the face.
            "possible_matches": {
                "note": "not confirmed: the face may be someone else; no image is included",
                "photos": [m.photo.id for m in possible],
            },
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
        action=AuditAction.PERSON_EXPORTED,
        subject=subject(person),
        details={"photos": len(rows), "images": sum(1 for r in rows if r["file"])},
    )
    return buffer.getvalue()
