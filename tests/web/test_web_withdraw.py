"""The public withdrawal form: with a link it withdraws at once; without one it suspends and asks staff.

It never grants, answers the same whether or not anyone matched, and ends on a receipt.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from web_helpers import CLOCK, add_learners, csrf, make_account, sign_in

from consent_db.models import AuditEvent, ConsentRecord, WithdrawalLink
from consent_db.session import unit_of_work
from gatekeeper import create_app
from gatekeeper.config import RetentionSettings, Settings, WebSettings
from gatekeeper.consent import summary as person_summary
from gatekeeper.consent import withdrawals
from helpers import run
from workers import run_purge

LATER = datetime(2029, 6, 1, tzinfo=UTC)  # after every request, before anyone here turns 18
FORM = {
    "name": "amy  POND",
    "dob_day": "27",
    "dob_month": "3",
    "dob_year": "2014",
    "relationship": "parent",
    "contact_email": "p@x.org",
}


def _publishable(rt: Any, external_id: str) -> dict[str, tuple[str, ...]]:
    """Each channel's reasons not to publish (empty: publishable), as the decision sees them.

    Asked at a moment after every request of the test (requests act at the real time).
    """
    with unit_of_work(rt.sessions) as session:
        summary = person_summary.summarise_person(session, external_id, settings=rt.settings, now=LATER)
    return {c.channel: c.reasons for c in summary.channels}


def _link(rt: Any, external_id: str = "L001") -> str:
    result = run(rt, "people", "link", external_id)
    assert result.exit_code == 0, result.output
    return result.output.strip().split()[-1]


def test_people_link_prints_an_unguessable_link_and_stores_only_its_hash(rt: Any) -> None:
    add_learners(rt)
    first, second = _link(rt), _link(rt)
    assert first.startswith("http://127.0.0.1:8000/withdraw/") and first != second
    token = first.rsplit("/", 1)[1]
    assert len(token) >= 43
    with unit_of_work(rt.sessions) as session:
        stored = session.scalars(select(WithdrawalLink.token_hash)).all()
    assert len(stored) == 2 and all(token not in h for h in stored)
    assert run(rt, "people", "link", "NOPE").exit_code != 0


def test_a_link_shows_only_the_consented_channels_and_withdraws_the_chosen_ones(app: Flask, rt: Any) -> None:
    add_learners(rt)
    path = "/withdraw/" + _link(rt).rsplit("/", 1)[1]
    client = app.test_client()
    page = client.get(path).get_data(as_text=True)
    assert "Photos of Amy" in page
    assert "Pond" not in page and "Rory" not in page
    assert re.findall(r'name="channels" type="checkbox" value="([a-z_:]+)"', page) == [
        "website",
        "social_media",
    ]
    assert "Privacy notice" in page
    response = client.post(path, data={"channels": ["social_media"], "csrf_token": csrf(client, path)})
    assert response.status_code == 302
    receipt = client.get(response.headers["Location"]).get_data(as_text=True)
    reference = re.search(r"WD-[A-Z0-9]{10}", receipt)
    assert reference is not None
    state = _publishable(rt, "L001")
    assert state["social_media"] == ("consent_withdrawn",)
    assert state["website"] == ()
    with unit_of_work(rt.sessions) as session:
        request = withdrawals.find_request(session, reference.group(0))
        how = session.scalars(select(ConsentRecord.how).where(ConsentRecord.action == "withdraw")).all()
    assert request.status == "done" and request.channels == ["social_media"]
    assert how == ["public_form_link"]
    # The page now offers only what is still consented.
    assert re.findall(
        r'name="channels" type="checkbox" value="([a-z_:]+)"', client.get(path).get_data(as_text=True)
    ) == ["website"]


def test_a_link_can_withdraw_everything_at_once(app: Flask, rt: Any) -> None:
    add_learners(rt)
    path = "/withdraw/" + _link(rt).rsplit("/", 1)[1]
    client = app.test_client()
    response = client.post(path, data={"everything": "y", "csrf_token": csrf(client, path)})
    assert response.status_code == 302
    assert all(
        "consent_withdrawn" in reasons or "no_consent_for_channel" in reasons
        for reasons in _publishable(rt, "L001").values()
    )
    receipt = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "nothing to withdraw" in client.get(path).get_data(as_text=True)
    # A consent admin looks the receipt's reference up: a link request has no details and no decision.
    reference = re.search(r"WD-[A-Z0-9]{10}", receipt).group(0)  # type: ignore[union-attr]
    admin = app.test_client()
    sign_in(admin, make_account(rt, "consent_admin"))
    page = admin.get(f"/withdrawals/{reference}")
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    assert "own withdrawal link" in shown and "Withdrawn at once with the link" in shown


def test_a_link_never_grants_or_widens(app: Flask, rt: Any) -> None:
    add_learners(rt)
    path = "/withdraw/" + _link(rt).rsplit("/", 1)[1]
    client = app.test_client()
    with unit_of_work(rt.sessions) as session:
        before = session.scalar(select(func.count()).select_from(ConsentRecord))
    response = client.post(path, data={"channels": ["print"], "csrf_token": csrf(client, path)})
    assert response.status_code == 400
    empty = client.post(path, data={"csrf_token": csrf(client, path)})
    assert empty.status_code == 400
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ConsentRecord)) == before
        assert (
            session.scalar(
                select(func.count()).select_from(ConsentRecord).where(ConsentRecord.how.like("public%"))
            )
            == 0
        )


def test_an_unknown_link_says_so_without_naming_anyone(app: Flask) -> None:
    response = app.test_client().get("/withdraw/" + "x" * 43)
    assert response.status_code == 404
    assert "does not work" in response.get_data(as_text=True)


def _submit(client: Any, form: dict[str, str]) -> tuple[int, str]:
    response = client.post("/withdraw", data={**form, "csrf_token": csrf(client, "/withdraw")})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return response.status_code, page


def _run_jobs(app: Flask) -> int:
    """Run the queued jobs (the matching of requests without a link, their takedowns)."""
    from gatekeeper.web.photos import job_queue

    with app.app_context():
        return int(job_queue().drain())


def test_without_a_link_the_answer_is_the_same_whether_or_not_anyone_matches(app: Flask, rt: Any) -> None:
    add_learners(rt)
    status_a, matched = _submit(app.test_client(), FORM)
    status_b, unmatched = _submit(app.test_client(), {**FORM, "name": "Nobody Here"})
    assert status_a == status_b
    assert re.sub(r"WD-[A-Z0-9]{10}", "REF", matched) == re.sub(r"WD-[A-Z0-9]{10}", "REF", unmatched)


def test_without_a_link_publishing_is_suspended_for_every_match_by_the_job_after_the_request(
    app: Flask, rt: Any
) -> None:
    add_learners(rt)
    _, page = _submit(app.test_client(), FORM)
    reference = re.search(r"WD-[A-Z0-9]{10}", page)
    assert reference is not None
    # The request itself looks nobody up; its job, sent after the commit, suspends.
    assert _publishable(rt, "L001")["website"] == ()
    assert _run_jobs(app) >= 1
    # Amy Pond born 2014-03-27 matches (name compared without case or spacing); the other Amy Pond does not.
    assert set(_publishable(rt, "L001").values()) <= {("consent_withdrawn",)}
    assert _publishable(rt, "L003")["print"] == ()
    assert _publishable(rt, "L002")["website"] == ()
    with unit_of_work(rt.sessions) as session:
        request = withdrawals.find_request(session, reference.group(0))
        details = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "withdrawal.suspended")
        ).all()
    assert request.status == "pending" and request.contact_email == "p@x.org"
    # The append-only log never holds the requester's contact details.
    assert "p@x.org" not in str(details) and "Pond" not in str(details)


def test_a_consent_admin_rejecting_the_request_lifts_the_suspension(app: Flask, rt: Any) -> None:
    add_learners(rt)
    _, page = _submit(app.test_client(), FORM)
    reference = re.search(r"WD-[A-Z0-9]{10}", page).group(0)  # type: ignore[union-attr]
    _run_jobs(app)
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    listing = client.get("/withdrawals").get_data(as_text=True)
    assert reference in listing
    task = client.get(f"/withdrawals/{reference}").get_data(as_text=True)
    assert "Amy Pond (L001)" in task and "L003" not in task and "p@x.org" in task
    token = csrf(client, f"/withdrawals/{reference}")
    response = client.post(
        f"/withdrawals/{reference}/reject",
        data={"note": "the school has no such request", "csrf_token": token},
    )
    assert response.status_code == 302
    state = _publishable(rt, "L001")
    assert state["website"] == () and state["social_media"] == ()
    assert f'href="/withdrawals/{reference}"' not in client.get("/withdrawals").get_data(as_text=True)
    with unit_of_work(rt.sessions) as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        how = session.scalars(select(ConsentRecord.how).where(ConsentRecord.how == "suspension_lifted")).all()
    assert actions[-1] == "withdrawal.rejected" and len(how) == 2
    again = client.post(f"/withdrawals/{reference}/confirm", data={"csrf_token": token})
    assert "already rejected" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_confirming_the_request_keeps_the_withdrawal(app: Flask, rt: Any) -> None:
    add_learners(rt)
    _, page = _submit(app.test_client(), FORM)
    reference = re.search(r"WD-[A-Z0-9]{10}", page).group(0)  # type: ignore[union-attr]
    _run_jobs(app)
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    token = csrf(client, f"/withdrawals/{reference}")
    assert client.post(f"/withdrawals/{reference}/confirm", data={"csrf_token": token}).status_code == 302
    assert set(_publishable(rt, "L001").values()) <= {("consent_withdrawn",)}
    with unit_of_work(rt.sessions) as session:
        assert withdrawals.find_request(session, reference).status == "confirmed"
    assert "p@x.org" in client.get(f"/withdrawals/{reference}").get_data(as_text=True)
    # Past their retention time the details the parent typed are erased; the decision stays.
    run_purge(rt, now=datetime.now(UTC) + timedelta(days=40), actor="t")
    shown = client.get(f"/withdrawals/{reference}").get_data(as_text=True)
    assert "p@x.org" not in shown and "amy  POND" not in shown  # as typed; the record's name stays
    assert "Erased (retention period over" in shown and "Decided by" in shown


def test_rejecting_never_undoes_a_withdrawal_made_since_the_suspension(rt: Any) -> None:
    add_learners(rt)
    later = CLOCK.replace(hour=13)
    with unit_of_work(rt.sessions) as session:
        request = withdrawals.request_withdrawal(
            session,
            name="Amy Pond",
            date_of_birth=date(2014, 3, 27),
            relationship="parent",
            contact_email="p@x.org",
            settings=rt.settings,
            now=CLOCK,
        )
    with unit_of_work(rt.sessions) as session:
        withdrawals.match_request(session, request.id, settings=rt.settings, now=CLOCK)
        token = withdrawals.issue_link(session, "L001", settings=rt.settings, now=CLOCK, actor="t").rsplit(
            "/", 1
        )[1]
    with unit_of_work(rt.sessions) as session:
        # While suspended, the link still offers the suspended grants (and nothing never granted).
        view = withdrawals.view_link(session, token, settings=rt.settings, now=later)
        assert view is not None and view.channels == ("website", "social_media")
        withdrawals.withdraw_with_link(session, token, ["website"], settings=rt.settings, now=later)
    with unit_of_work(rt.sessions) as session:
        withdrawals.reject_request(
            session, request.reference, settings=rt.settings, now=later.replace(hour=14), actor="dpo"
        )
    state = _publishable(rt, "L001")
    assert state["website"] == ("consent_withdrawn",)
    assert state["social_media"] == ()
    assert state["print"] != ()  # never granted: still not publishable


def test_the_privacy_notice_says_how_long_the_details_typed_are_kept(
    tmp_home: Path, database_url: str
) -> None:
    app = create_app(
        Settings(home=tmp_home, database_url=database_url, retention=RetentionSettings(request_days=14))
    )
    try:
        notice = app.test_client().get("/privacy").get_data(as_text=True)
        assert "deleted, with the name and date of birth you typed, 14 days after" in notice
    finally:
        app.extensions["gatekeeper"].db.dispose()


def test_the_public_form_is_rate_limited_per_client(tmp_home: Path, database_url: str) -> None:
    app = create_app(
        Settings(
            home=tmp_home, database_url=database_url, web=WebSettings(withdraw_rate_limit="2 per minute")
        )
    )
    try:
        client = app.test_client()
        statuses = [
            client.post("/withdraw", data={**FORM, "csrf_token": csrf(client, "/withdraw")}).status_code
            for _ in range(3)
        ]
        assert statuses == [302, 302, 429]
        assert "Please wait" in client.post("/withdraw", data=FORM).get_data(as_text=True)
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = "192.0.2.9"
        assert (
            other.post("/withdraw", data={**FORM, "csrf_token": csrf(other, "/withdraw")}).status_code == 302
        )
    finally:
        app.extensions["gatekeeper"].db.dispose()


def test_the_form_explains_what_is_wrong_with_each_field(app: Flask) -> None:
    client = app.test_client()
    response = client.post(
        "/withdraw",
        data={
            "name": "",
            "dob_day": "27",
            "dob_month": "March",
            "dob_year": "2014",
            "contact_email": "nope",
            "csrf_token": csrf(client, "/withdraw"),
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert page.count('aria-invalid="true"') == 3
    assert page.count('class="error"') == 4


def test_with_redis_configured_every_app_instance_shares_the_rate_limit(
    tmp_home: Path, database_url: str, redis_url: str
) -> None:
    import secrets

    url = redis_url
    settings = Settings(
        home=tmp_home,
        database_url=database_url,
        web=WebSettings(rate_limit_url=url, withdraw_rate_limit="2 per minute"),
    )
    first, second = create_app(settings), create_app(settings)
    # A client address of its own, so no earlier run's counts apply.
    address = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    try:
        statuses = []
        for app in (first, second, first):
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = address
            statuses.append(
                client.post("/withdraw", data={**FORM, "csrf_token": csrf(client, "/withdraw")}).status_code
            )
        assert statuses == [302, 302, 429]
    finally:
        for app in (first, second):
            app.extensions["gatekeeper"].db.dispose()
