"""Staff accounts: one-time passwords, password changes and hashed API tokens.

Passwords are hashed with Argon2id (argon2-cffi). API tokens are long random strings: only their
sha256 is stored, so a token is shown once, when it is issued, and can never be read back.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import StaffUser
from gatekeeper.errors import InvalidInputError, StaffUserNotFoundError
from gatekeeper.mail import outbox
from gatekeeper.staff.roles import Role

FIRST_ADMIN = "admin"
MIN_PASSWORD_LENGTH = 12
# zxcvbn's score (0-4): below 3, the password is a common or breached-style one (its shipped lists of
# common passwords, words and names), a repeat, a sequence or a keyboard walk, or built from them.
MIN_PASSWORD_SCORE = 3
TOKEN_PREFIX = "gk_"
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,119}$")
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class NewAccount:
    """A created account and its one-time password (shown once, then only its hash exists)."""

    user: StaffUser
    password: str


def hash_password(password: str) -> str:
    """The Argon2id hash of `password`."""
    return _hasher.hash(password)


def token_hash(token: str) -> str:
    """The stored form of an API token or withdrawal link token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_username(username: str) -> str:
    """Return `username` if acceptable; raises InvalidInputError."""
    if not _USERNAME_RE.match(username):
        raise InvalidInputError(
            f"username {username!r}: lower-case letters, digits, '.', '_' or '-' (at most 120)",
            field="username",
        )
    return username


def check_role(role: str) -> str:
    """Return `role` if it is one of the roles (`Role`); raises InvalidInputError."""
    if role not in list(Role):
        raise InvalidInputError(f"role must be one of {', '.join(Role)} (got {role!r})", field="role")
    return role


def create_user(session: Session, username: str, role: str, *, now: datetime, actor: str) -> NewAccount:
    """Create an account with a one-time password; raises InvalidInputError (bad or taken name)."""
    check_username(username)
    check_role(role)
    if session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise InvalidInputError(f"a staff account named {username!r} already exists", field="username")
    password = secrets.token_urlsafe(12)
    user = StaffUser(
        username=username,
        email=None,
        display_name=username,
        role=role,
        password_hash=hash_password(password),
        must_change_password=True,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.USER_CREATED,
        subject=f"user:{user.id}",
        details={"role": role},
    )
    return NewAccount(user, password)


def ensure_first_admin(session: Session, *, now: datetime) -> NewAccount | None:
    """On a database without any account, create `admin` with a one-time password; else None."""
    if session.scalar(select(func.count()).select_from(StaffUser)):
        return None
    return create_user(session, FIRST_ADMIN, Role.ADMIN, now=now, actor="system:first-start")


def find_user(session: Session, username: str) -> StaffUser:
    """The account named `username`; raises StaffUserNotFoundError."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        raise StaffUserNotFoundError(username)
    return user


def authenticate(session: Session, username: str, password: str, *, now: datetime) -> StaffUser | None:
    """The active account whose password this is, else None (unknown names cost the same time)."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username.strip().lower()))
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    session.flush()
    return user


def change_password(session: Session, user_id: int, current: str, new: str, *, now: datetime) -> StaffUser:
    """Replace a password after checking the current one; raises InvalidInputError."""
    user = session.get(StaffUser, user_id)
    if user is None or not user.active:
        raise InvalidInputError("this account no longer exists")
    try:
        _hasher.verify(user.password_hash or _DUMMY_HASH, current)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise InvalidInputError("the current password is not right", field="current") from None
    if new == current:
        raise InvalidInputError("the new password must differ from the current one", field="new")
    check_password(new, username=user.username)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    session.flush()
    audit.append(
        session,
        at=now,
        actor=f"user:{user.username}",
        action=AuditAction.USER_PASSWORD_CHANGED,
        subject=f"user:{user.id}",
    )
    return user


def check_password(password: str, *, username: str = "") -> str:
    """Return `password` if long enough and not easily guessed; raises InvalidInputError.

    As the NCSC advises: a minimum length and a deny-list, no rules about character classes. The
    deny-list is zxcvbn's: common and breached passwords, words and names, repeats such as
    `aaaaaaaaaaaa`, sequences, keyboard walks, dates, and the account's own name.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"the new password must have at least {MIN_PASSWORD_LENGTH} characters", field="new"
        )
    # zxcvbn's cost grows with length; past 100 characters a password is long enough on its own.
    result = zxcvbn(password[:100], user_inputs=[username, "gatekeeper", "consent"] if username else [])
    if int(result["score"]) < MIN_PASSWORD_SCORE:
        warning = str(result["feedback"].get("warning") or "it is too easy to guess")
        raise InvalidInputError(
            f"choose a password that is harder to guess ({warning.rstrip('.')}); "
            "a few unrelated words make a good one",
            field="new",
        )
    return password


def end_sessions(session: Session, user_id: int) -> None:
    """Sign the account out everywhere: every session cookie issued so far stops working."""
    user = session.get(StaffUser, user_id)
    if user is not None:
        user.session_generation += 1
        session.flush()


def set_email(session: Session, username: str, email: str | None, *, now: datetime, actor: str) -> StaffUser:
    """Give `username` the email address staff alerts are sent to, or none (audited, without the
    address). Raises StaffUserNotFoundError, InvalidInputError (not one plain address, or another
    account's)."""
    user = find_user(session, username)
    address = (email or "").strip() or None
    if address is not None:
        if not outbox.is_plain_address(address) or len(address) > 254:
            raise InvalidInputError(
                f"not one plain email address (like name@school.example): {address!r}", field="email"
            )
        taken = session.scalar(
            select(StaffUser.id).where(
                func.lower(StaffUser.email) == address.lower(), StaffUser.id != user.id
            )
        )
        if taken is not None:
            raise InvalidInputError(f"another staff account has the email {address!r}", field="email")
    user.email = address
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.USER_EMAIL_CHANGED,
        subject=f"user:{user.id}",
        details={"email": "set" if address else "removed"},
    )
    return user


def issue_api_token(session: Session, username: str, *, now: datetime, actor: str) -> str:
    """A new API token for `username`, replacing any earlier one; raises StaffUserNotFoundError."""
    user = find_user(session, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.api_token_hash = token_hash(token)
    user.api_token_created_at = now
    session.flush()
    audit.append(
        session, at=now, actor=actor, action=AuditAction.USER_TOKEN_ISSUED, subject=f"user:{user.id}"
    )
    return token


def user_for_token(session: Session, token: str) -> StaffUser | None:
    """The active account holding API token `token`, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    user = session.scalar(select(StaffUser).where(StaffUser.api_token_hash == token_hash(token)))
    return user if user is not None and user.active else None
