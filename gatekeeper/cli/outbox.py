"""`gatekeeper outbox`: the emails waiting, sent, failed or uncertain, and what admins do about them."""

from __future__ import annotations

from html import escape

import click

from gatekeeper.cli.common import _actor, _emit, _now, _runtime, cli_unit


@click.group("outbox")
def outbox() -> None:
    """Emails: list them, send a failed or uncertain one again, mark an uncertain one sent.

    Messages are sent by the background jobs (`gatekeeper worker`, or `serve` on the embedded
    queue) through GATEKEEPER_SMTP_URL; without it they stay queued until it is set.
    """


@outbox.command("list")
@click.option("--failed", "attention_only", is_flag=True, help="Only failed and uncertain messages.")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=200, show_default=True, help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message per line.")
@click.pass_context
def list_outbox(ctx: click.Context, attention_only: bool, limit: int, as_json: bool) -> None:
    """Messages, failed and uncertain first, then waiting, then sent (newest first in each), with
    the SMTP server's last answer."""
    from gatekeeper.mail import outbox as mail_outbox

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        lines = mail_outbox.list_messages(session, attention_only=attention_only, limit=limit)
    for line in lines:
        if as_json:
            _emit(line.as_json())
            continue
        answer = f"\n       {line.answer}" if line.answer else ""
        click.echo(
            f"{line.id:>6} {line.state:<9} {line.created_at:%Y-%m-%d %H:%M} {line.kind} to "
            f"{', '.join(line.recipients)}: {line.subject} (attempts={line.attempts}){answer}"
        )
    if not as_json and not runtime.settings.mail.configured:
        click.echo("no SMTP server is configured (GATEKEEPER_SMTP_URL): messages stay queued", err=True)


@outbox.command("resend")
@click.argument("message_id", type=int)
@click.pass_context
def resend(ctx: click.Context, message_id: int) -> None:
    """Send a failed or uncertain message again (look for an uncertain one's Message-ID in the
    mailbox first: it may have been sent)."""
    from gatekeeper.mail import outbox as mail_outbox

    with cli_unit(_runtime(ctx)) as session:
        line = mail_outbox.resend(session, message_id, now=_now(), actor=_actor())
    click.echo(f"message {line.id} queued again ({line.message_id})")


@outbox.command("mark-sent")
@click.argument("message_id", type=int)
@click.pass_context
def mark_sent(ctx: click.Context, message_id: int) -> None:
    """Record an uncertain message as sent, once its Message-ID is found in the mailbox."""
    from gatekeeper.mail import outbox as mail_outbox

    with cli_unit(_runtime(ctx)) as session:
        line = mail_outbox.mark_sent(session, message_id, now=_now(), actor=_actor())
    click.echo(f"message {line.id} recorded as sent")


@outbox.command("test")
@click.argument("address")
@click.pass_context
def send_test(ctx: click.Context, address: str) -> None:
    """Queue a short test message to ADDRESS, to check the SMTP settings (a worker sends it)."""
    from gatekeeper.mail import outbox as mail_outbox

    runtime = _runtime(ctx)
    mail = runtime.settings.mail
    name = mail.org_name or "Consent Gatekeeper"
    with cli_unit(runtime) as session:
        message = mail_outbox.queue_message(
            session,
            to=[address],
            subject=f"Test message from {name}",
            text=f"This is a test message from {name}'s Consent Gatekeeper. Nothing needs doing.\n",
            html=f"<p>This is a test message from {escape(name)}'s Consent Gatekeeper. "
            "Nothing needs doing.</p>",
            kind="test",
            settings=mail,
            now=_now(),
            actor=_actor(),
        )
        line = (message.id, message.message_id)
    click.echo(f"message {line[0]} queued ({line[1]})")
    if not mail.configured:
        click.echo(
            "no SMTP server is configured (GATEKEEPER_SMTP_URL): it stays queued until one is", err=True
        )
