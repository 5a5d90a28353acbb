"""Turning stored people and consent rows into the plain data the pure decision takes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import cast

from consent_db.models import ConsentRecord, Face, Person
from gatekeeper import policy
from gatekeeper.config import PolicySettings
from gatekeeper.errors import InvalidInputError, UnknownChannelError

BIOMETRIC = "biometric"


def policy_for(settings: PolicySettings, *, matching_enabled: bool = True) -> policy.Policy:
    """The decision policy `settings` configure; `matching_enabled` False before a DPIA is recorded."""
    return policy.Policy(
        accept_distance=settings.accept_distance,
        review_distance=settings.review_distance,
        margin=settings.margin,
        age_threshold=settings.age_threshold,
        cover_channels=frozenset(settings.cover_channels),
        reconsent_grace_days=settings.reconsent_grace_days,
        lawful_bases=tuple((c, cast(policy.LawfulBasis, b)) for c, b in settings.lawful_bases),
        matching_enabled=matching_enabled,
        unknown_faces=cast(policy.UnknownFaces, settings.unknown_faces),
        biometric_rules=cast(policy.BiometricRules, settings.biometric_rules),
    )


def check_channel(settings: PolicySettings, channel: str) -> str:
    """Return `channel` if configured (or a sub-channel of a configured one); raises UnknownChannelError."""
    named = policy.Channel(channel)
    if channel in settings.channels or (named.parent in settings.channels and named.is_sub_channel):
        return channel
    raise UnknownChannelError(channel, settings.channels)


def as_consent_fact(row: ConsentRecord) -> policy.ConsentFact:
    """A stored consent row as the decision sees it."""
    return policy.ConsentFact(
        channel=row.channel,
        action=cast(policy.Action, row.action),
        at=row.at,
        sequence=row.id,
        granted_by=cast(policy.GrantedBy, row.granted_by or "self"),
        valid_until=row.valid_until,
        named=cast(policy.Named, row.named),
        survives_leaving=row.survives_leaving,
    )


def person_state(person: Person, *, kind: str = "publication") -> policy.PersonState:
    """A person and their consent records of one kind, as plain data for the decision."""
    return policy.PersonState(
        person=str(person.id),
        date_of_birth=person.date_of_birth,
        records=tuple(as_consent_fact(r) for r in person.consents if r.kind == kind),
        status=policy.PersonStatus(person.status),
        safeguarding=person.safeguarding,
        left_on=person.left_on,
    )


def biometric_records(person: Person) -> tuple[policy.BiometricRecord, ...]:
    """A person's biometric consent answers as the decision sees them."""
    return tuple(
        policy.BiometricRecord(
            action=cast(policy.BiometricAction, r.action),
            by=cast(policy.GrantedBy, r.granted_by or "self"),
            at=r.at,
            by_name=r.granted_by_name,
            sequence=r.id,
        )
        for r in person.consents
        if r.kind == BIOMETRIC
    )


def matching_reasons(person: Person, settings: PolicySettings, now: datetime) -> tuple[str, ...]:
    """Why `person`'s face may not be matched now (no templates made or kept); empty when it may."""
    rules = cast(policy.BiometricRules, settings.biometric_rules)
    return policy.biometric_reasons(person.date_of_birth, biometric_records(person), now, rules)


def latest(
    records: Iterable[ConsentRecord], channel: str, *, action: str | None = None
) -> ConsentRecord | None:
    """The most recent stored record for exactly `channel` (optionally of one action)."""
    found = [r for r in records if r.channel == channel and (action is None or r.action == action)]
    return max(found, key=lambda r: (r.at, r.id)) if found else None


def check_choice(field: str, value: str, allowed: Sequence[str]) -> str:
    """Return `value` if it is one of `allowed`; raises InvalidInputError naming the field."""
    if value not in allowed:
        raise InvalidInputError(f"{field} must be one of {', '.join(allowed)} (got {value!r})", field=field)
    return value


def decision_state(person: Person, settings: PolicySettings, now: datetime) -> policy.PersonState:
    """A person as the photo decision sees them at `now`, including whether they may be matched."""
    state = person_state(person)
    return replace(state, matchable=not matching_reasons(person, settings, now))


def stored_review(face: Face) -> policy.Review | None:
    """A reviewer's identification recorded on a face, as the decision sees it; None if not reviewed.

    A face identified as a person whose record is gone (deleted since) counts as a stranger: it
    fails closed.
    """
    resolution = face.review_resolution
    if resolution is None:
        return None
    if resolution == "person":
        if face.reviewed_person_id is None:
            return policy.Review("stranger")
        return policy.Review("person", str(face.reviewed_person_id))
    return policy.Review(cast(policy.Resolution, resolution))


def stored_face_input(face: Face) -> policy.FaceInput:
    """A recorded face as the decision sees it: its candidates, its kind, and any reviewer's word."""
    candidates = []
    if face.person_id is not None and face.distance is not None:
        candidates.append(policy.Candidate(str(face.person_id), face.distance))
    if face.second_person_id is not None and face.second_distance is not None:
        candidates.append(policy.Candidate(str(face.second_person_id), face.second_distance))
    return policy.FaceInput(
        tuple(candidates),
        too_small=policy.FACE_TOO_SMALL in face.reasons,
        possible=policy.POSSIBLE_FACE in face.reasons,
        review=stored_review(face),
        degraded=policy.UNRELIABLE_FACE in face.reasons,
    )
