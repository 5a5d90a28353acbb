"""The instance folder is private, `serve` makes its own secret, the server reads no more than the app.

File modes are checked with the most permissive umask (0): what the service makes must be
private because it says so, not because the umask happened to be strict.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from engines import compose_app, recorded
from live_server import LiveServer
from web_helpers import csrf, make_account, sign_in

from gatekeeper import create_app
from gatekeeper.cli.staff import first_start, make_server
from gatekeeper.config import DEV_SECRET, FaceSettings, PolicySettings, Settings, StorageSettings, WebSettings
from helpers import person_row, run, write_csv


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(home: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(home.stat().st_mode)}
    for path in home.rglob("*"):
        found[path.relative_to(home).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.slow
def test_the_instance_folder_and_everything_in_it_is_private_whatever_the_umask(
    tmp_path: Path, corpus: Any
) -> None:
    from gatekeeper.web.photos import job_queue

    home = tmp_path / "new" / "instance"
    settings = Settings(
        home=home,
        policy=PolicySettings(dpia_required=False),
        faces=FaceSettings(probe_step=90, time_limit=600.0),
    )
    with umask(0):
        app = compose_app(settings, recorded(settings))
        rt = app.extensions["gatekeeper"]
        try:
            assert first_start(rt) is not None
            csv = write_csv(
                tmp_path / "p.csv", [person_row("biden", corpus.faces_dir / "biden/biden.jpg", tmp_path)]
            )
            assert run(rt, "people", "import", csv).exit_code == 0
            client = app.test_client()
            sign_in(client, make_account(rt, "consent_admin"))
            photo = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
            response = client.post(
                "/upload",
                data={
                    "csrf_token": csrf(client, "/upload"),
                    "channel": "website",
                    "photos": [(io.BytesIO(photo), "biden2.jpg")],
                },
            )
            assert response.status_code == 302, response.get_data(as_text=True)
            with app.app_context():
                assert job_queue().drain() >= 1
            preview = client.post(
                "/people/import",
                data={
                    "csrf_token": csrf(client, "/people/import"),
                    "file": (io.BytesIO(csv.read_bytes()), "p.csv"),
                },
            )
            assert preview.status_code == 200
        finally:
            rt.db.dispose()
    modes = _modes(home)
    for name in ("gatekeeper.db", "secret_key", "template_keys", "queue.db"):
        assert name in modes, sorted(modes)
    assert any(name.startswith("originals/") and not (home / name).is_dir() for name in modes), sorted(modes)
    assert any(name.startswith("uploads/imports/") for name in modes), sorted(modes)
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (home / name).is_dir() else 0o600)
    }
    assert wrong == {}
    # The folders above the instance that it had to make are private too.
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_the_app_makes_its_own_secret_once_and_a_configured_one_makes_no_file(tmp_path: Path) -> None:
    home = tmp_path / "instance"
    first = create_app(Settings(home=home))
    secret = (home / "secret_key").read_text().strip()
    assert len(secret) >= 48 and secret != DEV_SECRET
    assert first.config["SECRET_KEY"] == secret
    assert stat.S_IMODE((home / "secret_key").stat().st_mode) == 0o600
    # The next start signs with the same secret: sessions survive a restart.
    assert create_app(Settings(home=home)).config["SECRET_KEY"] == secret
    other = tmp_path / "configured"
    app = create_app(
        Settings(home=other, web=WebSettings(secret_key="from the vault, long and random enough"))
    )
    assert app.config["SECRET_KEY"] == "from the vault, long and random enough"
    assert not (other / "secret_key").exists()


@pytest.mark.slow
def test_serve_never_signs_with_a_published_secret_and_says_so_when_told_to(tmp_path: Path) -> None:
    home = tmp_path / "instance"
    with umask(0):
        server = LiveServer(home)
    try:
        secret = (home / "secret_key").read_text().strip()
        assert len(secret) >= 48 and secret != DEV_SECRET
        assert stat.S_IMODE((home / "secret_key").stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert any(f"the secret in {home / 'secret_key'}" in line for line in server.output), server.output
        assert not any("development mode" in line for line in server.output)
    finally:
        server.stop()
    # A second start keeps the secret it made.
    again = LiveServer(home)
    again.stop()
    assert (home / "secret_key").read_text().strip() == secret
    # The fixed development secret, asked for: every start says so.
    for _ in range(2):
        dev = LiveServer(tmp_path / "dev", GATEKEEPER_SECRET_KEY=DEV_SECRET)
        dev.stop()
        assert any("development mode" in line and "published" in line for line in dev.output), dev.output
    assert not (tmp_path / "dev" / "secret_key").exists()


def test_the_server_reads_no_larger_body_than_the_app_accepts(tmp_path: Path) -> None:
    from waitress.parser import HTTPRequestParser
    from waitress.utilities import RequestEntityTooLarge

    app = create_app(Settings(home=tmp_path / "instance"))
    limit = app.config["MAX_CONTENT_LENGTH"]
    server = make_server(app, host="127.0.0.1", port=0, threads=1)
    try:

        def parse(length: int) -> HTTPRequestParser:
            # The parser each of the server's connections reads requests with, on its settings.
            parser = HTTPRequestParser(server.adj)
            head = f"POST /api/v1/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n"
            parser.received(head.encode())
            return parser

        # One byte over the app's limit: refused from the header alone, before any of the body is read.
        over = parse(limit + 1)
        assert isinstance(over.error, RequestEntityTooLarge) and over.completed
        at = parse(limit)
        assert at.error is None and not at.completed  # waits for the body
    finally:
        server.close()


def test_a_published_folder_outside_the_instance_keeps_the_umask_for_the_web_server(tmp_path: Path) -> None:
    from gatekeeper.runtime import Runtime

    site = tmp_path / "site"
    rt = Runtime(Settings(home=tmp_path / "instance", storage=StorageSettings(published_url=str(site))))
    with umask(0o022):
        rt.published.put("ab/copy.jpg", b"clean")
        rt.published.stage("cd/copy.jpg", b"clean").commit()
        rt.originals.put("ab/original", b"raw")
    assert stat.S_IMODE((site / "ab" / "copy.jpg").stat().st_mode) == 0o644
    assert stat.S_IMODE((site / "cd" / "copy.jpg").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "instance" / "originals" / "ab" / "original").stat().st_mode) == 0o600
    inside = Runtime(Settings(home=tmp_path / "instance"))
    with umask(0o022):
        inside.published.put("ab/copy.jpg", b"clean")
    assert stat.S_IMODE((tmp_path / "instance" / "published" / "ab" / "copy.jpg").stat().st_mode) == 0o600
