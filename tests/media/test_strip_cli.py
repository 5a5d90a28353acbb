"""`gatekeeper strip`: metadata-free copies with no face check, one file or a batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.runtime import Runtime
from helpers import run

GPS_JPEG = "nikon_coolpix_p6000_gps.jpg"


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    """Stripping needs no database: one runtime on the embedded default is enough."""
    return Runtime(Settings(home=tmp_path / "instance"))


def exif_groups(exiftool: str, path: Path) -> set[str]:
    out = subprocess.run(
        [exiftool, "-j", "-a", "-G1", "-s", "-ee", str(path)], capture_output=True, check=True
    )
    return {key.split(":")[0] for key in json.loads(out.stdout)[0] if ":" in key}


def test_strip_one_file_keeps_pixels_and_drops_gps(
    runtime: Runtime, corpus: Any, tmp_path: Path, exiftool: str
) -> None:
    source = corpus.metadata_dir / GPS_JPEG
    target = tmp_path / "clean.jpg"
    result = run(runtime, "strip", source, target)
    assert result.exit_code == 0, result.output
    assert "GPS" in exif_groups(exiftool, source)
    assert not exif_groups(exiftool, target) & {"GPS", "IFD1", "IPTC", "XMP-x", "MakerNotes", "Nikon"}
    before = media.decode(source.read_bytes(), max_pixels=10**8).pixels
    after = media.decode(target.read_bytes(), max_pixels=10**8).pixels
    assert np.array_equal(before, after)


def test_strip_batch_writes_opaque_names_and_one_json_line_per_file(
    runtime: Runtime, corpus: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not an image")
    heic = corpus.metadata_dir / "apple_iphone11promax_gps.heic"
    out = tmp_path / "out"
    result = run(runtime, "strip", "--out", out, "--json", corpus.metadata_dir / GPS_JPEG, heic, bad)
    assert result.exit_code == 1  # one file failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["source"]).name for line in lines] == [GPS_JPEG, heic.name, "holiday.jpg"]
    assert lines[0]["error"] is None and lines[1]["error"] is None
    assert lines[1]["output"].endswith(".jpg")  # HEIC is published as JPEG
    assert lines[2]["output"] is None and "not an accepted image format" in lines[2]["error"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(Path(line["output"]).name for line in lines[:2])
    assert not any("nikon" in n or "apple" in n or "holiday" in n for n in names)


def test_strip_a_folder_recurses_and_skips_hidden_files(
    runtime: Runtime, corpus: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "day2").mkdir(parents=True)
    (folder / ".thumbnails").mkdir()
    jpeg = (corpus.metadata_dir / "orientation/landscape_6.jpg").read_bytes()
    (folder / "a.jpg").write_bytes(jpeg)
    (folder / "day2" / "b.jpg").write_bytes(jpeg)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / ".thumbnails" / "c.jpg").write_bytes(jpeg)
    out = tmp_path / "out"
    result = run(runtime, "strip", "--out", out, "--json", folder)
    assert result.exit_code == 0, result.output
    sources = [json.loads(line)["source"] for line in result.stdout.splitlines()]
    assert sources == [str(folder / "a.jpg"), str(folder / "day2" / "b.jpg")]
    assert len(list(out.iterdir())) == 2


def test_strip_refuses_a_file_it_cannot_clean_and_writes_nothing(runtime: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    source = folder / "photo.jpg"
    source.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    target = folder / "clean.jpg"
    result = run(runtime, "strip", source, target)
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert not target.exists()
    assert [p.name for p in folder.iterdir()] == ["photo.jpg"]


def test_strip_usage_errors_are_explained(runtime: Runtime, tmp_path: Path) -> None:
    result = run(runtime, "strip", tmp_path / "only-one.jpg")
    assert result.exit_code == 2
    assert "strip IN OUT" in result.output


# --- one file: OUT must be a new file, named for the format written ---------------------------------


def test_strip_into_an_existing_folder_is_a_clear_error(
    runtime: Runtime, corpus: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "clean"
    folder.mkdir()
    result = run(runtime, "strip", corpus.metadata_dir / GPS_JPEG, folder)
    assert result.exit_code == 2
    assert "is a folder" in result.output and "strip --out" in result.output
    assert "Traceback" not in result.output
    assert list(folder.iterdir()) == []


def test_strip_heic_to_a_heic_name_is_refused_naming_the_jpeg_extension(
    runtime: Runtime, corpus: Any, tmp_path: Path
) -> None:
    target = tmp_path / "out.heic"
    result = run(runtime, "strip", corpus.metadata_dir / "apple_iphone11promax_gps.heic", target)
    assert result.exit_code == 1
    assert "is JPEG" in result.output and "out.jpg" in result.output
    assert list(tmp_path.iterdir()) == []


def test_strip_heic_to_a_jpeg_name_writes_a_jpeg(runtime: Runtime, corpus: Any, tmp_path: Path) -> None:
    target = tmp_path / "out.JPEG"
    result = run(runtime, "strip", corpus.metadata_dir / "apple_iphone11promax_gps.heic", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:3] == b"\xff\xd8\xff"


def test_strip_never_overwrites_an_existing_file_without_force(
    runtime: Runtime, corpus: Any, tmp_path: Path
) -> None:
    target = tmp_path / "clean.jpg"
    target.write_bytes(b"keep me")
    result = run(runtime, "strip", corpus.metadata_dir / GPS_JPEG, target)
    assert result.exit_code == 1
    assert "exists" in result.output and "--force" in result.output
    assert target.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["clean.jpg"]
    forced = run(runtime, "strip", "--force", corpus.metadata_dir / GPS_JPEG, target)
    assert forced.exit_code == 0, forced.output
    assert target.read_bytes()[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize("force", [False, True], ids=["without --force", "with --force"])
@pytest.mark.parametrize("how", ["same path", "hard link"])
def test_strip_never_replaces_its_input(
    runtime: Runtime, corpus: Any, tmp_path: Path, force: bool, how: str
) -> None:
    source = tmp_path / "photo.jpg"
    original = (corpus.metadata_dir / GPS_JPEG).read_bytes()
    source.write_bytes(original)
    target = source if how == "same path" else tmp_path / "link.jpg"
    if how == "hard link":
        os.link(source, target)
    result = run(runtime, "strip", *(["--force"] if force else []), source, target)
    assert result.exit_code == 2
    assert "same file" in result.output
    assert source.read_bytes() == original


def test_strip_batch_skips_and_reports_a_named_pipe_without_waiting(tmp_path: Path, corpus: Any) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((corpus.metadata_dir / GPS_JPEG).read_bytes())
    os.mkfifo(folder / "pipe.jpg")
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "strip",
            "--json",
            "--out",
            str(tmp_path / "out"),
            str(folder),
        ],
        env={**os.environ, "GATEKEEPER_HOME": str(tmp_path / "instance")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1  # two files could not be stripped
    lines = {Path(line["source"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    assert lines["a.jpg"]["error"] is None
    assert lines["pipe.jpg"] == {
        "source": str(folder / "pipe.jpg"),
        "output": None,
        "error": "not a regular file: a named pipe (FIFO)",
    }
    assert lines["gone.jpg"]["error"] == "broken symbolic link"
    assert len(list((tmp_path / "out").iterdir())) == 1
