"""`gatekeeper consent`: grant, withdraw, object, biometric answers, and who is due for re-consent."""

from __future__ import annotations

from datetime import datetime

import click

from gatekeeper import policy, queueing
from gatekeeper.cli.common import _actor, _emit, _now, _runtime, cli_unit


@click.group()
def consent() -> None:
    """Grant or withdraw one person's consent."""


@consent.command("grant")
@click.argument("external_id")
@click.option("--channel", required=True, help="Channel, e.g. website or social_media:instagram.")
@click.option(
    "--granted-by",
    type=click.Choice(policy.GRANTED_BY),
    required=True,
    help="Who gave the consent (for a learner under the age threshold: parent or guardian).",
)
@click.option("--granted-by-name", help="Name of the parent or guardian who gave it.")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), help="Last day the consent is valid.")
@click.option(
    "--named",
    type=click.Choice(policy.NAMED),
    default=None,
    help="Whether the person may be named in captions [default: as the last grant for the channel, else no].",
)
@click.option(
    "--after-leaving", is_flag=True, help="The consent continues after the person leaves (otherwise it ends)."
)
@click.option("--evidence", help="Where the evidence is kept (a form number, a document or email reference).")
@click.option("--wording", help="The version of the consent wording that was agreed to.")
@click.pass_context
def consent_grant(
    ctx: click.Context,
    external_id: str,
    channel: str,
    granted_by: str,
    granted_by_name: str | None,
    until: datetime | None,
    named: str | None,
    after_leaving: bool,
    evidence: str | None,
    wording: str | None,
) -> None:
    """Record that EXTERNAL_ID consents to appear on a channel, from now.

    Warns when the person is still not publishable on the channel (for example a minor's own consent).
    """
    from gatekeeper.consent import records as consent_service

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        grant = consent_service.grant_consent(
            session,
            external_id,
            channel,
            settings=runtime.settings,
            now=_now(),
            actor=_actor(),
            granted_by=granted_by,
            granted_by_name=granted_by_name,
            valid_until=until.date() if until else None,
            named=named,
            survives_leaving=after_leaving,
            evidence_ref=evidence,
            wording_version=wording,
        )
    click.echo(f"granted: {external_id} on {channel} (named: {grant.record.named})")
    if grant.blockers:
        click.echo(
            f"warning: {external_id} is still NOT publishable on {channel}: {', '.join(grant.blockers)}",
            err=True,
        )


@consent.command("withdraw")
@click.argument("external_id")
@click.option(
    "--channel", "channels", multiple=True, help="Channel to withdraw (repeatable); none: every channel."
)
@click.pass_context
def consent_withdraw(ctx: click.Context, external_id: str, channels: tuple[str, ...]) -> None:
    """Withdraw EXTERNAL_ID's consent for some or all channels, from now."""
    from gatekeeper.consent import records as consent_service

    runtime = _runtime(ctx)
    job_id = None
    with cli_unit(runtime) as session:
        added = consent_service.withdraw_consent(
            session, external_id, channels, settings=runtime.settings, now=_now(), actor=_actor()
        )
        if added:  # the takedown job, sent after the commit
            job_id = queueing.takedown_requested(session, added[0].person_id)
    names = ", ".join(r.channel for r in added) or "nothing (already withdrawn)"
    queued = f"; takedown job {job_id} queued" if job_id is not None else ""
    click.echo(f"withdrawn: {external_id} from {names}{queued}")


@consent.command("biometric")
@click.argument("external_id")
@click.argument("action", type=click.Choice(policy.BIOMETRIC_ACTIONS))
@click.option("--by", "by", help="Name of who answered (a parent's name; the person themselves: leave out).")
@click.option(
    "--role",
    type=click.Choice(policy.GRANTED_BY),
    help="Who answered: self, parent or guardian [grant: required; object: parent; refuse: self; "
    "withdraw: every grant in force unless given].",
)
@click.pass_context
def consent_biometric(
    ctx: click.Context, external_id: str, action: str, by: str | None, role: str | None
) -> None:
    """Record EXTERNAL_ID's biometric consent: grant, object (a parent), refuse (the person), withdraw.

    When the answers no longer allow face matching (any objection or refusal; no parent's consent
    for a child under POFA rules), every template is deleted at once and audited.
    """
    from gatekeeper.consent import records as consent_service

    if action == "grant" and role is None:
        raise click.UsageError("grant needs --role self, parent or guardian")
    if action == "object" and role is None:
        role = "parent"
    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        done = consent_service.record_biometric_answer(
            session,
            external_id,
            action,
            given_by=role,
            name=by,
            settings=runtime.settings,
            now=_now(),
            actor=_actor(),
        )
    if action == "withdraw" and not done.records:
        click.echo(f"biometric consent: nothing to withdraw (no grant in force): {external_id}")
    else:
        click.echo(f"biometric consent {action}: {external_id} ({len(done.records)} record(s))")
    state = f"NOT allowed ({', '.join(done.blockers)})" if done.blockers else "allowed"
    click.echo(f"face matching {state}; {done.templates_deleted} template(s) deleted")


@consent.command("object")
@click.argument("external_id")
@click.option("--channel", required=True, help="The channel objected to.")
@click.pass_context
def consent_object(ctx: click.Context, external_id: str, channel: str) -> None:
    """Record EXTERNAL_ID's objection to publication on a channel, from now.

    On a public-task or legitimate-interests channel it is recorded as an objection; on a consent
    channel as a withdrawal. Either blocks at once.
    """
    from gatekeeper.consent import records as consent_service

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        record = consent_service.object_to_publication(
            session, external_id, channel, settings=runtime.settings, now=_now(), actor=_actor()
        )
    recorded = (
        "an objection" if record.action == "object" else "a withdrawal (the channel's basis is consent)"
    )
    click.echo(f"objection recorded as {recorded}: {external_id} on {channel}")


@consent.command("due")
@click.option(
    "--within", "within", type=click.IntRange(0, 3660), default=30, show_default=True, help="Days ahead."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def consent_due(ctx: click.Context, within: int, as_json: bool) -> None:
    """List who needs re-consent (coming of age) or whose consent expires within DAYS, for letters."""
    from consent_db.session import unit_of_work
    from gatekeeper.consent import due as due_service

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        items = due_service.consent_due(session, settings=runtime.settings, now=_now(), within_days=within)
    for item in items:
        if as_json:
            _emit(
                {
                    "external_id": item.external_id,
                    "name": item.name,
                    "channel": item.channel,
                    "why": item.why,
                    "due": item.due.isoformat(),
                    "overdue": item.overdue,
                }
            )
        else:
            late = " (overdue)" if item.overdue else ""
            click.echo(f"{item.due.isoformat()}  {item.external_id:<16} {item.channel:<24} {item.why}{late}")
    if not as_json:
        click.echo(f"{len(items)} due within {within} days", err=True)


def _ids(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@consent.command("request")
@click.option(
    "--channels",
    "channels",
    help="Comma-separated channels to ask about [default: every configured channel].",
)
@click.option(
    "--people", "people", multiple=True, metavar="ID[,ID...]", help="The people to ask (repeatable)."
)
@click.option(
    "--due", is_flag=True, help="Everyone whose consent expires or lapses within the reminder period."
)
@click.option(
    "--all-without-answer",
    "without_answer",
    is_flag=True,
    help="Every active person with no answer recorded.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def consent_request(
    ctx: click.Context,
    channels: str | None,
    people: tuple[str, ...],
    due: bool,
    without_answer: bool,
    as_json: bool,
) -> None:
    """Email each person's parents or guardians (or the person, from the age threshold) a personal
    link to the online consent form. Exit code 1 when someone could not be asked."""
    from gatekeeper.consent import forms

    if not (people or due or without_answer):
        raise click.UsageError("give --people, --due or --all-without-answer")
    runtime = _runtime(ctx)
    chosen = [c.strip() for c in (channels or "").split(",") if c.strip()]
    with cli_unit(runtime) as session:
        report = forms.request_consent(
            session,
            external_ids=_ids(people),
            due=due,
            without_answer=without_answer,
            channels=chosen,
            settings=runtime.settings,
            now=_now(),
            actor=_actor(),
        )
    if as_json:
        _emit(report.as_json())
    else:
        for external_id, links in report.sent:
            click.echo(f"sent    {external_id:<16} {links} link(s)")
        for external_id, why in report.skipped:
            click.echo(f"skipped {external_id:<16} {why}")
        click.echo(f"{len(report.sent)} asked, {len(report.skipped)} could not be asked", err=True)
        if not runtime.settings.mail.configured:
            click.echo(
                "warning: no SMTP server is set (GATEKEEPER_SMTP_URL): the messages stay queued", err=True
            )
    if report.skipped:
        ctx.exit(1)


@consent.command("remind")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def consent_remind(ctx: click.Context, as_json: bool) -> None:
    """Send the reminders whose day has come (the scheduler does this daily), once per deadline."""
    from gatekeeper.consent import forms

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        report = forms.send_reminders(session, settings=runtime.settings, now=_now(), actor=_actor())
    if as_json:
        _emit(
            {
                "sent": [{"external_id": e, "deadline": d} for e, d in report.sent],
                "skipped": [{"external_id": e, "why": w} for e, w in report.skipped],
            }
        )
        return
    for external_id, deadline in report.sent:
        click.echo(f"reminded {external_id:<16} {deadline}")
    for external_id, why in report.skipped:
        click.echo(f"skipped  {external_id:<16} {why}")
