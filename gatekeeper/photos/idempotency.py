"""Re-sent requests change nothing twice: stored first answers for `Idempotency-Key`, and gate jobs
shared by every upload of the same photo.

A client that lost an answer (a crash, a timeout) sends the request again. With an
`Idempotency-Key` header the API claims the key in the request's own transaction: the first
request records its answer there, a repeat gets that answer back, and a repeat that arrives while
the first is still running waits for its commit (the key's unique row is the lock). Without a key,
an upload of a photo already on record for the channel, with the same caption, whose gate job is
waiting, running or done, is given that job instead of a new one: one decision per photo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent_db.models import IdempotencyKey, Job, Photo, UploadItem
from gatekeeper.errors import InvalidInputError
from gatekeeper.photos.gate import photo_row
from gatekeeper.queueing import JobKind

# RFC 9110 token characters and a few more, as clients send UUIDs, ULIDs or base64 strings.
_KEY_RE = re.compile(r"^[A-Za-z0-9._~+/=:-]{1,255}$")
# A gate job in one of these states decides (or has decided) the photo: nothing new is queued.
SHARED_JOB_STATES = ("queued", "running", "done")
PENDING = 0  # the status of a claim whose answer is not recorded yet


@dataclass(frozen=True)
class Claim:
    """What a request's key found: `new` (run the request, then `record`), `replay` (the first
    answer, `status` and `body`) or `mismatch` (the key was used for a different request)."""

    outcome: str
    row: IdempotencyKey

    @property
    def status(self) -> int:
        """The recorded answer's HTTP status."""
        return self.row.status

    @property
    def body(self) -> str:
        """The recorded answer's body."""
        return self.row.body


def check_key(key: str) -> str:
    """The key as sent, if it is 1-255 printable characters without spaces; raises InvalidInputError."""
    if not _KEY_RE.match(key):
        raise InvalidInputError(
            "the Idempotency-Key header must be 1 to 255 characters: letters, digits and . _ ~ + / = : -",
            field="Idempotency-Key",
        )
    return key


def _find(session: Session, credential: str, key: str) -> IdempotencyKey | None:
    query = select(IdempotencyKey).where(IdempotencyKey.credential == credential, IdempotencyKey.key == key)
    return session.scalar(query)


def claim(
    session: Session, credential: str, key: str, fingerprint: str, *, now: datetime, keep: timedelta
) -> Claim:
    """Claim `key` for `credential` in this unit of work, or find the answer it already has.

    Answers older than `keep` are forgotten first. A new claim holds the key's row until the unit
    of work ends: a concurrent request with the same key waits for it, then finds its answer.
    Raises InvalidInputError (a malformed key).
    """
    check_key(key)
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - keep))
    found = _find(session, credential, key)
    if found is None:
        row = IdempotencyKey(
            credential=credential, key=key, fingerprint=fingerprint, status=PENDING, body="", created_at=now
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Another request claimed the key and committed while this one waited on its row.
            found = _find(session, credential, key)
            if found is None:
                raise
        else:
            return Claim("new", row)
    if found.fingerprint != fingerprint:
        return Claim("mismatch", found)
    return Claim("replay", found)


def record(session: Session, claimed: Claim, status: int, body: str) -> None:
    """Keep the answer of a new claim when it is a success (2xx); give the key up for any other,
    so a repeat runs afresh (flushes)."""
    if not 200 <= status < 300:
        session.delete(claimed.row)
    else:
        claimed.row.status, claimed.row.body = status, body
    session.flush()


def photo_for_upload(session: Session, sha256: str, channel: str, *, now: datetime, actor: str) -> Photo:
    """The photo row of an upload (made when new), also when the same photo is being uploaded at
    the same moment by another request: its row, once committed, is this one's too."""
    try:
        with session.begin_nested():
            return photo_row(session, sha256, channel, now=now, actor=actor)
    except IntegrityError:
        found = session.scalar(select(Photo).where(Photo.sha256 == sha256, Photo.channel == channel))
        if found is None:
            raise
        return found


def lock_photo(session: Session, photo: Photo) -> None:
    """Hold `photo`'s row until the unit of work ends, so concurrent uploads of it queue one job.

    SQLite transactions hold the write lock from their start already; PostgreSQL needs the row lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Photo.id).where(Photo.id == photo.id).with_for_update())


def shared_gate_job(session: Session, photo_id: int, channel: str, caption: str | None) -> int | None:
    """The gate job of an earlier upload of this photo, with the same caption, that is waiting,
    running or done (one decision per photo); None when a new one is needed (none yet, or the
    last one failed)."""
    job_ids = session.scalars(
        select(UploadItem.job_id)
        .where(UploadItem.photo_id == photo_id, UploadItem.job_id.is_not(None))
        .order_by(UploadItem.id.desc())
    )
    seen: set[int] = set()
    for job_id in job_ids:
        if job_id is None or job_id in seen:
            continue
        seen.add(job_id)
        job = session.get(Job, job_id)
        if job is None or job.task != JobKind.GATE or job.state == "failed":
            continue
        # Gate jobs take (sha256, channel, caption): another caption is a different request.
        args = list(job.args)
        if args[1:3] == [channel, caption] and job.state in SHARED_JOB_STATES:
            return job.id
    return None
