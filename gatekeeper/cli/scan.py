"""`gatekeeper scan`: what is already public, decided as of today, recorded and watched."""

from __future__ import annotations

from pathlib import Path

import click

from gatekeeper.cli.common import _actor, _emit, _fail, _now, _runtime, cli_unit, plural
from gatekeeper.errors import GatekeeperError


@click.command()
@click.option("--channel", required=True, help="The channel the source publishes on, e.g. website.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line: pictures, problems, then totals."
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the report as CSV to this file (a row per place, then a row per problem).",
)
@click.option("--max-pages", type=click.IntRange(1), help="Visit at most this many pages of a website.")
@click.option("--max-images", type=click.IntRange(1), help="Fetch or read at most this many images.")
@click.option("--watch", is_flag=True, help="Scan this source again on GATEKEEPER_SCAN_SCHEDULE.")
@click.argument("source")
@click.pass_context
def scan(
    ctx: click.Context,
    channel: str,
    as_json: bool,
    csv_path: Path | None,
    max_pages: int | None,
    max_images: int | None,
    watch: bool,
    source: str,
) -> None:
    """Scan SOURCE and decide every image in it for CHANNEL as of today.

    SOURCE is a website's URL (its sitemaps and same-host pages, robots.txt obeyed), a folder (a
    website export, a WordPress uploads tree) or a Facebook, Instagram (JSON) or X archive's zip.
    Renditions of one picture are decided once, on the largest. Every image found is recorded as an
    outside placement; one not publishable today opens a takedown task, and one needing review is
    in the review queue. Scanning the same source again ends placements no longer found and opens
    tasks only for what changed. Exit code 1 when the scan stopped on an error.
    """
    from gatekeeper.scan import report, runner, scanning

    runtime = _runtime(ctx)
    actor = _actor()
    with cli_unit(runtime) as session:
        run_id = runner.start_scan(
            session,
            source,
            channel=channel,
            settings=runtime.settings,
            now=_now(),
            actor=actor,
            max_pages=max_pages,
            max_images=max_images,
        )
        if watch:
            scanning.get_run(session, run_id).source.watch = True
    try:
        runner.run_scan(
            runtime.sessions,
            run_id,
            settings=runtime.settings,
            engine=runtime.faces,
            originals=runtime.originals,
            actor=actor,
        )
    except GatekeeperError as exc:
        _fail(exc)
    with cli_unit(runtime) as session:
        run = scanning.get_run(session, run_id)
        rows = report.findings(session, run_id)
        summary = report.run_json(run, run.source)
        if csv_path is not None:
            with open(csv_path, "w", newline="", encoding="utf-8") as fh:
                report.write_csv(fh, run, rows)
        lines = [report.finding_json(f) for f in rows]
        problems = list(run.problems)
    if as_json:
        for line in lines:
            _emit(line)
        for problem in problems:
            _emit({"problem": problem})
        _emit(summary)
    else:
        for line in lines:
            click.echo(_describe(line))
        if problems:
            click.echo("could not be fetched or read:")
            for problem in problems:
                click.echo(f"  {problem['where']}: {problem['why']}")
        click.echo(_totals(summary))
    if summary["state"] != scanning.DONE:
        ctx.exit(1)


def _describe(line: dict[str, object]) -> str:
    faces = line["faces"]
    assert isinstance(faces, list)
    described = ", ".join(
        f["outcome"]
        + (f" {f['person']}" if f.get("person") else "")
        + (" (covered)" if f.get("covered") else "")
        for f in faces
    )
    reasons = line["reasons"]
    assert isinstance(reasons, list)
    urls = line["urls"]
    assert isinstance(urls, list)
    verdict = str(line["verdict"]).upper()
    head = (
        f"{verdict:<12} {urls[0]}"
        + (f" ({', '.join(reasons)})" if reasons else "")
        + f": {described or 'no faces'}"
    )
    tasks = line["tasks"]
    assert isinstance(tasks, list)
    if tasks:
        head += f" [takedown {plural(len(tasks), 'task')} opened: {', '.join(str(t) for t in tasks)}]"
    return "\n".join([head, *(f"{'':<12} also {url}" for url in urls[1:])])


def _totals(summary: dict[str, object]) -> str:
    totals = summary["totals"]
    assert isinstance(totals, dict)
    counts = ", ".join(f"{totals.get(v, 0)} {v}" for v in ("publishable", "blocked", "review"))
    text = (
        f"scan {summary['scan']}: {plural(int(totals.get('pictures', 0)), 'picture')} "
        f"at {plural(int(totals.get('places', 0)), 'place')} ({counts}); "
        f"{plural(int(totals.get('tasks_opened', 0)), 'takedown task')} opened, "
        f"{plural(int(totals.get('placements_ended', 0)), 'placement')} ended, "
        f"{plural(int(totals.get('problems', 0)), 'problem')}"
    )
    if not summary["complete"]:
        text += "; the scan did not reach everything (see the problems), so nothing was ended for being gone"
    return text
