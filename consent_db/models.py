"""SQLAlchemy 2.0 models: people, templates, consent, photos, decisions, faces, publications, audit.

Consent records are immutable: a change is a new row (a grant or a withdrawal), so history is never
lost. Faces store boxes and distances, never encodings: only enrolled templates hold biometric data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 (SQLAlchemy API)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    # The application's PersonStatus (active, left, erased), always given when a person is added.
    status: Mapped[str] = mapped_column(String(16))
    safeguarding: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The last day at the organisation (UTC day, like consent dates): consent ends with it unless a
    # grant says otherwise, and it starts retention clocks.
    left_on: Mapped[date | None] = mapped_column(Date)

    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )
    consents: Mapped[list[ConsentRecord]] = relationship(
        back_populates="person", order_by="ConsentRecord.id", cascade="all, delete-orphan"
    )


class FaceTemplate(Base):
    __tablename__ = "face_templates"
    __table_args__ = (UniqueConstraint("person_id", "source_sha256", "model"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    encoding: Mapped[bytes] = mapped_column(LargeBinary)
    model: Mapped[str] = mapped_column(String(80))
    # The hash of the enrolment photo, never its bytes.
    source_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]

    person: Mapped[Person] = relationship(back_populates="templates")


class ConsentRecord(Base):
    """One grant or withdrawal for one person and one channel (kind publication) or biometrics."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="publication")
    channel: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    granted_by: Mapped[str | None] = mapped_column(String(16))
    granted_by_name: Mapped[str | None] = mapped_column(String(200))
    evidence_ref: Mapped[str | None] = mapped_column(String(200))
    wording_version: Mapped[str | None] = mapped_column(String(80))
    valid_until: Mapped[datetime | None]
    named: Mapped[str] = mapped_column(String(16), default="no")
    how: Mapped[str] = mapped_column(String(40))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(120))
    # A grant that explicitly continues after the person leaves.
    survives_leaving: Mapped[bool] = mapped_column(Boolean, default=False)

    person: Mapped[Person] = relationship(back_populates="consents")


class Photo(Base):
    """An image submitted for one channel; its original is kept privately under `original_key`."""

    __tablename__ = "photos"
    __table_args__ = (UniqueConstraint("sha256", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(80))
    original_key: Mapped[str | None] = mapped_column(String(200))
    media_format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    # The caption as it may be published: already scrubbed of names (the original is never kept).
    caption: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime]
    retention_until: Mapped[datetime | None]

    decisions: Mapped[list[Decision]] = relationship(back_populates="photo", order_by="Decision.id")


class Decision(Base):
    """One evaluation of a photo: verdict, reasons, and the settings that produced it."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    decided_at: Mapped[datetime]
    decided_by: Mapped[str] = mapped_column(String(120))
    model: Mapped[str | None] = mapped_column(String(80))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the face analysis guarantees: it searched the photo scaled by analysis_scale (1.0: full
    # size) for faces of min_detect_px and more, at any angle.
    analysis_scale: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    min_detect_px: Mapped[int] = mapped_column(Integer, default=32, server_default="32")
    # A photo that could not be read: the refusal's reason code and plain words (what to do).
    error_code: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)

    photo: Mapped[Photo] = relationship(back_populates="decisions")
    faces: Mapped[list[Face]] = relationship(
        back_populates="decision", order_by="Face.position", cascade="all, delete-orphan"
    )


class Face(Base):
    """A detection in a photo: box, candidates and outcome. No encoding is ever stored here."""

    __tablename__ = "faces"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    left: Mapped[int] = mapped_column(Integer)
    top: Mapped[int] = mapped_column(Integer)
    right: Mapped[int] = mapped_column(Integer)
    bottom: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    covered: Mapped[bool] = mapped_column(Boolean, default=False)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    distance: Mapped[float | None] = mapped_column(Float)
    second_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    second_distance: Mapped[float | None] = mapped_column(Float)
    reviewer_outcome: Mapped[str | None] = mapped_column(String(16))
    reviewed_by: Mapped[str | None] = mapped_column(String(120))
    reviewed_at: Mapped[datetime | None]
    # A reviewer's identification by eye (person, stranger, not_a_face) and whom they named: it
    # decides who this face is, at the decision and at every re-check before publishing.
    review_resolution: Mapped[str | None] = mapped_column(String(16))
    reviewed_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))

    decision: Mapped[Decision] = relationship(back_populates="faces")


class Publication(Base):
    """Where a clean copy went: a key in a store we control, or an external placement.

    A copy in our store has `store` (the URL that opens it) and `key`; an external placement (a page,
    a social post) has neither, only `target`, and is taken down by staff through a takedown task.
    """

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime]
    taken_down_at: Mapped[datetime | None]
    store: Mapped[str | None] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(String(200))
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    published_by: Mapped[str | None] = mapped_column(String(120))
    # The longest edge the copy was made at (0: full size; None: published before this was kept).
    long_edge: Mapped[int | None] = mapped_column(Integer)


class TakedownTask(Base):
    """An external placement staff must remove by hand: who, what, where, since when."""

    __tablename__ = "takedown_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int | None] = mapped_column(
        ForeignKey("publications.id", ondelete="SET NULL"), index=True
    )
    photo_id: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    since: Mapped[datetime]
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class PurgeReport(Base):
    """One purge run: what was deleted (kind -> count) and what could not be, and why."""

    __tablename__ = "purge_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(120))
    deleted: Mapped[dict[str, Any]] = mapped_column(default=dict)
    failures: Mapped[list[Any]] = mapped_column(default=list)
    # Photos past their time kept by a hold (another lawful reason): id and reason.
    held: Mapped[list[Any]] = mapped_column(default=list)


class PhotoHold(Base):
    """Another lawful reason to keep a photo: it is kept from erasure and purge while not released."""

    __tablename__ = "photo_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    held_at: Mapped[datetime]
    held_by: Mapped[str] = mapped_column(String(120))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(120))


class SafeguardingNote(Base):
    """Why a safeguarding flag was set or cleared: read only by consent admins and admins.

    The audit log records who changed the flag and when, never the reason (auditors read the log).
    """

    __tablename__ = "safeguarding_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    flag: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(120))


class Job(Base):
    """A background job as operators see it: queued, running, done or failed (payload: ids only)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(60))
    args: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AuditEvent(Base):
    """An append-only, hash-chained record of something the gatekeeper did."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class StaffUser(Base):
    """A member of staff who signs in to the web app or calls the API; one role each."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # A one-time password (first start, `users add`) must be replaced at the first sign-in.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    # The sha256 of the API token: the token itself is shown once and never stored.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    api_token_created_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    # Part of every session's identity: signing out advances it, so a cookie copied earlier is refused.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PersonContact(Base):
    """Someone a person's consent is asked of by email: the person themselves (`self`), or one of
    their parents or guardians (`parent`, `guardian`) with the relationship as the MIS gives it."""

    __tablename__ = "person_contacts"
    __table_args__ = (UniqueConstraint("person_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    relationship_to_person: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))


class ConsentLink(Base):
    """A personal link to the online consent form, sent to one contact about one person.

    Only the sha256 of its 256-bit token is stored. `role` is who may answer with it (`self`, or a
    `parent` or `guardian`); `channels` the channels it asks about. `contact_id` is cleared when the
    contact is removed; the link then no longer opens.
    """

    __tablename__ = "consent_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("person_contacts.id", ondelete="SET NULL"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[Any]] = mapped_column(default=list)
    biometric: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why it was sent: `request` (staff asked) or `reminder` (a deadline is near).
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    answers: Mapped[int] = mapped_column(Integer, default=0)


class ConsentReminder(Base):
    """That the reminder before one deadline of one person was sent: each is sent once.

    `deadline` is `expiry:<channel>` (a consent's valid_until) or `reconsent` (coming of age);
    `days` the reminder's distance before it (one of the configured reminder days).
    """

    __tablename__ = "consent_reminders"
    __table_args__ = (UniqueConstraint("person_id", "deadline", "due_on", "days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    deadline: Mapped[str] = mapped_column(String(100))
    due_on: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime]


class WithdrawalLink(Base):
    """A person's withdrawal link: only the sha256 of its unguessable token is stored."""

    __tablename__ = "withdrawal_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))


class WithdrawalRequest(Base):
    """One submission of the public withdrawal form, with the receipt reference it was given.

    A request made with a link acts at once (status `done`). A request without one is recorded
    as received; a background job then suspends publishing for every matching person (withdrawal
    records with how `public_form_unverified`, listed in `record_ids`; `matched_at` says when), and
    the request waits for a consent admin to confirm or reject it.
    """

    __tablename__ = "withdrawal_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    via: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    channels: Mapped[list[Any]] = mapped_column(default=list)
    claimed_name: Mapped[str | None] = mapped_column(String(200))
    claimed_date_of_birth: Mapped[date | None] = mapped_column(Date)
    relationship_to_person: Mapped[str | None] = mapped_column(String(40))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    person_ids: Mapped[list[Any]] = mapped_column(default=list)
    record_ids: Mapped[list[Any]] = mapped_column(default=list)
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    matched_at: Mapped[datetime | None]


class DpiaRecord(Base):
    """A data protection impact assessment approved for face matching; the latest one is in force."""

    __tablename__ = "dpia_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str] = mapped_column(String(200))
    approved_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(120))


class UploadBatch(Base):
    """Photos uploaded together through the web app or the API for one channel.

    Each item keeps the name its file was uploaded under, shown only to the member of staff who
    uploaded it; published copies never carry it (they get opaque names).
    """

    __tablename__ = "upload_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    # How many files were refused at upload (not images, too large, unsafe zip members).
    refused: Mapped[int] = mapped_column(Integer, default=0)

    items: Mapped[list[UploadItem]] = relationship(
        back_populates="batch", cascade="all, delete-orphan", order_by="UploadItem.position"
    )


class UploadItem(Base):
    """One photo of a batch: the photo row it was kept as and the gate job deciding it."""

    __tablename__ = "upload_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("upload_batches.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # SET NULL: a purged photo leaves its place in the batch, shown as deleted.
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"), index=True)
    job_id: Mapped[int | None] = mapped_column(Integer)
    # The uploaded file's name (a zip member as `zip: member`); cleared when the photo is purged.
    file_name: Mapped[str | None] = mapped_column(String(255))

    batch: Mapped[UploadBatch] = relationship(back_populates="items")


class IdempotencyKey(Base):
    """The first answer to an API request sent with an `Idempotency-Key`, replayed to its repeats.

    One row per credential (an API token, by its hash) and key; `fingerprint` is the sha256 of what
    the request asked for, so a key reused for a different request is told apart.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("credential", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    credential: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class OutboxMessage(Base):
    """An email, written in the unit of work of the change that causes it and sent by a job after
    the commit.

    `state`: queued (waiting to be sent), sending (handed to the SMTP server now, committed before
    the conversation starts), sent, failed (refused for good: `answer` says why), uncertain (a
    sending that never recorded its end: the server may have accepted it). `message_id` is made
    when the row is written and sent as the message's Message-ID, so a copy can be found in the
    mailbox. `about` names what caused it (`person:12`, `withdrawal_request:3`), never a name.
    """

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(60))
    about: Mapped[str | None] = mapped_column(String(120), index=True)
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The server's answer to the last attempt (or why it could not be reached).
    answer: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class ScanSource(Base):
    """Somewhere the organisation's photos are already public: a website, a folder (a website export)
    or a social media archive, scanned for one channel. `watch`: scanned again on the schedule."""

    __tablename__ = "scan_sources"
    __table_args__ = (UniqueConstraint("kind", "location", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # website, folder, facebook, instagram or x
    kind: Mapped[str] = mapped_column(String(16))
    # The website's URL, or the folder's or archive's absolute path.
    location: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(80))
    watch: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))


class ScanRun(Base):
    """One scan of a source: its progress while it runs, then its totals and what could not be read.

    `state`: queued, running, done or failed. `complete`: every page and file was reached (no cap,
    no failed page), so placements no longer found were ended.
    """

    __tablename__ = "scan_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("scan_sources.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(120))
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    max_pages: Mapped[int | None] = mapped_column(Integer)
    max_images: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What could not be fetched or read: [{"where": ..., "why": ..., "code": ...}]
    problems: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)

    source: Mapped[ScanSource] = relationship()
    findings: Mapped[list[ScanFinding]] = relationship(
        back_populates="run", order_by="ScanFinding.id", cascade="all, delete-orphan"
    )


class ScanFinding(Base):
    """One picture a scan found (every rendition of it), decided once on its largest copy."""

    __tablename__ = "scan_findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("scan_runs.id", ondelete="CASCADE"), index=True)
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"), index=True)
    decision_id: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    faces: Mapped[list[Any]] = mapped_column(default=list)
    # Every place it was found: [{"url": ..., "page": ..., "posted_at": ..., "width": ..., "height": ...}]
    places: Mapped[list[Any]] = mapped_column(default=list)
    # The takedown tasks this scan opened for it.
    tasks: Mapped[list[Any]] = mapped_column(default=list)
    # new (first found), same (found before, same picture) or changed (a different picture now)
    change: Mapped[str] = mapped_column(String(16))

    run: Mapped[ScanRun] = relationship(back_populates="findings")


class ScanPlacement(Base):
    """An outside placement a scan found: which source it belongs to and when it was last seen."""

    __tablename__ = "scan_placements"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("scan_sources.id", ondelete="CASCADE"), index=True)
    publication_id: Mapped[int] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), unique=True
    )
    last_run_id: Mapped[int | None] = mapped_column(Integer)
    last_seen_at: Mapped[datetime]
