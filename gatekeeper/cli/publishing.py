"""`gatekeeper publish`, `publications` and `takedowns`: where clean copies go, and come down from."""

from __future__ import annotations

from typing import Any

import click

from gatekeeper.cli.common import _actor, _emit, _fail, _now, _runtime, cli_unit
from gatekeeper.errors import GatekeeperError
from gatekeeper.publishing import placements
from gatekeeper.publishing import takedowns as takedown_service


@click.command("publish")
@click.argument("photo_id", type=int)
@click.option("--channel", required=True, help="The channel the photo was gated for.")
@click.option("--store", "store_url", help="Store URL (default: GATEKEEPER_PUBLISHED_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def publish(ctx: click.Context, photo_id: int, channel: str, store_url: str | None, as_json: bool) -> None:
    """Decide PHOTO_ID again now and, if it passes, write its clean copy to the published store.

    A photo already live there on the channel (its copy still in place) is not written again: the
    command says it is already published. Exit code 1 when the photo does not pass today (nothing
    is written).
    """
    from gatekeeper.publishing import publish as publish_service
    from gatekeeper.storage import open_store

    runtime = _runtime(ctx)
    try:
        store = open_store(store_url) if store_url else runtime.published
    except GatekeeperError as exc:
        _fail(exc)
    with cli_unit(runtime) as session:
        outcome = publish_service.publish_photo(
            session,
            photo_id,
            channel=channel,
            store=store,
            originals=runtime.originals,
            settings=runtime.settings,
            now=_now(),
            actor=_actor(),
            engine=runtime.faces if _has_covered_faces(session, photo_id) else None,
            once=True,
        )
    line = {
        "id": photo_id,
        "published": outcome.published,
        "verdict": outcome.verdict,
        "reasons": list(outcome.reasons),
        "publication": outcome.publication_id,
        "store": outcome.store,
        "key": outcome.key,
        "already_published": outcome.reused,
    }
    if as_json:
        _emit(line)
    elif outcome.reused:
        click.echo(f"already published photo {photo_id}: {outcome.store}/{outcome.key} (nothing new written)")
    elif outcome.published:
        click.echo(f"published photo {photo_id}: {outcome.store}/{outcome.key}")
    else:
        click.echo(f"NOT published photo {photo_id}: {outcome.verdict} ({', '.join(outcome.reasons)})")
    if not outcome.published:
        ctx.exit(1)


def _has_covered_faces(session: Any, photo_id: int) -> bool:
    from gatekeeper.photos.gate import latest_decision

    try:
        return any(f.covered for f in latest_decision(session, photo_id).faces)
    except GatekeeperError:
        return False


@click.group("publications")
def publications() -> None:
    """Record and list where clean copies went."""


@publications.command("add")
@click.argument("photo_id", type=int)
@click.option("--channel", required=True, help="The channel the photo was gated for.")
@click.option("--where", required=True, help="Where it was placed: a page URL or a post reference.")
@click.pass_context
def publications_add(ctx: click.Context, photo_id: int, channel: str, where: str) -> None:
    """Record a placement outside our stores (it becomes a takedown task if it must come down)."""

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        publication, task = placements.record_external(
            session,
            photo_id,
            channel=channel,
            where=where,
            settings=runtime.settings,
            now=_now(),
            actor=_actor(),
        )
    click.echo(f"recorded publication {publication.id}: photo {photo_id} at {where}")
    if task is not None:
        click.echo(f"the photo does not pass today: takedown task {task.id} opened", err=True)


@publications.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per publication per line.")
@click.pass_context
def publications_list(ctx: click.Context, as_json: bool) -> None:
    """Every publication, live or taken down."""
    from sqlalchemy import select

    from consent_db.models import Publication
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        rows = list(session.scalars(select(Publication).order_by(Publication.id)))
    for p in rows:
        line = {
            "id": p.id,
            "photo": p.photo_id,
            "channel": p.channel,
            "where": p.target,
            "external": p.external,
            "published_at": p.published_at.isoformat(),
            "taken_down_at": p.taken_down_at.isoformat() if p.taken_down_at else None,
        }
        if as_json:
            _emit(line)
        else:
            state = f"taken down {p.taken_down_at:%Y-%m-%d}" if p.taken_down_at else "live"
            click.echo(f"{p.id:>6} photo {p.photo_id:<6} {p.channel:<16} {state:<22} {p.target}")


@click.group("takedowns")
def takedowns() -> None:
    """External placements that must be taken down by hand."""


@takedowns.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only tasks not yet done.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task per line.")
@click.pass_context
def takedowns_list(ctx: click.Context, open_only: bool, as_json: bool) -> None:
    """Takedown tasks: who, what, where, since when (and when done, with the note)."""
    from sqlalchemy import select

    from consent_db.models import Person
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        tasks = takedown_service.list_tasks(session, open_only=open_only)
        # Every person named by a task, in one query.
        ids = {t.person_id for t in tasks if t.person_id is not None}
        rows = session.execute(select(Person.id, Person.external_id).where(Person.id.in_(ids)))
        mis_ids: dict[int, str] = {person_id: external_id for person_id, external_id in rows}
        lines = []
        for task in tasks:
            lines.append(
                {
                    "id": task.id,
                    "person": mis_ids.get(task.person_id) if task.person_id is not None else None,
                    "photo": task.photo_id,
                    "channel": task.channel,
                    "where": task.target,
                    "reasons": task.reasons,
                    "since": task.since.isoformat(),
                    "done_at": task.done_at.isoformat() if task.done_at else None,
                    "note": task.note,
                }
            )
    for line in lines:
        if as_json:
            _emit(line)
        else:
            state = f"done {line['done_at'][:10]}: {line['note']}" if line["done_at"] else "OPEN"
            who = line["person"] or "-"
            click.echo(
                f"{line['id']:>5} since {line['since'][:10]} photo {line['photo']} ({who}) "
                f"{line['where']}  {state}"
            )


@takedowns.command("done")
@click.argument("task_id", type=int)
@click.option("--note", required=True, help="What was done (e.g. 'post deleted by the comms team').")
@click.pass_context
def takedowns_done(ctx: click.Context, task_id: int, note: str) -> None:
    """Mark takedown task TASK_ID done."""

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        takedown_service.complete_task(session, task_id, note=note, now=_now(), actor=_actor())
    click.echo(f"takedown task {task_id} done")
