"""Staff roles and what each may do: one table, read by every route, page and rule that asks.

Each route of the web app and the API declares one permission; an account passes when its role is
in that permission's set.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Role(StrEnum):
    """A staff account's role, as stored on the account (in this order in `users add --role`)."""

    UPLOADER = "uploader"
    REVIEWER = "reviewer"
    CONSENT_ADMIN = "consent_admin"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(StrEnum):
    """Something a role may do."""

    # Upload photos, open one's batches, make clean copies and publish them.
    UPLOAD = "upload"
    # Open a photo's page, preview and thumbnail.
    VIEW_PHOTOS = "view_photos"
    # Work through the review queue: identify faces by eye.
    REVIEW = "review"
    # See where photos were published and mark external copies taken down.
    RECORD_PLACEMENTS = "record_placements"
    # Read, export and verify the audit log.
    READ_AUDIT = "read_audit"
    # People and their consent: records, safeguarding flags, imports, withdrawal requests, enrolment.
    MANAGE_PEOPLE = "manage_people"
    # Look after staff accounts (added on the server with `gatekeeper users`: the home page says how).
    MANAGE_STAFF = "manage_staff"
    # Upload photos and fetch their verdicts and clean copies through the JSON API.
    PHOTO_API = "photo_api"
    # See that a safeguarding flag is why a photo is blocked (others see only "no consent").
    SEE_SAFEGUARDING = "see_safeguarding"
    # Open every batch and photo, not only those one uploaded.
    SEE_ALL_UPLOADS = "see_all_uploads"
    # Be told the candidate of an uncertain match, while reviewing the face.
    SEE_POSSIBLE_MATCHES = "see_possible_matches"
    # See the emails the gatekeeper sends, failed and uncertain ones first, with the server's answer.
    READ_OUTBOX = "read_outbox"


PERMISSIONS: Final[Mapping[Permission, frozenset[Role]]] = MappingProxyType(
    {
        Permission.UPLOAD: frozenset({Role.UPLOADER, Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.VIEW_PHOTOS: frozenset({Role.UPLOADER, Role.REVIEWER, Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.REVIEW: frozenset({Role.REVIEWER, Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.RECORD_PLACEMENTS: frozenset({Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.READ_AUDIT: frozenset({Role.AUDITOR, Role.ADMIN}),
        Permission.MANAGE_PEOPLE: frozenset({Role.CONSENT_ADMIN}),
        Permission.MANAGE_STAFF: frozenset({Role.ADMIN}),
        Permission.PHOTO_API: frozenset({Role.UPLOADER, Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.SEE_SAFEGUARDING: frozenset({Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.SEE_ALL_UPLOADS: frozenset({Role.REVIEWER, Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.SEE_POSSIBLE_MATCHES: frozenset({Role.REVIEWER, Role.CONSENT_ADMIN, Role.ADMIN}),
        Permission.READ_OUTBOX: frozenset({Role.CONSENT_ADMIN, Role.ADMIN}),
    }
)


def may(role: str, permission: Permission) -> bool:
    """True when an account of `role` has `permission`."""
    return role in PERMISSIONS[permission]
