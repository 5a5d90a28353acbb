"""Alerts to staff, through a real SMTP server and read back with the `email` package: a request
without a link waiting to be checked, takedown tasks opened (to consent admins and admins, and to
whoever recorded the placement), what a purge could not delete, and the daily digest of what has
waited more than a day. Each goes only to active accounts of the roles that may act on it, with an
email; none names a learner in full or carries a photo; none is written twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import factories
import pytest
from mail_helpers import MAIL, QUEUE, SmtpServer
from sqlalchemy import select

from consent_db.models import AuditEvent, OutboxMessage, TakedownTask
from consent_db.session import unit_of_work
from gatekeeper.consent import records as consent_service
from gatekeeper.consent import withdrawals
from gatekeeper.publishing import placements, recheck
from gatekeeper.runtime import Runtime
from gatekeeper.staff import accounts, alerts
from helpers import run, seed_gated_photo
from workers import JobQueue
from workers.purge import run_purge

PUBLIC_URL = "https://photos.school.example"
# Who works here: each role once with an email, and accounts that must never be written to.
STAFF = {
    "dpo": ("consent_admin", "dpo@school.example"),
    "head": ("admin", "head@school.example"),
    "kim": ("uploader", "kim@school.example"),
    "rev": ("reviewer", "rev@school.example"),
    "audit": ("auditor", "audit@school.example"),
    "nomail": ("consent_admin", None),
    "gone": ("consent_admin", "gone@school.example"),
}


@pytest.fixture
def school(settings: Any, smtp_server: SmtpServer) -> Iterator[Any]:
    """A runtime sending through `smtp_server`, whose links start with PUBLIC_URL."""
    rt = Runtime(
        settings.with_(
            mail={**MAIL, "smtp_url": smtp_server.url}, queue=QUEUE, web={"public_url": PUBLIC_URL}
        ),
        sender=JobQueue,
    )
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


def _staff(rt: Any, now: datetime, names: tuple[str, ...] = tuple(STAFF)) -> None:
    with unit_of_work(rt.sessions) as session:
        for name in names:
            role, email = STAFF[name]
            user = accounts.create_user(session, name, role, now=now, actor="t").user
            if email:
                accounts.set_email(session, name, email, now=now, actor="t")
            if name == "gone":
                user.active = False


def _bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content()


def _to(message: EmailMessage) -> list[str]:
    return sorted(a.addr_spec for a in message["To"].addresses)


def _by_subject(server: SmtpServer, subject: str) -> list[EmailMessage]:
    return [m for m in server.mailbox.received if m["Subject"] == subject]


def _names_nobody(message: EmailMessage, *names: str) -> None:
    """No part of any name in the subject, no family name in the body, no attachment."""
    subject = str(message["Subject"]).casefold()
    text, html = _bodies(message)
    for name in names:
        assert not any(part.casefold() in subject for part in name.split())
        assert name.split()[-1].casefold() not in (text + html).casefold()
    assert not list(message.iter_attachments())
    assert message.get_content_maintype() == "multipart" and message.get_content_subtype() == "alternative"


def _kinds(rt: Any) -> list[tuple[str, str | None]]:
    with unit_of_work(rt.sessions) as session:
        return [(m.kind, m.about) for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


# --- a request without a link ------------------------------------------------------------------------

WAITING = "A request to stop using photos is waiting to be checked"


def _request(rt: Any, now: datetime, name: str = "Amy Pond") -> str:
    with unit_of_work(rt.sessions) as session:
        return withdrawals.request_withdrawal(
            session,
            name=name,
            date_of_birth=date(2014, 3, 27),
            relationship="parent",
            contact_email="parent@example.org",
            settings=rt.settings,
            now=now,
        ).reference


def test_consent_admins_are_told_once_that_a_request_waits_with_its_reference_and_page(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now)
    with unit_of_work(school.sessions) as session:
        factories.person(session, "L001", name="Amy Pond", born=date(2014, 3, 27), granted_by="parent")
    reference = _request(school, now)
    JobQueue.of(school).drain()  # the match job writes the alert; the mail jobs send both messages

    [alert] = _by_subject(smtp_server, WAITING)
    # Only the active consent admin with an email: admins cannot open the request's page.
    assert _to(alert) == ["dpo@school.example"]
    assert [to for _, to in smtp_server.mailbox.envelopes if "dpo@school.example" in to] == [
        ["dpo@school.example"]
    ]
    _names_nobody(alert, "Amy Pond")
    text, html = _bodies(alert)
    page = f"{PUBLIC_URL}/withdrawals/{reference}"
    assert reference in text and reference in html
    assert page in text and f'href="{page}"' in html
    assert "Waiting for:" in text and "Waiting for:" in html
    assert "2014" not in text + html and "parent@example.org" not in text + html

    # The job run again, or the alert asked for again: nothing more is written.
    with unit_of_work(school.sessions) as session:
        request = withdrawals.find_request(session, reference)
        withdrawals.match_request(session, request.id, settings=school.settings, now=now)
        assert alerts.request_waiting(session, request, settings=school.settings, now=now, actor="t") is None
    JobQueue.of(school).drain()
    assert len(_by_subject(smtp_server, WAITING)) == 1
    with unit_of_work(school.sessions) as session:
        request_id = withdrawals.find_request(session, reference).id
    assert _kinds(school) == [
        ("withdrawal_receipt", f"withdrawal_request:{request_id}"),
        ("staff_withdrawal_waiting", f"request:{request_id}"),
    ]


def test_erasing_a_request_s_details_leaves_the_staff_alert_alone(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now, ("dpo",))
    reference = _request(school, now, "Rory Williams")
    JobQueue.of(school).drain()
    with unit_of_work(school.sessions) as session:
        request = withdrawals.find_request(session, reference)
        withdrawals.erase_details(session, request, now=now, actor="dpo", why="retention")
    with unit_of_work(school.sessions) as session:
        alert = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "staff_withdrawal_waiting"))
        assert alert is not None and (alert.recipients, alert.state) == (["dpo@school.example"], "sent")


def test_without_a_staff_address_a_request_writes_only_its_receipt(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now, ("nomail", "gone", "head", "kim"))
    _request(school, now)
    JobQueue.of(school).drain()
    assert [m["Subject"] for m in smtp_server.mailbox.received] == [
        "We have received your request to stop using photos"
    ]
    assert [kind for kind, _ in _kinds(school)] == ["withdrawal_receipt"]


# --- takedown tasks --------------------------------------------------------------------------------

TAKEDOWNS = "Photos to take down from places outside the gatekeeper"
YOURS = "A photo you placed must be taken down"


def _people(rt: Any, now: datetime) -> dict[str, int]:
    with unit_of_work(rt.sessions) as session:
        ann = factories.person(session, "ann", name="Annabel Quill", biometric=True, now=now, actor="t")
        bob = factories.person(session, "bob", name="Bob Marsh", biometric=True, now=now, actor="t")
        return {"ann": ann.id, "bob": bob.id}


def _placed(rt: Any, now: datetime, photo_id: int, where: str, *, by: str) -> None:
    with unit_of_work(rt.sessions) as session:
        placements.record_external(
            session, photo_id, channel="website", where=where, settings=rt.settings, now=now, actor=by
        )


def test_opened_takedown_tasks_name_every_place_to_staff_and_to_whoever_recorded_the_placement(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now)
    ids = _people(school, now)
    first = seed_gated_photo(school, b"photo one", now=now, person_ids=(ids["ann"],))
    second = seed_gated_photo(school, b"photo two", now=now, person_ids=(ids["ann"], ids["bob"]))
    bobs = seed_gated_photo(school, b"photo three", now=now, person_ids=(ids["bob"],))
    _placed(school, now, first, "https://instagram.example/p/first", by="kim")
    _placed(school, now, second, "Prospectus 2026, page 4", by="dpo")
    _placed(school, now, bobs, "https://instagram.example/p/bob", by="kim")
    assert _kinds(school) == []  # every placement passes: nobody is told anything

    later = now + timedelta(hours=1)
    with unit_of_work(school.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=school.settings, now=later, actor="t")
    with unit_of_work(school.sessions) as session:
        report = recheck.recheck_publications(
            session, settings=school.settings, now=later, actor="t", person_id=ids["ann"]
        )
        assert len(report.tasks) == 2
    JobQueue.of(school).drain()

    # One message for the run, to consent admins and admins, naming both places and their channel.
    [staff] = _by_subject(smtp_server, TAKEDOWNS)
    assert _to(staff) == ["dpo@school.example", "head@school.example"]
    _names_nobody(staff, "Annabel Quill", "Bob Marsh")
    text, html = _bodies(staff)
    for body in (text, html):
        assert "https://instagram.example/p/first" in body and "Prospectus 2026, page 4" in body
        assert "channel: website" in body and "instagram.example/p/bob" not in body
    assert f"{PUBLIC_URL}/takedowns" in text and f'href="{PUBLIC_URL}/takedowns"' in html

    # Each recorder is told of their own placement only.
    told = {_to(m)[0]: _bodies(m)[0] for m in _by_subject(smtp_server, YOURS)}
    assert sorted(told) == ["dpo@school.example", "kim@school.example"]
    assert "https://instagram.example/p/first" in told["kim@school.example"]
    assert "Prospectus" not in told["kim@school.example"]
    assert "Prospectus 2026, page 4" in told["dpo@school.example"]
    for message in _by_subject(smtp_server, YOURS):
        _names_nobody(message, "Annabel Quill", "Bob Marsh")

    # A second run opens nothing new, and writes nothing.
    count = len(smtp_server.mailbox.received)
    with unit_of_work(school.sessions) as session:
        again = recheck.recheck_publications(
            session, settings=school.settings, now=later, actor="t", person_id=ids["ann"]
        )
        assert again.tasks == []
    JobQueue.of(school).drain()
    assert len(smtp_server.mailbox.received) == count


def test_a_placement_recorded_for_a_photo_that_no_longer_passes_tells_staff_at_once(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now, ("head", "kim", "gone"))
    ids = _people(school, now)
    photo_id = seed_gated_photo(school, b"photo one", now=now, person_ids=(ids["bob"],))
    with unit_of_work(school.sessions) as session:
        consent_service.withdraw_consent(session, "bob", [], settings=school.settings, now=now, actor="t")
    _placed(school, now + timedelta(minutes=5), photo_id, "https://news.example/story", by="kim")
    JobQueue.of(school).drain()
    [staff] = _by_subject(smtp_server, TAKEDOWNS)
    [yours] = _by_subject(smtp_server, YOURS)
    assert (_to(staff), _to(yours)) == (["head@school.example"], ["kim@school.example"])
    assert (
        "https://news.example/story" in _bodies(staff)[0]
        and "https://news.example/story" in _bodies(yours)[1]
    )


def test_a_recorder_without_an_email_or_no_longer_active_is_not_written_to(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now, ("nomail", "gone"))
    ids = _people(school, now)
    for by, data in (("nomail", b"one"), ("gone", b"two"), ("someone-unknown", b"three")):
        photo_id = seed_gated_photo(school, data, now=now, person_ids=(ids["bob"],))
        _placed(school, now, photo_id, f"https://example.org/{by}", by=by)
    later = now + timedelta(hours=1)
    with unit_of_work(school.sessions) as session:
        consent_service.withdraw_consent(session, "bob", [], settings=school.settings, now=later, actor="t")
    with unit_of_work(school.sessions) as session:
        report = recheck.recheck_publications(session, settings=school.settings, now=later, actor="t")
        assert len(report.tasks) == 3
    JobQueue.of(school).drain()
    assert smtp_server.mailbox.received == [] and _kinds(school) == []


# --- a purge that could not delete everything --------------------------------------------------------

PURGE = "The purge could not delete everything that was due"


def test_a_purge_that_leaves_photos_behind_names_each_and_why(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now)
    ids = _people(school, now)
    photo_id = seed_gated_photo(school, b"photo one", now=now, person_ids=(ids["ann"],))
    _placed(school, now, photo_id, "https://instagram.example/p/ann", by="kim")
    with unit_of_work(school.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=school.settings, now=now, actor="t")
    # The purge comes first: the placement is still up, so the photo cannot go, and its task opens.
    report = run_purge(school, now=now + timedelta(days=90), actor="purge")
    assert [(f["kind"], f["id"]) for f in report.failures] == [("photo", photo_id)]
    JobQueue.of(school).drain()

    [purge] = _by_subject(smtp_server, PURGE)
    assert _to(purge) == ["dpo@school.example", "head@school.example"]
    _names_nobody(purge, "Annabel Quill")
    text, html = _bodies(purge)
    for body in (text, html):
        assert f"photo {photo_id}: external placements still up: https://instagram.example/p/ann" in body
        assert f"report {report.id}" in body
    # The task the purge opened is told like any other, once (the takedown job opens nothing more).
    assert [_to(m) for m in _by_subject(smtp_server, TAKEDOWNS)] == [
        ["dpo@school.example", "head@school.example"]
    ]
    assert [_to(m) for m in _by_subject(smtp_server, YOURS)] == [["kim@school.example"]]


def test_a_purge_that_deleted_everything_tells_nobody(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now)
    ids = _people(school, now)
    seed_gated_photo(school, b"photo one", now=now, person_ids=(ids["ann"],), status="blocked")
    report = run_purge(school, now=now + timedelta(days=400), actor="purge")
    assert report.failures == [] and report.deleted.get("photos") == 1
    JobQueue.of(school).drain()
    assert smtp_server.mailbox.received == []


# --- the daily digest ----------------------------------------------------------------------------------

DIGEST = "Still waiting after a day: requests and takedowns"


def _digest(rt: Any, at: datetime) -> list[OutboxMessage]:
    with unit_of_work(rt.sessions) as session:
        return alerts.send_digest(session, settings=rt.settings, now=at, actor="scheduler")


def _open_task(rt: Any, now: datetime, where: str) -> None:
    with unit_of_work(rt.sessions) as session:
        person = factories.person(
            session, "p-" + where.rsplit("/", 1)[-1], name="Cara Dunn", now=now, actor="t"
        )
    photo_id = seed_gated_photo(rt, where.encode(), now=now, person_ids=(person.id,))
    with unit_of_work(rt.sessions) as session:
        consent_service.withdraw_consent(
            session, person.external_id, [], settings=rt.settings, now=now, actor="t"
        )
    _placed(rt, now, photo_id, where, by="nobody")  # fails at once: a task opens


def test_the_digest_lists_what_waited_over_a_day_once_a_day_each_part_to_who_may_act_on_it(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now)
    old_request = _request(school, now)
    _open_task(school, now, "https://instagram.example/p/old")
    fresh = now + timedelta(hours=20)
    new_request = _request(school, fresh)
    _open_task(school, fresh, "https://instagram.example/p/new")
    JobQueue.of(school).drain()
    smtp_server.mailbox.received.clear()

    day = now + timedelta(hours=30)  # 19:00 on 16 June in London (18:00 UTC)
    written = _digest(school, day)
    assert len(written) == 2
    JobQueue.of(school).drain()
    messages = {tuple(_to(m)): m for m in _by_subject(smtp_server, DIGEST)}
    assert sorted(messages) == [("dpo@school.example",), ("head@school.example",)]

    # Consent admins: both parts; only what has waited more than a day.
    text, html = _bodies(messages[("dpo@school.example",)])
    for body in (text, html):
        assert old_request in body and new_request not in body
        assert "https://instagram.example/p/old" in body and "/p/new" not in body
        assert "30 h" in body and "channel: website" in body
    assert f"{PUBLIC_URL}/withdrawals/{old_request}" in text
    assert f'href="{PUBLIC_URL}/withdrawals/{old_request}"' in html
    _names_nobody(messages[("dpo@school.example",)], "Amy Pond", "Cara Dunn")
    # Admins: the takedowns only (they cannot open a request).
    text, html = _bodies(messages[("head@school.example",)])
    assert "https://instagram.example/p/old" in text and "https://instagram.example/p/old" in html
    assert "WD-" not in text + html

    # Later the same day (the organisation's day): nothing more.
    assert _digest(school, day + timedelta(hours=4, minutes=59)) == []
    # The next day: again, and now with what opened since.
    next_day = _digest(school, day + timedelta(hours=25))
    assert len(next_day) == 2 and new_request in next_day[0].body_text
    with unit_of_work(school.sessions) as session:
        abouts = session.scalars(
            select(OutboxMessage.about).where(OutboxMessage.kind == "staff_digest")
        ).all()
    assert sorted(set(abouts)) == ["digest:20260616", "digest:20260617"]


def test_no_digest_when_nothing_has_waited_a_day(school: Any, smtp_server: SmtpServer, now: datetime) -> None:
    _staff(school, now)
    assert _digest(school, now) == []  # nothing at all
    reference = _request(school, now)
    _open_task(school, now, "https://instagram.example/p/done")
    with unit_of_work(school.sessions) as session:
        withdrawals.match_request(
            session, withdrawals.find_request(session, reference).id, settings=school.settings, now=now
        )
    assert _digest(school, now + timedelta(hours=23)) == []  # not yet a day
    with unit_of_work(school.sessions) as session:
        withdrawals.reject_request(session, reference, settings=school.settings, now=now, actor="dpo")
        [task] = session.scalars(select(TakedownTask)).all()
    assert run(school, "takedowns", "done", str(task.id), "--note", "deleted the post").exit_code == 0
    assert _digest(school, now + timedelta(days=3)) == []  # all dealt with
    with unit_of_work(school.sessions) as session:
        assert session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "staff_digest")).all() == []


def test_the_digest_job_runs_on_its_schedule_and_writes_nothing_without_a_staff_address(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _staff(school, now, ("nomail", "gone", "kim"))
    _request(school, datetime.now(UTC) - timedelta(days=2))
    queue = JobQueue.of(school)
    queue.drain()
    smtp_server.mailbox.received.clear()
    assert _digest(school, datetime.now(UTC)) == []
    assert [kind for kind, _ in _kinds(school) if kind.startswith("staff_")] == []
    _staff(school, now, ("dpo",))
    queue.periodic["staff_digest"].call_local()  # this scheduler claims the day's tick and runs it
    queue.drain()
    [digest] = _by_subject(smtp_server, DIGEST)
    assert _to(digest) == ["dpo@school.example"]


# --- staff addresses -----------------------------------------------------------------------------------


def test_an_account_s_email_is_set_checked_listed_and_removed_from_the_command_line(
    school: Any, now: datetime
) -> None:
    _staff(school, now, ("dpo", "head"))
    assert run(school, "users", "email", "head", "Head@School.example ").exit_code == 0
    listed = run(school, "users", "list").stdout
    assert "head@school.example" in listed.casefold() and "dpo@school.example" in listed
    for bad in (
        "Head Teacher <head@school.example>",
        "head@school.example, dpo@school.example",
        "é@school.example",
    ):
        result = run(school, "users", "email", "head", bad)
        assert result.exit_code != 0 and "plain email address" in result.output
    taken = run(school, "users", "email", "head", "DPO@school.example")
    assert taken.exit_code != 0 and "another staff account" in taken.output
    assert run(school, "users", "email", "head").exit_code != 0  # neither an address nor --remove
    assert run(school, "users", "email", "head", "--remove").exit_code == 0
    with unit_of_work(school.sessions) as session:
        assert alerts.staff_addresses(session, alerts.PURGE_ROLES) == ["dpo@school.example"]
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.email_changed")).all()
        # Audited without the address itself.
        assert [e.details["email"] for e in events][-2:] == ["set", "removed"]
        assert all("@" not in str(e.details) for e in events)
