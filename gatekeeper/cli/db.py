"""`gatekeeper db`: the database schema."""

from __future__ import annotations

import click

from gatekeeper.cli.common import _runtime


@click.group("db")
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (run once per deploy, before workers start)."""
    from consent_db.schema import upgrade
    from consent_db.session import make_engine

    engine = make_engine(_runtime(ctx).settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    click.echo("database schema is current")
