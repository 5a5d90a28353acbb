"""The online consent form end to end: a request sent through a real SMTP server, read back with the
`email` package, its link followed in the test client, and what the answer records and allows.

The learner is a 12-year-old whose parent is asked; the gate then decides a real photo of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import factories
import pytest
from engines import compose_app, engine_for
from flask import Flask
from flask.testing import FlaskClient
from mail_helpers import MAIL, QUEUE, SmtpServer
from web_helpers import csrf

from consent_db.models import ConsentLink, ConsentRecord, OutboxMessage, Person, PersonContact
from consent_db.session import unit_of_work
from gatekeeper.consent import forms, summary, withdrawals
from gatekeeper.errors import InvalidInputError
from gatekeeper.people import contacts
from gatekeeper.staff import accounts
from helpers import gate_json
from workers import JobQueue

PUBLIC = "http://photos.school.example"
LINK = re.compile(re.escape(PUBLIC) + r"(/consent/[A-Za-z0-9_\-]+)")
WITHDRAW = re.compile(re.escape(PUBLIC) + r"(/withdraw/[A-Za-z0-9_\-]+)")


def _born(now: datetime, years: int, days_after: int = 60) -> date:
    """A birthday `years` years before `now` (plus `days_after` days: still that age)."""
    return now.date().replace(year=now.year - years) - timedelta(days=days_after)


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Any, smtp_server: SmtpServer) -> Iterator[Flask]:
    app = compose_app(
        settings.with_(mail={**MAIL, "smtp_url": smtp_server.url}, queue=QUEUE, web={"public_url": PUBLIC}),
        engine_for(request, settings),
    )
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


def _rt(app: Flask) -> Any:
    return app.extensions["gatekeeper"]


def _learner(
    rt: Any, external_id: str, name: str, born: date, *emails: str, now: datetime, **more: Any
) -> None:
    """A learner with no publication consent yet, and their contacts (`self:` for their own)."""
    with unit_of_work(rt.sessions) as session:
        person = factories.person(
            session,
            external_id,
            name=name,
            born=born,
            channels=(),
            settings=rt.settings,
            engine=rt.faces,
            **more,
        )
        for entry in emails:
            contacts.add_contact(session, person, contacts.parse_contact(entry), now=now, actor="dpo")


def _request(
    rt: Any, *ids: str, now: datetime, channels: tuple[str, ...] = ("website", "social_media")
) -> Any:
    with unit_of_work(rt.sessions) as session:
        return forms.request_consent(
            session, external_ids=ids, channels=channels, settings=rt.settings, now=now, actor="dpo"
        )


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def _html(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def _to(message: EmailMessage) -> list[str]:
    return [a.addr_spec for a in message["To"].addresses]


def _sent(rt: Any, smtp: SmtpServer) -> list[EmailMessage]:
    JobQueue.of(rt).drain()
    return list(smtp.mailbox.received)


def _form_path(message: EmailMessage) -> str:
    match = LINK.search(_text(message))
    assert match is not None, _text(message)
    assert match.group(0) in _html(message)
    return match.group(1)


def _answer(client: FlaskClient, path: str, **fields: str) -> Any:
    page = client.get(path).get_data(as_text=True)
    version = re.search(r'<input[^>]*name="wording_version"[^>]*value="([^"]+)"', page)
    assert version is not None, page
    data = {"csrf_token": csrf(client, path), "wording_version": version.group(1), **fields}
    return client.post(path, data=data)


def _records(rt: Any, external_id: str) -> list[ConsentRecord]:
    with unit_of_work(rt.sessions) as session:
        person = session.query(Person).filter_by(external_id=external_id).one()
        rows = list(session.query(ConsentRecord).filter_by(person_id=person.id).order_by(ConsentRecord.id))
        session.expunge_all()
        return rows


def _reasons(rt: Any, external_id: str) -> dict[str, tuple[str, ...]]:
    """Why the person may not appear on each channel, now (after the answers the pages recorded)."""
    with unit_of_work(rt.sessions) as session:
        shown = summary.summarise_person(session, external_id, settings=rt.settings, now=datetime.now(UTC))
        return {c.channel: c.reasons for c in shown.channels}


def test_a_parent_of_a_12_year_old_grants_the_website_only_and_the_gate_follows(
    app: Flask, smtp_server: SmtpServer, corpus: Any, tmp_path: Path, now: datetime
) -> None:
    rt = _rt(app)
    # The learner has their own address too; at 12 their parent is asked, never them.
    _learner(
        rt,
        "obama",
        "Amy Pond",
        _born(now, 12),
        "mother:mum@example.org",
        "self:amy@example.org",
        now=now,
        photos=[corpus.faces_dir / "obama/obama.jpg"],
        biometric=True,
        biometric_granted_by="parent",
    )
    report = _request(rt, "obama", now=now)
    assert report.sent == [("obama", 1)] and report.skipped == []
    [message] = _sent(rt, smtp_server)
    assert _to(message) == ["mum@example.org"]
    assert message["Subject"] == "Photos at school: please give or refuse consent"
    assert "Amy" in _text(message) and "Amy" in _html(message)
    assert "Pond" not in _text(message) + _html(message) + str(message["Subject"])
    assert not list(message.iter_attachments())
    # Every message carries the learner's own withdrawal link, and it works.
    withdraw = WITHDRAW.search(_text(message))
    assert withdraw is not None
    client = app.test_client()
    assert "Photos of Amy" in client.get(withdraw.group(1)).get_data(as_text=True)

    path = _form_path(message)
    page = client.get(path).get_data(as_text=True)
    assert "Photos of Amy" in page and "Pond" not in page
    assert "face recognition" in page  # POFA: a parent's written consent for a child's biometrics
    response = _answer(
        client,
        path,
        channel_0="yes",
        named_0="first_name",
        channel_1="no",
        named_1="no",
        biometric="yes",
        answered_by="Jo Smith",
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("?saved=1")
    assert "Your answer is recorded" in client.get(response.headers["Location"]).get_data(as_text=True)

    records = [r for r in _records(rt, "obama") if r.how == forms.ONLINE_FORM]
    by_channel = {r.channel: r for r in records}
    assert by_channel["website"].action == "grant" and by_channel["social_media"].action == "withdraw"
    assert by_channel["biometric"].action == "grant"
    for record in records:
        assert record.granted_by == "parent" and record.granted_by_name == "Jo Smith"
        assert record.wording_version == forms.DEFAULT_WORDING
        assert record.evidence_ref is not None and record.evidence_ref.startswith("online form, link ")
    assert by_channel["website"].named == "first_name"
    assert _reasons(rt, "obama")["website"] == ()
    assert "consent_withdrawn" in _reasons(rt, "obama")["social_media"]

    # The gate decides a real photo of the learner with that answer.
    photo = corpus.faces_dir / "obama/obama-480p.jpg"
    [website] = gate_json(rt, "website", photo)
    [social] = gate_json(rt, "social_media", photo)
    assert website["verdict"] == "publishable", website
    assert social["verdict"] == "blocked" and "consent_withdrawn" in social["reasons"], social

    # The parent's receipt of the answer, with the places in a parent's words.
    receipt = _sent(rt, smtp_server)[-1]
    assert receipt["Subject"] == "Photos at school: we have recorded your answer"
    assert _to(receipt) == ["mum@example.org"]
    assert "The school website" in _text(receipt) and "Social media" in _text(receipt)


def test_from_the_age_threshold_the_learner_is_asked_and_the_parent_s_link_stops_working(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    born = _born(now, 16, days_after=-1)  # 16 tomorrow: today a parent still answers
    _learner(rt, "L016", "Clara Oswald", born, "father:dad@example.org", "self:clara@example.org", now=now)
    _request(rt, "L016", now=now)
    [to_parent] = _sent(rt, smtp_server)
    assert _to(to_parent) == ["dad@example.org"]
    parent_path = _form_path(to_parent)
    client = app.test_client()
    assert client.get(parent_path).status_code == 200

    # From the birthday (the threshold is 16 here), the parent cannot answer for her.
    later = now + timedelta(days=1)
    with unit_of_work(rt.sessions) as session, pytest.raises(forms.LinkProblem) as problem:
        forms.answer_form(
            session,
            parent_path.rsplit("/", 1)[1],
            {"website": forms.Answer(True), "social_media": forms.Answer(True)},
            biometric=None,
            answered_by="Danny Pink",
            wording_version=forms.DEFAULT_WORDING,
            settings=rt.settings,
            now=later,
        )
    assert problem.value.why == forms.NOT_YOURS
    _request(rt, "L016", now=later)
    to_learner = _sent(rt, smtp_server)[-1]
    assert _to(to_learner) == ["clara@example.org"]
    assert "photos of you" in _text(to_learner)
    assert [r for r in _records(rt, "L016") if r.how == forms.ONLINE_FORM] == []


@pytest.fixture
def now() -> datetime:
    """The clock: the form's pages read it (a link opens until its expiry, an age is today's)."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def settings(settings: Any) -> Any:
    """The age threshold at 16, as some organisations set it."""
    return settings.with_(policy={"age_threshold": 16})


def test_a_link_for_one_child_cannot_change_another(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    _learner(rt, "S1", "Amy Pond", _born(now, 9), "mum@example.org", now=now)
    _learner(rt, "S2", "Mels Pond", _born(now, 11), "mum@example.org", now=now)
    _request(rt, "S1", "S2", now=now, channels=("website",))
    first, second = _sent(rt, smtp_server)
    links = {("Amy" in _text(m)): _form_path(m) for m in (first, second)}
    before = _records(rt, "S2")
    client = app.test_client()
    # An answer on Amy's link names Mels's channel: refused, nothing recorded for either.
    response = _answer(
        client, links[True], channel_0="yes", channel_1="yes", biometric="no", answered_by="Mum"
    )
    assert response.status_code == 302
    assert [r.channel for r in _records(rt, "S1") if r.how == forms.ONLINE_FORM] == ["website", "biometric"]
    assert [r.id for r in _records(rt, "S2")] == [r.id for r in before]
    with unit_of_work(rt.sessions) as session, pytest.raises(InvalidInputError):
        forms.answer_form(
            session,
            links[True].rsplit("/", 1)[1],
            {"website": forms.Answer(True), "print": forms.Answer(True)},
            biometric=None,
            answered_by="Mum",
            wording_version=forms.DEFAULT_WORDING,
            settings=rt.settings,
            now=now,
        )


def test_an_expired_link_says_so_and_records_nothing(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    _learner(rt, "E1", "Amy Pond", _born(now, 9), "mum@example.org", now=now)
    _request(rt, "E1", now=now - timedelta(days=rt.settings.forms.link_days, seconds=1))
    [message] = _sent(rt, smtp_server)
    client = app.test_client()
    response = client.get(_form_path(message))
    assert response.status_code == 410
    assert "This link has expired" in response.get_data(as_text=True)
    assert client.get("/consent/not-a-real-token").status_code == 404
    assert _records(rt, "E1") == []


def test_no_to_everything_is_one_button_and_a_second_answer_is_kept_beside_the_first(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    _learner(rt, "N1", "Amy Pond", _born(now, 9), "mum@example.org", now=now)
    _request(rt, "N1", now=now)
    [message] = _sent(rt, smtp_server)
    path = _form_path(message)
    client = app.test_client()
    assert (
        _answer(client, path, channel_0="yes", channel_1="yes", biometric="yes", answered_by="Jo").status_code
        == 302
    )
    # Missing answers are listed at the top, each linked to its question.
    page = _answer(client, path, answered_by="Jo").get_data(as_text=True)
    assert 'class="error-summary"' in page and 'href="#channel_0-0"' in page
    assert _answer(client, path, all_no="1", answered_by="Jo").status_code == 302
    records = [r for r in _records(rt, "N1") if r.how == forms.ONLINE_FORM]
    assert [(r.channel, r.action) for r in records] == [
        ("website", "grant"),
        ("social_media", "grant"),
        ("biometric", "grant"),
        ("website", "withdraw"),
        ("social_media", "withdraw"),
        ("biometric", "object"),
    ]
    reasons = _reasons(rt, "N1")
    assert "consent_withdrawn" in reasons["website"] and "consent_withdrawn" in reasons["social_media"]


def test_an_answer_under_wording_that_changed_is_not_recorded(
    app: Flask, smtp_server: SmtpServer, now: datetime, tmp_path: Path
) -> None:
    rt = _rt(app)
    _learner(rt, "W1", "Amy Pond", _born(now, 9), "mum@example.org", now=now)
    _request(rt, "W1", now=now, channels=("website",))
    [message] = _sent(rt, smtp_server)
    client = app.test_client()
    path = _form_path(message)
    data = {
        "csrf_token": csrf(client, path),
        "wording_version": "built-in-0",
        "channel_0": "yes",
        "biometric": "yes",
        "answered_by": "Jo",
    }
    page = client.post(path, data=data)
    assert page.status_code == 400
    assert "wording below has changed" in page.get_data(as_text=True)
    assert _records(rt, "W1") == []
    wording = tmp_path / "photo-consent-2026.txt"
    wording.write_text("Our wording.\n", encoding="utf-8")
    version = forms.wording(rt.settings.forms.__class__(wording_file=str(wording))).version
    assert version.startswith("photo-consent-2026-") and version != forms.DEFAULT_WORDING


def test_someone_without_a_contact_who_may_answer_is_reported_and_the_others_are_still_asked(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    _learner(rt, "A1", "Amy Pond", _born(now, 9), "self:amy@example.org", now=now)  # only her own address
    _learner(rt, "A2", "Rory Williams", _born(now, 9), "dad@example.org", now=now)
    report = _request(rt, "A1", "A2", now=now)
    assert report.sent == [("A2", 1)]
    assert report.skipped == [
        ("A1", "A1 has no contact who may answer: add a parent's or guardian's email address")
    ]
    assert [_to(m) for m in _sent(rt, smtp_server)] == [["dad@example.org"]]
    with unit_of_work(rt.sessions) as session:
        assert session.query(ConsentLink).count() == 1


def test_reminders_go_once_per_deadline_and_coming_of_age_asks_the_learner(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    with unit_of_work(rt.sessions) as session:
        expiring = factories.person(
            session,
            "R1",
            name="Amy Pond",
            born=_born(now, 10),
            channels=("website",),
            granted_by="parent",
            valid_until=now.date() + timedelta(days=20),
        )
        contacts.add_contact(
            session, expiring, contacts.Contact("mum@example.org", "parent", "mother"), now=now, actor="t"
        )
        # 16 today (the threshold here): her parent's consent lapses after the grace period.
        coming = factories.person(
            session, "R2", name="Clara Oswald", born=_born(now, 16, days_after=0), granted_by="parent"
        )
        for entry in ("dad@example.org", "self:clara@example.org"):
            contacts.add_contact(session, coming, contacts.parse_contact(entry), now=now, actor="t")

    def remind(at: datetime) -> forms.ReminderReport:
        with unit_of_work(rt.sessions) as session:
            return forms.send_reminders(session, settings=rt.settings, now=at, actor="scheduler")

    first = remind(now)
    assert sorted(first.sent) == [("R1", "expiry:website"), ("R2", "reconsent")]
    to = sorted(_to(m)[0] for m in _sent(rt, smtp_server))
    assert to == ["clara@example.org", "mum@example.org"]
    assert all(
        m["Subject"] == "Photos at school: consent needs renewing" for m in smtp_server.mailbox.received
    )
    assert remind(now).sent == [] and remind(now + timedelta(days=5)).sent == []
    # 7 days before the expiry: the second reminder, once.
    week = now + timedelta(days=13)
    assert ("R1", "expiry:website") in remind(week).sent
    assert remind(week + timedelta(hours=1)).sent == []
    assert len(_sent(rt, smtp_server)) == 3


def test_a_withdrawal_with_the_link_is_acknowledged_to_every_contact_on_record(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    with unit_of_work(rt.sessions) as session:
        person = factories.person(
            session,
            "K1",
            name="Amy Pond",
            born=_born(now, 10),
            channels=("website", "social_media"),
            granted_by="parent",
        )
        for entry in ("mother:mum@example.org", "carer:nan@example.org"):
            contacts.add_contact(session, person, contacts.parse_contact(entry), now=now, actor="t")
        url = withdrawals.issue_link(session, "K1", settings=rt.settings, now=now, actor="t")
    with unit_of_work(rt.sessions) as session:
        done = withdrawals.withdraw_with_link(
            session, url.rsplit("/", 1)[1], ["social_media"], settings=rt.settings, now=now
        )
        reference = done.reference
    messages = _sent(rt, smtp_server)
    assert sorted(_to(m)[0] for m in messages) == ["mum@example.org", "nan@example.org"]
    for message in messages:
        assert message["Subject"] == "Photos: consent withdrawn"
        assert reference in _text(message) and "Social media" in _text(message)
        assert "Pond" not in _text(message) + _html(message)
        assert WITHDRAW.search(_text(message)) is not None
    with unit_of_work(rt.sessions) as session:
        assert {r.kind for r in session.query(OutboxMessage)} == {"withdrawal_link_receipt"}
        roles = {c.email: c.role for c in session.query(PersonContact)}
    assert roles == {"mum@example.org": "parent", "nan@example.org": "guardian"}


def test_consent_admins_are_told_once_when_consent_ends_with_nobody_to_ask(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = _rt(app)
    with unit_of_work(rt.sessions) as session:
        accounts.create_user(session, "dpo", "consent_admin", now=now, actor="t")
        accounts.set_email(session, "dpo", "dpo@school.example", now=now, actor="t")
        accounts.create_user(session, "comms", "uploader", now=now, actor="t")
        accounts.set_email(session, "comms", "comms@school.example", now=now, actor="t")
        factories.person(
            session,
            "NC1",
            name="Amy Pond",
            born=_born(now, 10),
            granted_by="parent",
            valid_until=now.date() + timedelta(days=20),
        )

    def remind(at: datetime) -> forms.ReminderReport:
        with unit_of_work(rt.sessions) as session:
            return forms.send_reminders(session, settings=rt.settings, now=at, actor="scheduler")

    first = remind(now)
    assert first.sent == [] and [e for e, _ in first.skipped] == ["NC1"]
    [told] = _sent(rt, smtp_server)
    assert _to(told) == ["dpo@school.example"]
    assert told["Subject"] == "Consent is ending for learners we have no address to ask"
    assert f"{PUBLIC}/people/NC1" in _text(told) and (now.date() + timedelta(days=20)).isoformat() in _text(
        told
    )
    assert "Amy" not in _text(told) + _html(told) and "Pond" not in _text(told) + _html(told)
    # Still nobody to ask: listed in each run's report, but the staff were told once.
    assert [e for e, _ in remind(now + timedelta(days=14)).skipped] == ["NC1"]
    assert len(_sent(rt, smtp_server)) == 1
