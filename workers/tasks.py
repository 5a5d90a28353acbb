"""The background jobs as plain functions, each calling one service, and the table the queue runs.

Every task takes `(runtime, session, actor, *ids)`: the job's own unit of work (its `done`
commits with the task's work), the worker that runs it, and the ids its row carries. Templates and
consent are read from the database when the task runs, so a worker started before an enrolment or
a withdrawal decides with today's data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from consent_db.session import unit_of_work
from gatekeeper.consent import forms as forms_service
from gatekeeper.consent import withdrawals as withdrawals_service
from gatekeeper.mail import delivery as mail_delivery
from gatekeeper.photos import gate as gate_service
from gatekeeper.publishing import publish as publish_service
from gatekeeper.publishing import recheck as publication_checks
from gatekeeper.queueing import JobKind
from gatekeeper.runtime import Runtime
from gatekeeper.scan import runner as scan_runner
from gatekeeper.scan import scanning as scan_service
from gatekeeper.staff import alerts as staff_alerts
from workers.purge import run_purge


def _now() -> datetime:
    return datetime.now(UTC)


def run_gate(
    runtime: Runtime, session: Any, actor: str, sha256: str, channel: str, caption: str | None
) -> None:
    """Gate a stored original with today's templates and consent."""
    # Templates and names are read in a unit of their own: on SQLite every transaction holds the
    # write lock, and the job's own one must not begin before the face analysis, which takes
    # seconds while web requests (`gatekeeper serve` runs jobs in its own process) wait for it.
    with unit_of_work(runtime.sessions) as reading:
        tools = gate_service.load_tools(reading, runtime.settings, runtime.faces, runtime.originals)
    gate_service.gate_original(
        session, sha256, channel, tools=tools, now=_now(), actor=actor, caption=caption
    )


def run_publish(
    runtime: Runtime, session: Any, actor: str, photo_id: int, channel: str, requested_by: str | None = None
) -> None:
    """Publish a gated photo to the published store (deciding again now), on behalf of whoever
    asked for it (`requested_by`: the publication and its audit event name them)."""
    # The face models load only for a copy with covered faces, which is checked by detection.
    covered = any(f.covered for f in gate_service.latest_decision(session, photo_id).faces)
    publish_service.publish_photo(
        session,
        photo_id,
        channel=channel,
        store=runtime.published,
        originals=runtime.originals,
        settings=runtime.settings,
        now=_now(),
        actor=requested_by or actor,
        engine=runtime.faces if covered else None,
        once=True,
    )


def run_takedown(runtime: Runtime, session: Any, actor: str, person_id: int) -> None:
    """Decide every publication of a person's photos again and take down what fails."""
    publication_checks.recheck_publications(
        session, settings=runtime.settings, now=_now(), actor=actor, person_id=person_id
    )


def run_withdrawal_match(runtime: Runtime, session: Any, actor: str, request_id: int) -> None:
    """Suspend publishing for whoever a request without a link names (its takedowns follow)."""
    withdrawals_service.match_request(session, request_id, settings=runtime.settings, now=_now())


def run_recheck(runtime: Runtime, session: Any, actor: str) -> None:
    """Decide every live publication again and take down what fails."""
    publication_checks.recheck_publications(session, settings=runtime.settings, now=_now(), actor=actor)


def run_purge_job(runtime: Runtime, session: Any, actor: str) -> None:
    """Purge everything past its retention deadline (committed per item, see run_purge; `session` unused)."""
    run_purge(runtime, now=_now(), actor=actor)


def run_send_mail(runtime: Runtime, session: Any, actor: str, message_id: int | None = None) -> None:
    """Send one queued email; periodic (no id): every message still waiting (`session` unused: the
    delivery commits `sending` before the conversation and its end after, in units of its own)."""
    mail = runtime.settings.mail
    if message_id is None:
        mail_delivery.deliver_due(runtime.sessions, mail, now=_now())
    else:
        mail_delivery.deliver(runtime.sessions, message_id, mail, now=_now())


def run_send_reminders(runtime: Runtime, session: Any, actor: str) -> None:
    """Send the consent forms whose reminder day has come (each reminder once per deadline)."""
    forms_service.send_reminders(session, settings=runtime.settings, now=_now(), actor=actor)


def run_staff_digest(runtime: Runtime, session: Any, actor: str) -> None:
    """Write the day's digest of what has waited for staff more than a day (at most once a day)."""
    staff_alerts.send_digest(session, settings=runtime.settings, now=_now(), actor=actor)


def run_scan_job(runtime: Runtime, session: Any, actor: str, run_id: int) -> None:
    """Run a recorded scan to its end (`session` unused: the scan commits picture by picture, so the
    page shows its progress and a scan stopped half-way keeps what it recorded)."""
    scan_runner.run_scan(
        runtime.sessions,
        run_id,
        settings=runtime.settings,
        engine=runtime.faces,
        originals=runtime.originals,
        actor=actor,
    )


def run_rescan(runtime: Runtime, session: Any, actor: str) -> None:
    """Ask for a scan of every watched source (each runs as its own job)."""
    scan_service.rescan_watched(session, now=_now(), actor=actor)


TASKS: dict[JobKind, Callable[..., None]] = {
    JobKind.GATE: run_gate,
    JobKind.PUBLISH: run_publish,
    JobKind.TAKEDOWN: run_takedown,
    JobKind.WITHDRAWAL_MATCH: run_withdrawal_match,
    JobKind.RECHECK: run_recheck,
    JobKind.PURGE: run_purge_job,
    JobKind.SEND_MAIL: run_send_mail,
    JobKind.SEND_REMINDERS: run_send_reminders,
    JobKind.STAFF_DIGEST: run_staff_digest,
    JobKind.SCAN: run_scan_job,
    JobKind.RESCAN: run_rescan,
}

# Higher runs first: a withdrawal's takedown never waits behind a batch of uploads being gated.
PRIORITY = {
    JobKind.TAKEDOWN: 30,
    JobKind.WITHDRAWAL_MATCH: 30,
    JobKind.RECHECK: 20,
    JobKind.SEND_MAIL: 20,
    JobKind.PUBLISH: 10,
    JobKind.GATE: 0,
    JobKind.PURGE: 0,
    JobKind.SEND_REMINDERS: 0,
    JobKind.STAFF_DIGEST: 0,
    JobKind.SCAN: 0,
    JobKind.RESCAN: 0,
}
