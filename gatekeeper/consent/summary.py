"""What `people show` reports: consent per channel now, templates, and the full history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from consent_db.models import ConsentRecord
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import matching_reasons, person_state, policy_for
from gatekeeper.people.lookup import find_person


@dataclass(frozen=True)
class ChannelStatus:
    """Whether a person may appear on one channel now, and on what terms."""

    channel: str
    publishable: bool
    reasons: tuple[str, ...]
    granted_by: str | None
    valid_until: datetime | None
    named: str | None

    def as_json(self) -> dict[str, Any]:
        """The channel as `people show --json` prints it and the API answers it."""
        return {
            "channel": self.channel,
            "publishable": self.publishable,
            "reasons": list(self.reasons),
            "granted_by": self.granted_by,
            "named": self.named,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


@dataclass(frozen=True)
class PersonSummary:
    """What `people show` prints."""

    external_id: str
    name: str
    date_of_birth: date | None
    status: str
    safeguarding: bool
    templates: int
    biometric_consent: bool
    biometric_reasons: tuple[str, ...]
    left_on: date | None
    channels: tuple[ChannelStatus, ...]
    history: tuple[ConsentRecord, ...]


def summarise_person(
    session: Session, external_id: str, *, settings: Settings, now: datetime
) -> PersonSummary:
    """The current consent per channel, template count and full history; raises PersonNotFoundError."""
    person = find_person(session, external_id)
    state = person_state(person)
    rules = policy_for(settings.policy)
    channels = list(settings.policy.channels) + sorted(
        {r.channel for r in person.consents if r.kind == "publication"} - set(settings.policy.channels)
    )
    statuses = []
    for channel in channels:
        reasons = policy.consent_reasons(state, channel, now, rules)
        current = policy.current_record(state.records, channel, now)
        grant = current if current is not None and current.action == "grant" else None
        statuses.append(
            ChannelStatus(
                channel=channel,
                publishable=not reasons,
                reasons=reasons,
                granted_by=grant.granted_by if grant else None,
                valid_until=grant.valid_until if grant else None,
                named=grant.named if grant else None,
            )
        )
    biometric = matching_reasons(person, settings.policy, now)
    return PersonSummary(
        external_id=person.external_id,
        name=person.display_name,
        date_of_birth=person.date_of_birth,
        status=person.status,
        safeguarding=person.safeguarding,
        templates=len(person.templates),
        biometric_consent=not biometric,
        biometric_reasons=biometric,
        left_on=person.left_on,
        channels=tuple(statuses),
        history=tuple(sorted(person.consents, key=lambda r: r.id)),
    )
