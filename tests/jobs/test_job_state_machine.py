"""A bounded property-based run of the jobs: any order of uploads, consent changes, publishing,
duplicate messages, jobs killed mid-way, a lost queue and purges leaves nothing unsafe or stuck.

After every step: the audit chain verifies, no object in the stores is orphaned, and every live
copy that no longer passes has a takedown on its way. After the sweeper and the workers have
caught up (`settle`): every job is done or failed with a reason, and no live copy shows a face
without valid consent.
"""

from __future__ import annotations

import itertools
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from consent_db import audit
from consent_db.models import Job, Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper import policy
from gatekeeper.config import PolicySettings, QueueSettings, Settings
from gatekeeper.consent import records as consent_service
from gatekeeper.photos.gate import recheck
from gatekeeper.publishing import recheck as publication_checks
from gatekeeper.queueing import rows as jobs_service
from gatekeeper.runtime import Runtime
from helpers import add_people, seed_gated_photo
from workers import JobQueue, run_purge

LEASE = 0.05  # seconds: every job a step "killed" is lapsed by the next sweep
NAMES = ("ann", "bob", "cat")


def _now() -> datetime:
    return datetime.now(UTC)


class Jobs(RuleBasedStateMachine):
    """One instance, one database and one queue: the rules are what users, workers and faults do."""

    people = Bundle("people")
    photos = Bundle("photos")

    def __init__(self, settings: Settings, data: bytes) -> None:
        super().__init__()
        self.runtime = Runtime(settings, migrate=False, sender=JobQueue)
        self.queue = JobQueue.of(self.runtime)
        self.data = data
        self.uploads = itertools.count()
        self.ids: dict[str, int] = {}

    # --- users ---------------------------------------------------------------------------------

    @rule(target=people, name=st.sampled_from(NAMES))
    def enrol(self, name: str) -> str:
        if name not in self.ids:
            self.ids.update(add_people(self.runtime, _now(), name))
        return name

    @rule(target=photos, shown=st.lists(people, min_size=0, max_size=2, unique=True))
    def upload(self, shown: list[str]) -> int:
        data = self.data + next(self.uploads).to_bytes(4, "big")
        return seed_gated_photo(self.runtime, data, now=_now(), person_ids=tuple(self.ids[n] for n in shown))

    @rule(name=people)
    def grant(self, name: str) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            consent_service.grant_consent(
                session,
                name,
                "website",
                settings=self.runtime.settings,
                now=_now(),
                actor="t",
                granted_by="self",
            )

    @rule(name=people)
    def withdraw(self, name: str) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            consent_service.withdraw_consent(
                session, name, [], settings=self.runtime.settings, now=_now(), actor="t"
            )

    @rule(photo=photos)
    def publish(self, photo: int) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            if session.get(Photo, photo) is None:  # purged meanwhile
                return
            self.queue.enqueue_publish(session, photo, "website")

    # --- workers and faults --------------------------------------------------------------------

    @rule(pick=st.integers(min_value=0, max_value=50))
    def resend(self, pick: int) -> None:
        """A duplicate message (a client re-sent, two sweepers raced)."""
        with unit_of_work(self.runtime.sessions) as session:
            jobs = list(session.scalars(select(Job).order_by(Job.id)))
        if jobs:
            job = jobs[pick % len(jobs)]
            self.queue.send(job.task, job.id)

    @rule()
    def run_one(self) -> None:
        message = self.queue.huey.dequeue()
        if message is not None:
            self.queue.huey.execute(message)

    @rule()
    def kill_mid_job(self) -> None:
        """A worker takes a message, starts its job and dies before finishing it."""
        message = self.queue.huey.dequeue()
        if message is not None and message.args:
            with unit_of_work(self.runtime.sessions) as session:
                jobs_service.start_job(session, message.args[0], now=_now(), lease=LEASE)

    @rule()
    def lose_queue(self) -> None:
        self.queue.huey.storage.flush_all()

    @rule()
    def sweep_after_the_lease(self) -> None:
        time.sleep(LEASE)
        self.queue.sweep()

    @rule(days=st.sampled_from([0, 45, 400]))
    def purge(self, days: int) -> None:
        run_purge(self.runtime, now=_now() + timedelta(days=days), actor="t")

    @rule()
    def settle(self) -> None:
        """Time passes with the sweeper and a worker running: everything in flight ends."""
        for _ in range(20):
            time.sleep(LEASE)
            self.queue.sweep()
            if self.queue.drain(max_wait=0) == 0 and self.queue.huey.pending_count() == 0:
                break
        with unit_of_work(self.runtime.sessions) as session:
            jobs = list(session.scalars(select(Job)))
        assert all(j.state in ("done", "failed") for j in jobs), [(j.id, j.task, j.state) for j in jobs]
        assert all(j.error for j in jobs if j.state == "failed")
        assert self._failing_live_copies() == []

    # --- what must always hold -----------------------------------------------------------------

    def _failing_live_copies(self) -> list[tuple[int, list[int]]]:
        """Live copies in our stores that would not pass now, with the people they show."""
        found = []
        with unit_of_work(self.runtime.sessions) as session:
            for publication in publication_checks.live_publications(session):
                as_published = publication_checks.settings_as_published(self.runtime.settings, publication)
                fresh = recheck(session, publication.decision_id, settings=as_published, now=_now())
                if fresh.verdict != policy.Verdict.PUBLISHABLE:
                    shown = [int(f.person) for f in fresh.faces if f.person is not None]
                    found.append((publication.photo_id, shown))
        return found

    @invariant()
    def audit_chain_verifies(self) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            assert audit.verify(session).ok

    @invariant()
    def no_object_is_orphaned(self) -> None:
        with unit_of_work(self.runtime.sessions) as session:
            live = set(session.scalars(select(Publication.key).where(Publication.taken_down_at.is_(None))))
            originals = set(session.scalars(select(Photo.original_key)))
        assert set(self.runtime.published.iter_keys()) <= live
        assert set(self.runtime.originals.iter_keys()) <= originals

    @invariant()
    def a_copy_that_no_longer_passes_has_its_takedown_on_the_way(self) -> None:
        failing = self._failing_live_copies()
        if not failing:
            return
        with unit_of_work(self.runtime.sessions) as session:
            pending = {
                j.args[0]
                for j in session.scalars(
                    select(Job).where(Job.task == "takedown", Job.state.in_(("queued", "running")))
                )
            }
        for photo_id, shown in failing:
            assert pending & set(shown), f"photo {photo_id}: a live copy fails and no takedown is pending"

    def teardown(self) -> None:
        try:
            self.settle()  # however a run ends, time passing catches everything up
        finally:
            if "db" in self.runtime.__dict__:
                self.runtime.db.dispose()


def test_no_sequence_of_steps_leaves_a_copy_unsafe_a_job_stuck_or_an_object_orphaned(
    sqlite_template: Path, tmp_path: Path, corpus: Any
) -> None:
    examples = itertools.count()
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()

    def fresh() -> Jobs:
        home = tmp_path / f"example-{next(examples)}"
        home.mkdir()
        shutil.copyfile(sqlite_template, home / "gatekeeper.db")
        config = Settings(
            home=home,
            database_url=f"sqlite:///{home / 'gatekeeper.db'}",
            policy=PolicySettings(dpia_required=False),
            queue=QueueSettings(job_lease=LEASE, job_max_attempts=1000, job_retry_delay=0.0),
        )
        return Jobs(config, data)

    run_state_machine_as_test(
        fresh,
        settings=settings(
            max_examples=10,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
