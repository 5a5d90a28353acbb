"""The schema is built by migrations and matches the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from consent_db import audit
from consent_db.models import AuditEvent, Base, Person
from consent_db.schema import is_current
from consent_db.session import after_commit, after_rollback, make_engine, make_session_factory, unit_of_work

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_autogenerate_finds_no_difference_between_models_and_migrations(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_a_migrated_database_is_current(database_url: str) -> None:
    engine = make_engine(database_url)
    assert is_current(engine)
    engine.dispose()


def test_an_empty_database_is_not_current(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    assert not is_current(engine)
    engine.dispose()


def test_timestamps_come_back_timezone_aware_utc(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    local = NOW.astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    with unit_of_work(factory) as session:
        session.add(
            Person(
                external_id="p1",
                display_name="Ann",
                status="active",
                safeguarding=False,
                created_at=local,
                updated_at=local,
            )
        )
    with unit_of_work(factory) as session:
        person = session.scalars(select(Person)).one()
        assert person.created_at == NOW
        assert person.created_at.tzinfo is not None
        assert person.created_at.utcoffset() == timedelta(0)
    engine.dispose()


def test_naive_timestamps_are_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with pytest.raises(Exception, match="naive datetime"), unit_of_work(factory) as session:
        session.add(
            Person(
                external_id="p1",
                display_name="Ann",
                status="active",
                safeguarding=False,
                created_at=NOW.replace(tzinfo=None),
                updated_at=NOW,
            )
        )
        session.flush()
    engine.dispose()


def test_the_unit_of_work_rolls_back_on_error(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        session.add(
            Person(
                external_id="p1",
                display_name="Ann",
                status="active",
                safeguarding=False,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        session.flush()
        raise RuntimeError("boom")
    with unit_of_work(factory) as session:
        assert session.scalars(select(Person)).all() == []
    engine.dispose()


def test_the_audit_chain_detects_an_edited_event(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        for i in range(3):
            audit.append(
                session,
                at=NOW + timedelta(seconds=i),
                actor="t",
                action="x",
                subject=f"s{i}",
                details={"n": i},
            )
    with unit_of_work(factory) as session:
        check = audit.verify(session)
        assert (check.ok, check.events) == (True, 3)
        second = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()[1]
        session.execute(update(AuditEvent).where(AuditEvent.id == second.id).values(details={"n": 99}))
    with unit_of_work(factory) as session:
        check = audit.verify(session)
        assert (check.ok, check.first_bad_id) == (False, second.id)
    engine.dispose()


def test_the_audit_chain_detects_a_deleted_event(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        for i in range(3):
            audit.append(session, at=NOW, actor="t", action="x", subject=f"s{i}")
    with unit_of_work(factory) as session:
        ids = session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
        session.delete(session.get(AuditEvent, ids[1]))
    with unit_of_work(factory) as session:
        assert audit.verify(session).first_bad_id == ids[2]
    engine.dispose()


def _person(external_id: str) -> Person:
    return Person(
        external_id=external_id,
        display_name="Ann",
        status="active",
        safeguarding=False,
        created_at=NOW,
        updated_at=NOW,
    )


def test_after_commit_callbacks_run_only_once_the_commit_succeeded(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    seen: list[tuple[str, int]] = []

    def count_people() -> None:
        with unit_of_work(factory) as other:
            seen.append(("committed", len(other.scalars(select(Person)).all())))

    with unit_of_work(factory) as session:
        session.add(_person("p1"))
        session.flush()
        after_commit(session, count_people)
        after_rollback(session, lambda: seen.append(("rolled back", 0)))
        assert seen == []
    # The callback saw the committed row from another session; the rollback callback was dropped.
    assert seen == [("committed", 1)]
    engine.dispose()


def test_a_rollback_drops_after_commit_callbacks_and_runs_the_undo_ones(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    seen: list[str] = []
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        session.add(_person("p1"))
        session.flush()
        after_commit(session, lambda: seen.append("enqueued"))
        after_rollback(session, lambda: seen.append("undone"))
        raise RuntimeError("boom")
    assert seen == ["undone"]
    with unit_of_work(factory) as session:
        after_commit(session, lambda: seen.append("next unit"))
    assert seen == ["undone", "next unit"]
    engine.dispose()


def test_a_failed_commit_runs_no_after_commit_callback(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        session.add(_person("p1"))
    seen: list[str] = []
    with pytest.raises(IntegrityError), unit_of_work(factory) as session:
        session.add(_person("p1"))  # the unique external id fails at commit time
        after_commit(session, lambda: seen.append("enqueued"))
    assert seen == []
    engine.dispose()
