"""`gatekeeper gate` on awkward inputs and outputs: special files, unreadable files, a terminal,
a folder gated into twice, and where originals are kept.

Photos without faces (made here) are publishable, so these tests need no enrolled people.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select as sql_select

from consent_db.models import Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime
from helpers import gate_json, run


def faceless_jpeg(path: Path, shade: int = 90) -> Path:
    """A small photo of a plain gradient: no face, so publishable on any channel."""
    image = Image.new("RGB", (160, 120))
    image.putdata([(shade, (x * 2) % 256, (y * 2) % 256) for y in range(120) for x in range(160)])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return path


def gatekeeper(
    args: list[str], home: Path, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own (a named pipe can block a process: the test must not)."""
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", *args],
        env={**os.environ, "GATEKEEPER_HOME": str(home)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- only regular files are read ---------------------------------------------------------------------


def test_gate_skips_and_reports_named_pipes_sockets_and_broken_links_without_waiting(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "notes.jpg").write_text("not a photo")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "s.jpg"))
    named_pipe = tmp_path / "named.jpg"
    os.mkfifo(named_pipe)
    try:
        result = gatekeeper(
            ["gate", "--channel", "website", "--json", str(folder), str(named_pipe)], tmp_path / "i", tmp_path
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    lines = {Path(line["source"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    assert set(lines) == {"notes.jpg", "pipe.jpg", "gone.jpg", "s.jpg", "named.jpg"}
    assert lines["notes.jpg"]["verdict"] == "blocked"
    expected = {
        "pipe.jpg": "not a regular file: a named pipe (FIFO)",
        "named.jpg": "not a regular file: a named pipe (FIFO)",
        "s.jpg": "not a regular file: a socket",
        "gone.jpg": "broken symbolic link",
    }
    for name, error in expected.items():
        assert lines[name]["skipped"] is True
        assert (lines[name]["verdict"], lines[name]["error"]) == (None, error)
        assert f"SKIPPED      {lines[name]['source']}: {error}" in result.stderr


def test_gate_summary_counts_the_skipped_files(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("not a photo")
    os.mkfifo(tmp_path / "pipe.jpg")
    result = gatekeeper(
        ["gate", "--channel", "website", "notes.jpg", "pipe.jpg"], tmp_path / "i", tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "1 photo: 1 blocked; 1 skipped" in result.stderr


def test_gate_refuses_a_path_that_does_not_exist(runtime: Runtime, tmp_path: Path) -> None:
    result = run(runtime, "gate", "--channel", "website", tmp_path / "typo.jpg")
    assert result.exit_code == 2
    assert f"not found: {tmp_path / 'typo.jpg'}" in result.output


# --- unreadable files say why ------------------------------------------------------------------------


def test_an_unreadable_image_gives_the_reason_in_json_and_on_its_line(
    runtime: Runtime, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("minutes of the governors' meeting")
    [line] = gate_json(runtime, "website", notes)
    assert line["reasons"] == ["unreadable_image"]
    assert "not an accepted image format" in line["error"]
    human = run(runtime, "gate", "--channel", "website", notes)
    assert human.exit_code == 0
    [first] = human.stdout.splitlines()
    assert first == f"BLOCKED      {notes} (unreadable_image): {line['error']}"
    assert "no faces" not in first


def test_a_readable_photo_has_no_error(runtime: Runtime, tmp_path: Path) -> None:
    [line] = gate_json(runtime, "website", faceless_jpeg(tmp_path / "field.jpg"))
    assert (line["verdict"], line["error"]) == ("publishable", None)


# --- an empty instance says so -----------------------------------------------------------------------


def test_gating_on_an_instance_with_nobody_enrolled_warns_that_every_face_will_be_unknown(
    runtime: Runtime, tmp_path: Path
) -> None:
    result = run(runtime, "gate", "--channel", "website", faceless_jpeg(tmp_path / "field.jpg"))
    assert result.exit_code == 0
    where = runtime.settings.instance_path if runtime.settings.database_url.startswith("sqlite") else ""
    assert f"warning: no people are enrolled in {where}" in result.stderr
    assert "every face will be unknown" in result.stderr


# --- the progress bar and the result lines -----------------------------------------------------------


def terminal_screen(raw: str) -> list[str]:
    """What a terminal shows for `raw`: carriage returns, erase-to-end-of-line and newlines applied."""
    lines, col, i = [""], 0, 0
    while i < len(raw):
        if raw[i] == "\x1b":
            match = re.match(r"\x1b\[\??[0-9;]*[A-Za-z]", raw[i:])
            assert match, repr(raw[i : i + 10])
            if match.group(0) == "\x1b[K":
                lines[-1] = lines[-1][:col]
            i += len(match.group(0))
            continue
        ch = raw[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("")
            col = 0
        else:
            line = lines[-1].ljust(col)
            lines[-1] = line[:col] + ch + line[col + 1 :]
            col += 1
        i += 1
    return lines


def run_on_a_terminal(args: list[str], home: Path, cwd: Path, timeout: float = 120) -> str:
    """Run the command with stdout and stderr on one pseudo-terminal; everything it wrote there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper.cli", *args],
        env={**os.environ, "GATEKEEPER_HOME": str(home), "COLUMNS": "100"},
        cwd=cwd,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the process has gone and closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        process.kill()
        os.close(leader)
    return b"".join(chunks).decode()


def test_on_a_terminal_result_lines_and_the_progress_bar_do_not_run_together(tmp_path: Path) -> None:
    names = ["a.jpg", "b.jpg", "c.jpg"]
    for name in names:
        (tmp_path / name).write_text("not a photo")
    screen = terminal_screen(
        run_on_a_terminal(["gate", "--channel", "website", *names], tmp_path / "i", tmp_path)
    )
    results = [line for line in screen if "BLOCKED" in line]
    assert [line.split()[:2] for line in results] == [["BLOCKED", name] for name in names]
    assert not [line for line in screen if "gating" in line and "BLOCKED" in line]
    assert any(line.startswith("gating") and "3/3" in line for line in screen)
    assert any(line.startswith("3 photos: 3 blocked") for line in screen)


# --- the same photo on the same channel is published once --------------------------------------------


def test_gating_into_the_same_folder_twice_publishes_the_photo_once(runtime: Runtime, tmp_path: Path) -> None:
    photo = faceless_jpeg(tmp_path / "field.jpg")
    out = tmp_path / "out"
    [first] = gate_json(runtime, "website", photo, out=out)
    [second] = gate_json(runtime, "website", photo, out=out)
    assert first["output"] is not None and "already_published" not in first
    assert (second["output"], second["already_published"]) == (first["output"], True)
    assert [str(p) for p in out.iterdir()] == [first["output"]]
    human = run(runtime, "gate", "--channel", "website", "--out", out, photo)
    assert human.stdout.rstrip().endswith(f"-> {first['output']} (already published there)")
    with unit_of_work(runtime.sessions) as session:
        assert len(session.scalars(sql_select(Publication)).all()) == 1


def test_a_copy_deleted_from_the_folder_is_published_again(runtime: Runtime, tmp_path: Path) -> None:
    photo = faceless_jpeg(tmp_path / "field.jpg")
    out = tmp_path / "out"
    [first] = gate_json(runtime, "website", photo, out=out)
    Path(first["output"]).unlink()
    [again] = gate_json(runtime, "website", photo, out=out)
    assert "already_published" not in again and again["output"] != first["output"]
    assert [str(p) for p in out.iterdir()] == [again["output"]]


@pytest.mark.parametrize("other", ["another folder", "another channel"])
def test_another_folder_or_channel_gets_its_own_copy(runtime: Runtime, tmp_path: Path, other: str) -> None:
    photo = faceless_jpeg(tmp_path / "field.jpg")
    [first] = gate_json(runtime, "website", photo, out=tmp_path / "out")
    channel, out = (
        ("website", tmp_path / "other") if other == "another folder" else ("print", tmp_path / "out")
    )
    [second] = gate_json(runtime, channel, photo, out=out)
    assert "already_published" not in second
    assert second["output"] not in (None, first["output"])


# --- originals -----------------------------------------------------------------------------------------


def test_originals_are_kept_under_their_hash_directly_in_the_originals_folder(
    runtime: Runtime, tmp_path: Path
) -> None:
    photo = faceless_jpeg(tmp_path / "field.jpg")
    gate_json(runtime, "website", photo)
    with unit_of_work(runtime.sessions) as session:
        [row] = session.scalars(sql_select(Photo)).all()
        sha256, key = row.sha256, row.original_key
    assert key == f"{sha256[:2]}/{sha256}"
    folder = Path(runtime.settings.storage.originals_url)
    assert (folder / sha256[:2] / sha256).read_bytes() == photo.read_bytes()
    assert not (folder / "originals").exists()


def test_a_photo_recorded_under_an_older_key_keeps_it(runtime: Runtime, tmp_path: Path) -> None:
    photo = faceless_jpeg(tmp_path / "field.jpg")
    gate_json(runtime, "website", photo)
    folder = Path(runtime.settings.storage.originals_url)
    with unit_of_work(runtime.sessions) as session:
        [row] = session.scalars(sql_select(Photo)).all()
        old_key = f"originals/{row.sha256[:2]}/{row.sha256}"
        (folder / old_key).parent.mkdir(parents=True)
        (folder / row.original_key).rename(folder / old_key)
        row.original_key = old_key
    gate_json(runtime, "website", photo)
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(sql_select(Photo.original_key)).all() == [old_key]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [old_key]
