"""The composition root shared by the command line and the web app: settings -> collaborators."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from gatekeeper.config import Settings
from gatekeeper.faces import DlibFaceEngine, FaceEngine
from gatekeeper.storage import BlobStore, open_store

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


class Runtime:
    """Builds each collaborator once, on first use (the face models load only when needed)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def db(self) -> Engine:
        """The database engine, with the schema migrated to head on first use."""
        from consent_db.schema import ensure_current
        from consent_db.session import make_engine

        engine = make_engine(self.settings.database_url)
        ensure_current(engine)
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory for units of work."""
        from consent_db.session import make_session_factory

        return make_session_factory(self.db)

    @cached_property
    def originals(self) -> BlobStore:
        """The private store of original uploads."""
        return open_store(self.settings.originals_url)

    @cached_property
    def published(self) -> BlobStore:
        """The store of published clean copies."""
        return open_store(self.settings.published_url)

    @cached_property
    def faces(self) -> FaceEngine:
        """The face engine (dlib), loaded lazily: it takes a second and a few hundred MB."""
        settings = self.settings
        return DlibFaceEngine(
            min_face_px=settings.min_face_px,
            min_detect_px=settings.min_detect_px,
            probe_step=settings.probe_step,
            max_faces=settings.max_faces,
            time_limit_s=settings.face_time_limit,
        )
