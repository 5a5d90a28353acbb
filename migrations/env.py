"""Alembic environment: the engine comes from the caller or from GATEKEEPER_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from consent_db.models import Base
from consent_db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _engine():  # type: ignore[no-untyped-def]
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("GATEKEEPER_DATABASE_URL")
    if not url:
        raise SystemExit("set GATEKEEPER_DATABASE_URL (or sqlalchemy.url) to run migrations")
    return make_engine(url)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or os.environ.get("GATEKEEPER_DATABASE_URL"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
