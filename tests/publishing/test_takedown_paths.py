"""Every way consent ends queues a takedown in the same unit of work, sent only after it commits.

Each path below (command line, staff pages, the public form with and without a link, the API, an
import) withdraws a person with a live published copy; the takedown job is recorded by the
withdrawal's own transaction, and once the queue is drained the copy is gone from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from engines import compose_app, engine_for
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import api_token, csrf, make_account, sign_in

from consent_db.models import AuditEvent, Job, Publication
from consent_db.session import unit_of_work
from gatekeeper.consent import records as consent_service
from gatekeeper.consent import withdrawals
from gatekeeper.publishing import recheck, takedowns
from gatekeeper.runtime import Runtime
from helpers import add_people, person_row, run, seed_gated_photo, write_csv
from workers import JobQueue

ANN = "ann"


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Any) -> Iterator[Flask]:
    """The app as create_app composes it; its face engine answers from recorded answers (engines.py)."""
    app = compose_app(settings, engine_for(request, settings))
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["gatekeeper"]
    return runtime


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def live(rt: Runtime, corpus: Any, now: datetime) -> int:
    """Ann, consenting to the website, in one photo published to the published store."""
    ids = add_people(rt, now, ANN)
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    photo_id = seed_gated_photo(rt, data, now=now, person_ids=(ids[ANN],))
    result = run(rt, "publish", photo_id, "--channel", "website")
    assert result.exit_code == 0, result.output
    assert len(list(rt.published.iter_keys())) == 1
    _drain(rt)  # the import queued nothing; anything else is finished before the withdrawal
    return ids[ANN]


def _drain(rt: Runtime) -> int:
    ran: int = JobQueue.of(rt).drain(max_wait=5)
    return ran


def _takedowns(rt: Runtime) -> list[Job]:
    with unit_of_work(rt.sessions) as session:
        return list(session.scalars(select(Job).where(Job.task == "takedown").order_by(Job.id)))


# --- the paths ---------------------------------------------------------------------------------


def cli_withdraw(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    result = run(rt, "consent", "withdraw", ANN, "--channel", "website")
    assert result.exit_code == 0 and "takedown job" in result.stdout, result.output


def cli_object(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    result = run(rt, "consent", "object", ANN, "--channel", "website")
    assert result.exit_code == 0, result.output


def staff_withdraw(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    sign_in(client, make_account(rt, "consent_admin"))
    token = csrf(client, f"/people/{ANN}")
    response = client.post(
        f"/people/{ANN}/withdraw", data={"withdraw-channels": ["website"], "withdraw-csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def link_withdraw(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    with unit_of_work(rt.sessions) as session:
        url = withdrawals.issue_link(
            session, ANN, settings=rt.settings, now=datetime.now().astimezone(), actor="t"
        )
    path = "/withdraw/" + url.rsplit("/", 1)[1]
    response = client.post(path, data={"everything": "y", "csrf_token": csrf(client, path)})
    assert response.status_code == 302, response.get_data(as_text=True)


def no_link_request(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    data = {
        "name": "Ann",
        "dob_day": "1",
        "dob_month": "1",
        "dob_year": "1980",
        "relationship": "self",
        "contact_email": "ann@example.org",
        "csrf_token": csrf(client, "/withdraw"),
    }
    response = client.post("/withdraw", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    # The request's own job (queued with it) matches Ann and suspends her consent.
    with unit_of_work(rt.sessions) as session:
        [request] = withdrawals.pending_requests(session)
        withdrawals.match_request(session, request.id, settings=rt.settings, now=datetime.now(UTC))


def api_withdraw(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    token = api_token(rt, make_account(rt, "consent_admin"))
    response = client.post(
        f"/api/v1/people/{ANN}/withdraw",
        json={"channels": ["website"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["withdrawn"] == ["website"]


def import_withdraw(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    # The school's export no longer lists the website for Ann: the import withdraws it.
    csv_path = write_csv(
        tmp / "export.csv", [person_row(ANN, None, tmp, channels="", biometric_consent="yes")]
    )
    result = run(rt, "people", "import", csv_path)
    assert result.exit_code == 0, result.output


def staff_edit_last_day(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    # Ann's last day was yesterday and her consent does not outlast leaving.
    sign_in(client, make_account(rt, "consent_admin"))
    form = {
        "external_id": ANN,
        "name": "Ann",
        "date_of_birth": "1980-01-01",
        "left_on": (datetime.now().astimezone().date() - timedelta(days=1)).isoformat(),
        "csrf_token": csrf(client, f"/people/{ANN}/edit"),
    }
    response = client.post(f"/people/{ANN}/edit", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)


def biometric_objection(rt: Runtime, client: FlaskClient, tmp: Path) -> None:
    # Ann, an adult, refuses face matching: a takedown re-decides her photos with that answer.
    result = run(rt, "consent", "biometric", ANN, "refuse")
    assert result.exit_code == 0, result.output


PATHS: dict[str, Callable[[Runtime, FlaskClient, Path], None]] = {
    "cli-withdraw": cli_withdraw,
    "cli-object": cli_object,
    "staff-page": staff_withdraw,
    "public-link": link_withdraw,
    "public-no-link": no_link_request,
    "api": api_withdraw,
    "csv-import": import_withdraw,
    "staff-edit-last-day": staff_edit_last_day,
}


@pytest.mark.parametrize("path", list(PATHS))
def test_each_withdrawal_path_queues_a_takedown_that_deletes_the_copy(
    path: str, rt: Runtime, client: FlaskClient, live: int, tmp_path: Path
) -> None:
    assert _takedowns(rt) == []
    PATHS[path](rt, client, tmp_path)
    [job] = _takedowns(rt)
    assert job.args == [live] and job.state == "queued"
    assert _drain(rt) >= 1
    [job] = _takedowns(rt)
    assert job.state == "done", job.error
    assert list(rt.published.iter_keys()) == []
    with unit_of_work(rt.sessions) as session:
        [publication] = session.scalars(select(Publication)).all()
        assert publication.taken_down_at is not None
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "publication.taken_down")).all()


def test_a_biometric_refusal_queues_a_takedown_of_the_persons_photos(
    rt: Runtime, client: FlaskClient, live: int, tmp_path: Path
) -> None:
    biometric_objection(rt, client, tmp_path)
    [job] = _takedowns(rt)
    assert job.args == [live]
    assert _drain(rt) >= 1
    [job] = _takedowns(rt)
    assert job.state == "done", job.error


def test_confirming_a_request_without_a_link_takes_the_persons_photos_down_again(
    rt: Runtime, client: FlaskClient, live: int, tmp_path: Path
) -> None:
    no_link_request(rt, client, tmp_path)
    _drain(rt)
    assert list(rt.published.iter_keys()) == []
    with unit_of_work(rt.sessions) as session:
        [pending] = withdrawals.pending_requests(session)
        reference = pending.reference
    sign_in(client, make_account(rt, "consent_admin"))
    token = csrf(client, f"/withdrawals/{reference}")
    response = client.post(f"/withdrawals/{reference}/confirm", data={"csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    suspension, confirmation = _takedowns(rt)
    assert suspension.state == "done" and confirmation.state == "queued"
    assert confirmation.args == [live]
    _drain(rt)
    assert [j.state for j in _takedowns(rt)] == ["done", "done"]


def test_a_withdrawal_that_rolls_back_queues_nothing(rt: Runtime, live: int, now: datetime) -> None:
    with pytest.raises(RuntimeError), unit_of_work(rt.sessions) as session:
        consent_service.withdraw_consent(session, ANN, ("website",), settings=rt.settings, now=now, actor="t")
        raise RuntimeError("the request failed after the withdrawal was recorded")
    assert _takedowns(rt) == []
    assert _drain(rt) == 0
    assert len(list(rt.published.iter_keys())) == 1


def test_several_withdrawals_in_one_unit_of_work_queue_one_takedown(
    rt: Runtime, live: int, now: datetime
) -> None:
    with unit_of_work(rt.sessions) as session:
        consent_service.withdraw_consent(session, ANN, ("website",), settings=rt.settings, now=now, actor="t")
        consent_service.object_to_publication(session, ANN, "print", settings=rt.settings, now=now, actor="t")
    assert len(_takedowns(rt)) == 1
    assert _drain(rt) == 1
    assert list(rt.published.iter_keys()) == []


def test_a_takedown_of_many_copies_deletes_them_together_and_keeps_a_refused_one_live(
    runtime: Runtime, corpus: Any, now: datetime, s3: Any
) -> None:
    import secrets

    from gatekeeper.errors import StorageError
    from gatekeeper.publishing import publish as publish_service

    bucket = f"takedown-{secrets.token_hex(4)}"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    on_s3 = Runtime(runtime.settings.with_(storage={"published_url": f"s3://{bucket}/pub"}), sender=JobQueue)
    ids = add_people(on_s3, now, ANN)
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    count = takedowns.DELETE_MANY_FROM + 5
    for i in range(count):
        photo_id = seed_gated_photo(on_s3, data + i.to_bytes(2, "big"), now=now, person_ids=(ids[ANN],))
        with unit_of_work(on_s3.sessions) as session:
            outcome = publish_service.publish_photo(
                session,
                photo_id,
                channel="website",
                store=on_s3.published,
                originals=on_s3.originals,
                settings=on_s3.settings,
                now=now,
                actor="t",
            )
            assert outcome.published
    held_key = f"pub/{outcome.key}"
    held_version = s3.client.list_object_versions(Bucket=bucket, Prefix=held_key)["Versions"][0]["VersionId"]
    s3.client.put_object_legal_hold(
        Bucket=bucket, Key=held_key, VersionId=held_version, LegalHold={"Status": "ON"}
    )
    with unit_of_work(on_s3.sessions) as session:
        consent_service.withdraw_consent(session, ANN, (), settings=on_s3.settings, now=now, actor="t")
    with (
        pytest.raises(StorageError, match="1 copies could not be taken down"),
        unit_of_work(on_s3.sessions) as session,
    ):
        recheck.recheck_publications(session, settings=on_s3.settings, now=now, actor="t", person_id=ids[ANN])
    # The refusal rolled the record back: every copy is still recorded live, and only the held one
    # remains in the bucket; the retry records the rest and, once the hold is lifted, that one too.
    assert [k for k in on_s3.published.iter_keys()] == [outcome.key]
    s3.client.put_object_legal_hold(
        Bucket=bucket, Key=held_key, VersionId=held_version, LegalHold={"Status": "OFF"}
    )
    with unit_of_work(on_s3.sessions) as session:
        report = recheck.recheck_publications(
            session, settings=on_s3.settings, now=now, actor="t", person_id=ids[ANN]
        )
    assert len(report.deleted) == count
    assert s3.client.list_object_versions(Bucket=bucket).get("Versions", []) == []
    with unit_of_work(on_s3.sessions) as session:
        assert recheck.live_publications(session) == []
    if "db" in on_s3.__dict__:
        on_s3.db.dispose()
