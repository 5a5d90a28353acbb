"""`gatekeeper keys`: the keys face templates are encrypted with at rest."""

from __future__ import annotations

import click

from gatekeeper.cli.common import _actor, _fail, _now, _runtime
from gatekeeper.errors import GatekeeperError


@click.group()
def keys() -> None:
    """The keys that encrypt face templates at rest (AES-256-GCM)."""


@keys.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """Encrypt every face template under a new key (templates stored in the clear included).

    With the instance's key file a new key is made and, once every template is encrypted under it,
    the old ones are dropped. With GATEKEEPER_TEMPLATE_KEY, templates are encrypted under its first
    key; remove the older ones from the setting afterwards. Run it with the service stopped.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.people import templates

    runtime = _runtime(ctx)
    settings = runtime.settings
    try:
        rotated = templates.start_rotation(settings)
        with unit_of_work(runtime.sessions) as session:
            done = templates.reseal_all(session, rotated, now=_now(), actor=_actor())
        templates.finish_rotation(settings, rotated)
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(
        f"{done.resealed} of {done.total} face templates encrypted under the new key "
        f"({done.were_plain} were stored in the clear)"
    )
    if settings.template_key:
        click.echo("every template opens with the first key of GATEKEEPER_TEMPLATE_KEY: remove the others")
    else:
        click.echo(f"the key file {settings.template_key_path} now holds only the new key")


@keys.command("new")
def keys_new() -> None:
    """Print a fresh random key, for GATEKEEPER_TEMPLATE_KEY (put it first; keep the old one after it)."""
    from gatekeeper.people.templates import encode_key, new_key

    click.echo(encode_key(new_key()))
