"""Commands for the web app: `serve` and staff accounts (`users ...`).

`serve` is a composition root like wsgi.py: it is the one command that builds the web app.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from gatekeeper.cli.common import _actor, _fail, _now, _runtime, cli_unit
from gatekeeper.errors import GatekeeperError
from gatekeeper.runtime import Runtime
from gatekeeper.staff.roles import Role


def serving_address(host: str, port: int) -> str:
    """The address links carry when serving on `host:port` and no GATEKEEPER_PUBLIC_URL is set."""
    import socket

    if host in ("", "0.0.0.0", "::"):
        # Every interface: the machine's own name is the best guess at what people type.
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def first_start(runtime: Runtime) -> str | None:
    """On a database without accounts, create `admin` and return its one-time password; else None."""
    from consent_db.session import unit_of_work
    from gatekeeper.staff import accounts

    with unit_of_work(runtime.sessions) as session:
        created = accounts.ensure_first_admin(session, now=_now())
    return created.password if created is not None else None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64), help="Request threads.")
@click.option(
    "--jobs/--no-jobs",
    "run_jobs",
    default=None,
    help="Run the background jobs and their scheduler in this process "
    "(default: yes on the embedded queue, no with GATEKEEPER_QUEUE_URL, where workers run them).",
)
@click.option(
    "--job-threads", default=1, show_default=True, type=click.IntRange(1, 16), help="Threads running jobs."
)
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, threads: int, run_jobs: bool | None, job_threads: int
) -> None:
    """Run the web app (staff pages, the public withdrawal form, the API) with waitress.

    On the embedded queue (no GATEKEEPER_QUEUE_URL) the background jobs (gating uploads,
    publishing, takedowns) and the periodic re-check and purge run in this process too, so this one
    command runs everything; with a Redis queue `gatekeeper worker` processes run them instead,
    unless --jobs. On the first start with an empty database an `admin` account is created and its
    one-time password printed; it must be changed at the first sign-in.
    """
    import signal

    from gatekeeper import DEV_SECRET_WARNING, create_app
    from workers import JobQueue

    runtime = _runtime(ctx)
    if run_jobs is None:
        run_jobs = not runtime.settings.queue.url
    settings = runtime.settings
    if not settings.web.public_url:
        settings = settings.with_(web={"public_url": serving_address(host, port)})
    try:
        password = first_start(runtime)
        app = create_app(settings)
    except GatekeeperError as exc:
        _fail(exc)
    # The app's own runtime both sends jobs and runs them: one set of face models in memory.
    queue = JobQueue.of(app.extensions["gatekeeper"])
    # Bound before anything is printed: whoever reads "serving on" can connect at once.
    # Behind trusted proxies (GATEKEEPER_PROXY_HOPS) the app reads X-Forwarded-* itself, counting the
    # hops; waitress would otherwise strip them first and every client would share one rate limit.
    server = make_server(
        app, host=host, port=port, threads=threads, trust_proxy_headers=bool(runtime.settings.web.proxy_hops)
    )
    # Jobs a dead process took with it, or that the queue lost or never got, are sent again.
    queue.start_sweeper()
    consumer = None
    if run_jobs:
        consumer = queue.huey.create_consumer(workers=job_threads, worker_type="thread", periodic=True)
        # Threads only, no signal handlers of its own: this process's signals stop the server.
        consumer.scheduler.start()
        for _, worker_thread in consumer.worker_threads:
            worker_thread.start()
    if password is not None:
        click.echo(
            "first start: created the account 'admin'; sign in and change this one-time password: " + password
        )
    if app.extensions["gatekeeper"].uses_development_secret:
        click.echo(f"warning: {DEV_SECRET_WARNING}", err=True)
    elif not settings.web.secret_key:
        click.echo(f"sessions are signed with the secret in {settings.secret_key_path} (keep it private)")
    jobs = (
        f"background jobs here ({job_threads} thread{'s' if job_threads > 1 else ''})"
        if run_jobs
        else ("background jobs: run `gatekeeper worker`")
    )
    derived = (
        ""
        if runtime.settings.web.public_url
        else " (from --host/--port: set GATEKEEPER_PUBLIC_URL to the address people reach)"
    )
    click.echo(f"withdrawal links carry {settings.web.public_url}{derived}")
    mail = settings.mail
    if mail.configured:
        click.echo(f"email is sent through {mail.smtp_url} from {mail.from_address}")
    else:
        click.echo("email: no SMTP server is configured (GATEKEEPER_SMTP_URL): messages stay queued")
    click.echo(f"serving on http://{host}:{port}/ (withdrawal form: http://{host}:{port}/withdraw); {jobs}")
    sys.stdout.flush()

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
        queue.stop_sweeper()
        if consumer is not None:
            # A job cut short is left running: its lease lapses and the next sweeper sends it again.
            consumer.stop_flag.set()


def make_server(app: Any, *, host: str, port: int, threads: int, trust_proxy_headers: bool = False) -> Any:
    """A bound waitress server for `app` that reads no request body larger than the app accepts."""
    import waitress

    return waitress.create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="gatekeeper",
        clear_untrusted_proxy_headers=not trust_proxy_headers,
        # waitress refuses a body of max_request_body_size bytes or more; Flask accepts up to its limit.
        max_request_body_size=app.config["MAX_CONTENT_LENGTH"] + 1,
    )


@click.group()
def users() -> None:
    """Staff accounts of the web app and the API."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice([role.value for role in Role]), help="What the account may do."
)
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str) -> None:
    """Create account NAME and print its one-time password (changed at the first sign-in)."""
    from gatekeeper.staff import accounts

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        created = accounts.create_user(session, name, role, now=_now(), actor=_actor())
    click.echo(
        f"created {name} ({role}); one-time password, to be changed at the first sign-in: {created.password}"
    )


@users.command("email")
@click.argument("name")
@click.argument("address", required=False)
@click.option("--remove", is_flag=True, help="Take the account's email address away (no more alerts).")
@click.pass_context
def users_email(ctx: click.Context, name: str, address: str | None, remove: bool) -> None:
    """Set the email address NAME's staff alerts go to (ADDRESS), or take it away (--remove)."""
    from gatekeeper.staff import accounts

    if remove == (address is not None):
        raise click.UsageError("give an ADDRESS, or --remove")
    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        user = accounts.set_email(session, name, address, now=_now(), actor=_actor())
    click.echo(f"{name}: alerts go to {user.email}" if user.email else f"{name}: no email, so no alerts")


@users.command("token")
@click.argument("name")
@click.pass_context
def users_token(ctx: click.Context, name: str) -> None:
    """Issue an API token for NAME (replacing any earlier one); it is shown only this once."""
    from gatekeeper.staff import accounts

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        token = accounts.issue_api_token(session, name, now=_now(), actor=_actor())
    click.echo(f"API token for {name} (shown once; send it as 'Authorization: Bearer TOKEN'): {token}")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List staff accounts with their roles."""
    from sqlalchemy import select

    from consent_db.models import StaffUser
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        for user in session.scalars(select(StaffUser).order_by(StaffUser.username)):
            state = "active" if user.active else "disabled"
            token = "token" if user.api_token_hash else "no token"
            email = user.email or "no email"
            click.echo(f"{user.username:<24} {user.role:<14} {state}, {token}, {email}")
