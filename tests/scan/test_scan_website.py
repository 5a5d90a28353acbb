"""Scanning a website: every photo shown without consent is flagged, renditions are one picture, and
the crawler stays on the host given, within robots.txt.

The site (tests/scan_helpers.py) is served from 127.0.0.1 with a second server on another port that
must never be asked anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import factories
from scan_helpers import Site
from sqlalchemy import select

from consent_db.models import Person, Publication, TakedownTask
from consent_db.session import unit_of_work
from gatekeeper import policy
from gatekeeper.runtime import Runtime
from helpers import run
from workers import JobQueue

UPLOADS = "/wp-content/uploads/2024/05"


def scan_json(rt: Runtime, source: str, *args: str, channel: str = "website") -> list[dict[str, Any]]:
    result = run(rt, "scan", "--channel", channel, "--json", *args, source)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def pictures(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The report's pictures by the path of the first URL each was found at."""
    found = {}
    for line in lines:
        if "urls" in line:
            for url in line["urls"]:
                found[url.split("//", 1)[-1].split("/", 1)[-1]] = line
    return found


def test_a_website_scan_flags_every_photo_shown_without_consent(enrolled: Runtime, site: Site) -> None:
    lines = scan_json(enrolled, site.url + "/")
    found = pictures(lines)
    summary = lines[-1]
    assert summary["state"] == "done" and summary["kind"] == "website"

    # Every photo of someone without consent for the website today: Biden (print only) and Rose
    # (expired); the consented ones pass, and so does the picture with nobody in it.
    assert found["img/biden.jpg"]["verdict"] == policy.Verdict.BLOCKED
    assert found["img/biden.jpg"]["reasons"] == [policy.NO_CONSENT_FOR_CHANNEL]
    assert [f["person"] for f in found["img/biden.jpg"]["faces"]] == ["biden"]
    assert found["img/full/rose.jpg"]["verdict"] == policy.Verdict.BLOCKED
    assert found["img/full/rose.jpg"]["reasons"] == [policy.CONSENT_EXPIRED]
    for name in (f"{UPLOADS[1:]}/sports-day.jpg", "img/kit.jpg", "img/landscape.png"):
        assert found[name]["verdict"] == policy.Verdict.PUBLISHABLE, name
    assert found["img/landscape.png"]["faces"] == []
    blocked = [line for line in lines if line.get("verdict") == policy.Verdict.BLOCKED]
    assert len(blocked) == 2 and summary["totals"]["blocked"] == 2 and summary["totals"]["publishable"] == 3

    # Renditions: three WordPress sizes of one upload are one picture, decided on the largest;
    # a WebP (picture/source) and a JPEG (img, og:image) of one photo are one picture too.
    sports = found[f"{UPLOADS[1:]}/sports-day.jpg"]
    assert sorted(u.rsplit("/", 1)[1] for u in sports["urls"]) == [
        "sports-day-1024x683.jpg",
        "sports-day-300x200.jpg",
        "sports-day.jpg",
    ]
    assert [f["person"] for f in sports["faces"]] == ["obama"]
    largest = max(sports["places"], key=lambda p: p["width"])
    assert largest["url"].endswith("/sports-day.jpg")
    assert sorted(u.rsplit("/", 1)[1] for u in found["img/kit.jpg"]["urls"]) == ["kit.jpg", "kit.webp"]
    assert found["img/biden.jpg"]["places"][0]["page"] == f"{site.url}/news/"  # a CSS background
    assert found["img/full/rose.jpg"]["places"][0]["page"] == f"{site.url}/news/"  # a linked full size

    # What could not be fetched or read, and why.
    problems = {p["problem"]["where"].split("/", 3)[-1]: p["problem"] for p in lines if "problem" in p}
    assert problems["img/missing.jpg"]["code"] == "http_error" and "404" in problems["img/missing.jpg"]["why"]
    assert problems["img/fake.jpg"]["code"] == "unsupported_media"
    assert "Content-Type (image/jpeg)" in problems["img/fake.jpg"]["why"]
    assert problems["img/huge.png"]["code"] == "image_too_large"
    assert problems["away"]["code"] == "off_host_redirect"
    assert problems["tracker.jpg"]["code"] == "off_host"

    # Manners and safety: robots.txt first, nothing under /private/, the redirect on the host
    # followed, nothing asked of the other port, and every request names the tool.
    paths = site.server.requests.paths()
    assert paths[0] == "/robots.txt"
    assert not [p for p in paths if p.startswith("/private/")]
    assert "/gallery/" in paths and "/img/landscape.png" in paths
    assert site.other.requests.paths() == []
    assert {a.split("/", 1)[0] for a in site.server.requests.agents()} == {"ConsentGatekeeperScan"}
    assert all(paths.count(p) == 1 for p in ("/", "/news/", "/gallery/", "/img/kit.jpg"))

    # Each place of a blocked picture is an outside placement with an open takedown task; Biden's
    # names him. Nothing was published.
    with unit_of_work(enrolled.sessions) as session:
        tasks = {t.target: t for t in session.scalars(select(TakedownTask))}
        biden = session.scalar(select(Person).where(Person.external_id == "biden"))
        placements = list(session.scalars(select(Publication)))
    assert set(tasks) == {f"{site.url}/img/biden.jpg", f"{site.url}/img/full/rose.jpg"}
    assert biden is not None and tasks[f"{site.url}/img/biden.jpg"].person_id == biden.id
    assert all(p.external and p.store is None for p in placements)
    assert len(placements) == 8
    assert list(enrolled.published.iter_keys()) == []


def test_a_withdrawal_after_a_scan_opens_a_task_naming_the_url_and_a_rescan_only_what_changed(
    enrolled: Runtime, site: Site, tmp_path: Path
) -> None:
    first = scan_json(enrolled, site.url + "/")
    assert first[-1]["totals"]["tasks_opened"] == 2

    with unit_of_work(enrolled.sessions) as session:
        kit = session.scalar(select(Person).where(Person.external_id == "kit_harington"))
        assert kit is not None
        factories.consent(session, kit, "website", action="withdraw")
        kit_id = kit.id
    JobQueue.of(enrolled).drain(max_wait=5)  # the withdrawal's takedown job
    with unit_of_work(enrolled.sessions) as session:
        kit_tasks = list(session.scalars(select(TakedownTask).where(TakedownTask.person_id == kit_id)))
    assert sorted(t.target for t in kit_tasks) == [f"{site.url}/img/kit.jpg", f"{site.url}/img/kit.webp"]
    assert all(policy.CONSENT_WITHDRAWN in t.reasons and t.done_at is None for t in kit_tasks)

    # Biden's photo is taken off the site; the next scan ends its placement (and its task), keeps
    # the rest and opens no task twice.
    news = tmp_path / "site" / "news" / "index.html"
    news.write_text(news.read_text().replace("/img/biden.jpg", "/img/none.jpg"))
    (tmp_path / "site" / "img" / "biden.jpg").unlink()
    second = scan_json(enrolled, site.url + "/")
    totals = second[-1]["totals"]
    assert (totals["tasks_opened"], totals["placements_ended"], totals["new_places"]) == (0, 1, 0)
    assert second[-1]["complete"] is True
    with unit_of_work(enrolled.sessions) as session:
        biden_task = session.scalar(
            select(TakedownTask).where(TakedownTask.target == f"{site.url}/img/biden.jpg")
        )
        live = session.scalars(select(Publication.target).where(Publication.taken_down_at.is_(None))).all()
    assert biden_task is not None and biden_task.done_at is not None
    assert biden_task.note is not None and "no longer found" in biden_task.note
    assert f"{site.url}/img/biden.jpg" not in live and f"{site.url}/img/kit.jpg" in live
