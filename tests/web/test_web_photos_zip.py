"""Receiving uploads: zips are opened with limits, each refused file gets its own reason."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from gatekeeper.config import MediaSettings, Settings
from gatekeeper.errors import InvalidInputError
from gatekeeper.photos import intake as uploads
from gatekeeper.photos.intake import UploadFile

SETTINGS = Settings()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture
def photo(corpus: Any) -> bytes:
    return bytes((corpus.faces_dir / "obama" / "obama.jpg").read_bytes())


def test_the_photos_of_a_zip_are_received_and_each_bad_member_refused_with_its_reason(photo: bytes) -> None:
    bundle = _zip(
        {
            "day/a.jpg": photo,
            "../../etc/evil.jpg": photo,
            "/abs.jpg": photo,
            "C:/win.jpg": photo,
            "back\\slash.jpg": photo,
            "inner.zip": _zip({"x.jpg": photo}),
            "notes.txt": b"hello",
            "empty.jpg": b"",
            ".DS_Store": b"junk",
            "__MACOSX/day/._a.jpg": b"junk",
        }
    )
    accepted, refused = uploads.receive([UploadFile("day.zip", bundle)], SETTINGS)
    assert [(f.name, f.data == photo) for f in accepted] == [("day.zip: day/a.jpg", True)]
    reasons = {r.name.removeprefix("day.zip: "): r.reason for r in refused}
    assert reasons == {
        "../../etc/evil.jpg": "unsafe name in the zip (absolute path or '..'); not read",
        "/abs.jpg": "unsafe name in the zip (absolute path or '..'); not read",
        "C:/win.jpg": "unsafe name in the zip (absolute path or '..'); not read",
        "back\\slash.jpg": "unsafe name in the zip (absolute path or '..'); not read",
        "inner.zip": "a zip inside a zip is not opened",
        "notes.txt": "not an accepted image format (JPEG, PNG, WebP, HEIC/HEIF, GIF or TIFF): "
        "export it as a JPEG and upload it again",
        "empty.jpg": "the file is empty: copy it again from the camera or phone and upload it again",
    }


def test_a_zip_bomb_is_refused_before_it_is_unpacked(photo: bytes) -> None:
    bomb = _zip({"bomb.jpg": b"\xff\xd8" + bytes(30 * 1024 * 1024), "ok.jpg": photo}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1024 * 1024
    accepted, refused = uploads.receive([UploadFile("b.zip", bomb)], SETTINGS)
    assert [f.name for f in accepted] == ["b.zip: ok.jpg"]
    assert [(r.name, r.reason) for r in refused] == [
        ("b.zip: bomb.jpg", "the file unpacks far larger than it is packed (a zip bomb?)")
    ]


def test_a_member_over_the_size_limit_or_too_many_members_are_refused(photo: bytes) -> None:
    small = Settings(media=MediaSettings(max_bytes=len(photo) - 1))
    _, refused = uploads.receive([UploadFile("s.zip", _zip({"a.jpg": photo}))], small)
    kb, limit = round(len(photo) / 1024), round((len(photo) - 1) / 1024)
    too_large = f"the file is {kb} KB, over the limit of {limit} KB: save it smaller than {limit} KB"
    assert [(r.reason, r.code) for r in refused] == [(f"{too_large} and upload it again", "file_too_large")]
    _, refused = uploads.receive([UploadFile("big.jpg", photo)], small)
    assert [(r.reason, r.code) for r in refused] == [(f"{too_large} and upload it again", "file_too_large")]
    many = _zip({f"{i}.txt": b"" for i in range(uploads.MAX_ZIP_MEMBERS + 1)})
    accepted, refused = uploads.receive([UploadFile("m.zip", many)], SETTINGS)
    assert accepted == [] and [r.reason for r in refused] == ["the zip holds more than 2000 files"]


def test_a_broken_zip_is_one_clear_refusal(photo: bytes) -> None:
    broken = _zip({"a.jpg": photo})[:200]
    accepted, refused = uploads.receive([UploadFile("cut.zip", broken)], SETTINGS)
    assert accepted == []
    assert [(r.name, r.reason) for r in refused] == [("cut.zip", "the zip file cannot be read")]


def test_more_photos_than_one_upload_takes_are_refused_as_a_whole(photo: bytes) -> None:
    files = [UploadFile(f"{i}.jpg", photo) for i in range(uploads.MAX_FILES + 1)]
    with pytest.raises(InvalidInputError, match="at most 500 photos"):
        uploads.receive(files, SETTINGS)
