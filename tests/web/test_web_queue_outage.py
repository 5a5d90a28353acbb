"""A queue outage never reaches a parent: changes are recorded and acknowledged, staff see a banner.

The queue here is a Redis URL on a port nothing listens on: every send fails as when Redis is down.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from web_helpers import add_learners, api_token, csrf, make_account, sign_in

from consent_db.models import Job
from consent_db.session import unit_of_work
from gatekeeper import create_app
from helpers import run

FORM = {
    "name": "amy pond",
    "dob_day": "27",
    "dob_month": "3",
    "dob_year": "2014",
    "relationship": "parent",
    "contact_email": "p@x.org",
}
BANNER = "Background jobs cannot be sent"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def down(settings: Any) -> Iterator[Flask]:
    """The app with its queue down."""
    app = create_app(settings.with_(queue={"url": f"redis://127.0.0.1:{_closed_port()}/0"}))
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


def _jobs(rt: Any) -> list[tuple[str, str]]:
    with unit_of_work(rt.sessions) as session:
        return [(j.task, j.state) for j in session.scalars(select(Job).order_by(Job.id))]


def _receipt(client: Any, response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    reference = re.search(r"WD-[A-Z0-9]{10}", page)
    assert reference is not None, page
    return reference.group(0)


def test_every_kind_of_withdrawal_is_recorded_and_acknowledged_while_the_queue_is_down(down: Flask) -> None:
    rt = down.extensions["gatekeeper"]
    add_learners(rt)
    # The public form without a link: a receipt, as on any day.
    client = down.test_client()
    _receipt(client, client.post("/withdraw", data={**FORM, "csrf_token": csrf(client, "/withdraw")}))
    # With the person's link: withdrawn at once, with a receipt.
    link = run(rt, "people", "link", "L002")
    assert link.exit_code == 0, link.output
    path = "/withdraw/" + link.output.strip().split()[-1].rsplit("/", 1)[1]
    client = down.test_client()
    _receipt(client, client.post(path, data={"channels": ["website"], "csrf_token": csrf(client, path)}))
    # Through the API.
    headers = {"Authorization": f"Bearer {api_token(rt, make_account(rt, 'consent_admin'))}"}
    answer = down.test_client().post("/api/v1/people/L001/withdraw", json={}, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    # By staff on the person's page.
    staff = down.test_client()
    sign_in(staff, make_account(rt, "consent_admin", username="dsl"))
    token = csrf(staff, "/people/L003")
    done = staff.post(
        "/people/L003/withdraw", data={"withdraw-channels": ["print"], "withdraw-csrf_token": token}
    )
    assert done.status_code == 302
    # Each takedown, the matching of the request made without a link and the emailed receipt of that
    # request are recorded and wait, queued, for the queue to be back.
    jobs = _jobs(rt)
    assert set(jobs) == {("takedown", "queued"), ("withdrawal_match", "queued"), ("send_mail", "queued")}
    assert jobs.count(("takedown", "queued")) >= 3
    assert jobs.count(("send_mail", "queued")) == 1


def test_an_upload_answers_202_queued_while_the_queue_is_down(down: Flask, corpus: Any) -> None:
    rt = down.extensions["gatekeeper"]
    headers = {"Authorization": f"Bearer {api_token(rt, make_account(rt, 'uploader'))}"}
    client = down.test_client()
    data = {
        "file": (io.BytesIO((corpus.faces_dir / "biden/biden2.jpg").read_bytes()), "x.jpg"),
        "channel": "website",
    }
    answer = client.post("/api/v1/photos", data=data, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    state = client.get(f"/api/v1/photos/{answer.get_json()['id']}", headers=headers).get_json()
    assert state["status"] == "queued"
    assert _jobs(rt) == [("gate", "queued")]


def test_staff_pages_show_a_banner_while_jobs_cannot_be_sent_and_none_otherwise(
    down: Flask, app: Flask
) -> None:
    for each, expected, name in ((down, True, "one"), (app, False, "two")):
        client = each.test_client()
        sign_in(client, make_account(each.extensions["gatekeeper"], "uploader", username=name))
        assert (BANNER in client.get("/").get_data(as_text=True)) is expected
    # The public form says nothing of it.
    assert BANNER not in down.test_client().get("/withdraw").get_data(as_text=True)


def test_readyz_reports_the_database_the_queue_and_the_stores_separately(down: Flask, app: Flask) -> None:
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "database": {"ok": True},
        "queue": {"ok": True},
        "originals": {"ok": True},
        "published": {"ok": True},
    }
    not_ready = down.test_client().get("/readyz")
    assert not_ready.status_code == 503
    body = not_ready.get_json()
    assert body["status"] == "not ready" and body["queue"]["ok"] is False
    assert body["database"] == body["originals"] == body["published"] == {"ok": True}
    # Liveness is not readiness: the process answers, so /healthz stays 200.
    assert down.test_client().get("/healthz").status_code == 200
