"""The composition root shared by the command line and the web app: settings -> collaborators."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gatekeeper.config import DEV_SECRET, FaceSettings, Settings
from gatekeeper.errors import ConfigError
from gatekeeper.faces import DlibFaceEngine, FaceEngine
from gatekeeper.storage import BlobStore, LocalBlobStore, open_store
from gatekeeper.storage.base import read_or_create_private

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from gatekeeper.queueing import JobSender


class Runtime:
    """Builds each collaborator once, on first use (the face models load only when needed).

    `sender` builds this process's job sender from the runtime (the entry points give
    `workers.JobQueue`); it is built on first use. Without one, jobs that use cases request are
    recorded but not sent (the sweeper of a process that has a queue sends them).

    `faces` is the face engine to use; without one, the dlib engine the settings describe is built
    on first use (face_engine). Only this runtime uses it: processes that compose their own runtime
    (`gate --workers`, `worker`) build their own engine.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        migrate: bool = True,
        face_workers: int | None = None,
        sender: Callable[[Runtime], JobSender] | None = None,
        faces: FaceEngine | None = None,
    ) -> None:
        self.settings = settings
        # Processes one photo's face analysis may use: None, every core (the command line);
        # long-lived workers pass their setting (default 1), so N workers never fork N x cores.
        self.face_workers = face_workers
        # Long-lived processes (workers) never migrate: `gatekeeper db upgrade` is the explicit step,
        # so several processes starting together never race to change the schema.
        self.migrate = migrate
        self._make_sender = sender
        self._sender: JobSender | None = None
        self._sender_lock = threading.Lock()
        self._faces = faces

    @cached_property
    def db(self) -> Engine:
        """The database engine; with `migrate`, the schema is migrated to head on first use.

        Raises ConfigError when the schema is behind and this process may not migrate it.
        """
        from consent_db.schema import ensure_current, is_current
        from consent_db.session import make_engine

        engine = make_engine(self.settings.database_url)
        if self.migrate:
            ensure_current(engine)
        elif not is_current(engine):
            engine.dispose()
            raise ConfigError("the database schema is not current: run `gatekeeper db upgrade` first")
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory for units of work."""
        from consent_db.session import make_session_factory
        from gatekeeper.queueing import SEND_JOB

        factory = make_session_factory(self.db)
        if self._make_sender is not None:
            # Use cases that make a job necessary record it; this sends it once their work commits.
            factory.configure(info={SEND_JOB: self.send_job})
        return factory

    def queue(self) -> JobSender:
        """This process's job sender (its queue), built from this runtime on first use.

        Raises RuntimeError when the runtime was composed without one.
        """
        if self._make_sender is None:
            raise RuntimeError("this runtime was composed without a job queue (Runtime(..., sender=...))")
        with self._sender_lock:
            if self._sender is None:
                self._sender = self._make_sender(self)
            return self._sender

    def send_job(self, kind: str, job_id: int) -> None:
        """Put a committed job on the queue; if the queue cannot be reached, the sweeper sends it later."""
        self.queue().send(kind, job_id)

    @cached_property
    def secret_key(self) -> str:
        """The web app's secret: configured, else the instance's secret file, made on first use (0600).

        Raises ConfigError when the file cannot be read or made.
        """
        if self.settings.web.secret_key:
            return self.settings.web.secret_key
        path = self.settings.secret_key_path
        try:
            raw = read_or_create_private(path, lambda: secrets.token_urlsafe(48).encode("ascii"))
        except OSError as exc:
            raise ConfigError(f"cannot read or create the secret key file {path}: {exc.strerror}") from exc
        secret = raw.decode("ascii", "replace").strip()
        if len(secret) < 32:
            raise ConfigError(f"the secret key file {path} holds fewer than 32 characters")
        return secret

    @property
    def uses_development_secret(self) -> bool:
        """True when sessions are signed with the fixed, published development secret."""
        return self.settings.web.secret_key == DEV_SECRET

    @cached_property
    def originals(self) -> BlobStore:
        """The private store of original uploads."""
        return open_store(self.settings.storage.originals_url)

    @cached_property
    def published(self) -> BlobStore:
        """The store of published clean copies (private inside the instance folder, like everything there)."""
        store = open_store(self.settings.storage.published_url)
        if isinstance(store, LocalBlobStore) and not store.root.is_relative_to(self.settings.instance_path):
            # A folder of its own, which a web server may serve: its files take the umask's modes.
            store.private = False
        return store

    @cached_property
    def faces(self) -> FaceEngine:
        """The face engine given, else dlib's, loaded lazily (it takes a second and a few hundred MB)."""
        if self._faces is not None:
            return self._faces
        return face_engine(self.settings.faces, workers=self.face_workers)


def face_engine_options(settings: FaceSettings) -> dict[str, Any]:
    """The DlibFaceEngine options `settings` set (the worker count is each process's own)."""
    return {
        "min_face_px": settings.min_face_px,
        "min_detect_px": settings.min_detect_px,
        "probe_step": settings.probe_step,
        "max_faces": settings.max_faces,
        "time_limit_s": settings.time_limit,
    }


def face_engine(settings: FaceSettings, *, workers: int | None = None) -> DlibFaceEngine:
    """The dlib face engine `settings` describe, sharing one photo's work among `workers` processes
    (None: one per core); raises FaceError when the models cannot load."""
    return DlibFaceEngine(**face_engine_options(settings), workers=workers)
