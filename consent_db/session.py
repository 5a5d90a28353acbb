"""Engines, sessions and the unit of work: one commit per entry point, everything else flushes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file gets its folder, foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private_sqlite(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # psycopg (3) is what we ship; a plain postgresql:// URL means it.
        url = str(parsed.set(drivername="postgresql+psycopg"))
    return create_engine(url, pool_pre_ping=True)


def create_private_sqlite(path: Path) -> None:
    """Make a new SQLite file (and its missing folders) readable by this user only, whatever the umask.

    SQLite gives its journal, WAL and shared-memory files the database file's mode.
    """
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)
        os.close(fd)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, decides when transactions begin (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock when the transaction starts: with several processes on one file (gate
    # --workers), a deferred transaction that read first could not upgrade to a write later.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


_AFTER_COMMIT = "gatekeeper.after_commit"
_AFTER_ROLLBACK = "gatekeeper.after_rollback"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the unit of work has committed; a rollback drops it.

    For effects that must follow the data that makes them right: enqueueing a job, making a staged
    file visible. Callbacks run in the order they were added, after the session has closed.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def after_rollback(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` if the unit of work rolls back (to undo an effect made before the commit)."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(callback)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises.

    After a commit the `after_commit` callbacks run; after a rollback the `after_rollback` ones do.
    Every callback runs even if an earlier one raises; the first error is raised afterwards.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        hooks = session.info.pop(_AFTER_ROLLBACK, [])
        session.info.pop(_AFTER_COMMIT, None)
        session.close()
        try:
            _run(hooks)
        except Exception as cleanup:
            exc.add_note(f"undoing after the rollback failed: {cleanup}")
        raise
    hooks = session.info.pop(_AFTER_COMMIT, [])
    session.info.pop(_AFTER_ROLLBACK, None)
    session.close()
    _run(hooks)


def _run(hooks: list[Callable[[], None]]) -> None:
    first: BaseException | None = None
    for hook in hooks:
        try:
            hook()
        except Exception as exc:  # every hook gets its turn; the first failure is reported
            first = first or exc
    if first is not None:
        raise first
