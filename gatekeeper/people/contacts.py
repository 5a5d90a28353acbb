"""Who a person's consent is asked of by email: their own address, and their parents' or guardians'.

A contact is an address and a role: `self` (the person), `parent` or `guardian`, with the
relationship as the MIS gives it (mother, carer...). Which of them is asked is the consent rules'
choice (`consent.forms.who_answers`); this module only keeps the list. Adding and removing are
audited by role, never by address: the audit chain outlives an erasure, addresses must not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentLink, Person, PersonContact
from gatekeeper.errors import InvalidInputError
from gatekeeper.mail.outbox import is_plain_address
from gatekeeper.policy import PersonStatus

SELF = "self"
PARENT = "parent"
GUARDIAN = "guardian"
ROLES = (SELF, PARENT, GUARDIAN)
# Relationships that make a contact a guardian rather than a parent (anything else: a parent).
_GUARDIAN_WORDS = ("guardian", "carer", "foster", "kinship", "social worker")


@dataclass(frozen=True)
class Contact:
    """One address to write to about a person, as `guardian_emails` and the pages give it."""

    email: str
    role: str
    relationship: str | None = None

    def as_text(self) -> str:
        """`relationship:email` for a parent or guardian, the address alone for the person."""
        return f"{self.relationship}:{self.email}" if self.relationship else self.email


def role_of(relationship: str | None) -> str:
    """A parent's or guardian's role from the relationship the MIS names: `guardian` for guardians,
    carers and foster carers, `parent` for anything else (mother, father, parent, step-parent...)."""
    words = (relationship or "").lower()
    return GUARDIAN if any(word in words for word in _GUARDIAN_WORDS) else PARENT


def check_address(email: str, field: str = "email") -> str:
    """`email` trimmed and lower-cased if it is one plain address; raises InvalidInputError."""
    address = email.strip()
    if not address or len(address) > 254 or not is_plain_address(address):
        raise InvalidInputError(f"not one plain email address: {email!r}", field=field)
    return address.lower()


def parse_guardians(value: str, field: str = "guardian_emails") -> tuple[Contact, ...]:
    """Parents' and guardians' addresses as a CSV cell or a form gives them: `;`-separated entries,
    each `relationship:address` (`mother:jo@example.org`) or an address alone (a parent).
    Raises InvalidInputError naming the entry that is not an address."""
    contacts: dict[str, Contact] = {}
    for entry in value.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        given, _, address = entry.rpartition(":")
        relationship = " ".join(given.split()) or None
        if relationship is not None and len(relationship) > 40:
            raise InvalidInputError(f"a relationship is at most 40 characters: {relationship!r}", field=field)
        email = check_address(address, field)
        contacts.setdefault(email, Contact(email, role_of(relationship), relationship or "parent"))
    return tuple(contacts.values())


def parse_contact(entry: str) -> Contact:
    """One contact as a command gives it: `self:ADDRESS` for the person's own address, else as one
    entry of `parse_guardians`. Raises InvalidInputError."""
    given, _, address = entry.strip().rpartition(":")
    if given.strip().lower() == SELF:
        return Contact(check_address(address), SELF)
    found = parse_guardians(entry, field="email")
    if len(found) != 1:
        raise InvalidInputError(f"give one address: {entry!r}", field="email")
    return found[0]


def contacts_of(session: Session, person: Person) -> list[PersonContact]:
    """The person's contacts: their own address first, then parents and guardians in the order added."""
    rows = session.scalars(
        select(PersonContact).where(PersonContact.person_id == person.id).order_by(PersonContact.id)
    )
    return sorted(rows, key=lambda c: c.role != SELF)


def add_contact(
    session: Session, person: Person, contact: Contact, *, now: datetime, actor: str, source: str = "staff"
) -> PersonContact | None:
    """Add `contact` to the person (flushes); None when they already have that address.

    A person has at most one address of their own: a new one replaces the old. Raises
    InvalidInputError for a bad address or role, or an erased person.
    """
    if person.status == PersonStatus.ERASED:
        raise InvalidInputError(f"{person.external_id} was erased; no contact can be added")
    if contact.role not in ROLES:
        raise InvalidInputError(
            f"a contact is one of {', '.join(ROLES)} (got {contact.role!r})", field="role"
        )
    email = check_address(contact.email)
    existing = contacts_of(session, person)
    if any(c.email == email for c in existing):
        return None
    if contact.role == SELF:
        for old in existing:
            if old.role == SELF:
                remove_contact(session, person, old, now=now, actor=actor, source=source)
    row = PersonContact(
        person_id=person.id,
        role=contact.role,
        relationship_to_person=None if contact.role == SELF else (contact.relationship or contact.role),
        email=email,
        created_at=now,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.CONTACT_ADDED,
        subject=f"person:{person.id}",
        details={"contact": row.id, "role": row.role, "source": source},
    )
    return row


def remove_contact(
    session: Session,
    person: Person,
    contact: PersonContact,
    *,
    now: datetime,
    actor: str,
    source: str = "staff",
) -> None:
    """Remove one contact (flushes): the consent links sent to it stop opening at once."""
    session.execute(
        update(ConsentLink)
        .where(ConsentLink.contact_id == contact.id)
        .values(contact_id=None, expires_at=now)
    )
    session.delete(contact)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.CONTACT_REMOVED,
        subject=f"person:{person.id}",
        details={"contact": contact.id, "role": contact.role, "source": source},
    )


def find_contact(session: Session, person: Person, email: str) -> PersonContact:
    """The person's contact with `email`; raises InvalidInputError when they have none."""
    address = check_address(email)
    for contact in contacts_of(session, person):
        if contact.email == address:
            return contact
    raise InvalidInputError(f"{person.external_id} has no contact {address}", field="email")


def sync_contacts(
    session: Session,
    person: Person,
    *,
    own: str | None,
    guardians: Sequence[Contact] | None,
    now: datetime,
    actor: str,
    source: str,
) -> list[str]:
    """Make the person's contacts what a MIS roll says (None: that column is not in the file, left
    as it is); returns what changed, as `added:<role>` / `removed:<role>` words."""
    changes: list[str] = []
    current = contacts_of(session, person)
    wanted: list[Contact] = []
    keep_roles: set[str] = set()
    if own is not None:
        keep_roles.add(SELF)
        if own.strip():
            wanted.append(Contact(check_address(own, "contact_email"), SELF))
    if guardians is not None:
        keep_roles.update((PARENT, GUARDIAN))
        wanted.extend(guardians)
    wanted_emails = {c.email for c in wanted}
    for contact in current:
        if contact.role in keep_roles and contact.email not in wanted_emails:
            remove_contact(session, person, contact, now=now, actor=actor, source=source)
            changes.append(f"removed:{contact.role}")
    have = {c.email for c in contacts_of(session, person)}
    for new in wanted:
        if new.email not in have:
            add_contact(session, person, new, now=now, actor=actor, source=source)
            have.add(new.email)
            changes.append(f"added:{new.role}")
    return changes


def forget_contacts(session: Session, person: Person, *, now: datetime) -> int:
    """Delete every contact of the person and close their consent links (an erasure); the count."""
    session.execute(
        update(ConsentLink).where(ConsentLink.person_id == person.id).values(contact_id=None, expires_at=now)
    )
    result = session.execute(delete(PersonContact).where(PersonContact.person_id == person.id))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)
