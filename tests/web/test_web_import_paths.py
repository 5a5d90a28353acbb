"""People imports read enrolment photos only from the upload: never a file of the server.

A `photos` path of an uploaded CSV (web page, API, or the command line given a zip) names a file
inside the zip or the CSV's own folder. Absolute paths, `..`, links leading out and device files are
refused by row, with a reason that quotes nothing of any file, and the same reason whether or not
something exists at a path outside.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from web_helpers import CLOCK, api_token, csrf, make_account, sign_in

from consent_db.models import FaceTemplate, Person
from consent_db.session import unit_of_work
from gatekeeper.consent import mis_csv as people_csv
from gatekeeper.errors import InvalidInputError
from helpers import run

HEADER = "external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by\n"
# Outside the upload, the first two exist on every machine, the last two nowhere.
OUTSIDE = ("/etc/passwd", "../../../../../../etc/passwd", "/etc/no-such-file-3f9a", "../no-such-file-3f9a")
SECRET_PREFIX = "root:"


def _csv(paths: tuple[str, ...]) -> str:
    lines = [f"P{i},Person {i},1980-01-01,{path},yes,website,self" for i, path in enumerate(paths, 1)]
    return HEADER + "\n".join(lines) + "\n"


def _zip(paths: tuple[str, ...], extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("people.csv", _csv(paths))
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _zip_with_link(target: str) -> bytes:
    """A zip whose member `link.jpg` is a symbolic link to `target` (as `zip --symlinks` stores it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("people.csv", _csv(("link.jpg",)))
        info = zipfile.ZipInfo("link.jpg")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
    return buffer.getvalue()


def _reasons_by_path(problems: list[tuple[int, str]], paths: tuple[str, ...]) -> dict[str, str]:
    """Each refused row's reason with its own path taken out, keyed by that path."""
    found = {}
    for line, reason in problems:
        path = paths[line - 2]
        found[path] = reason.replace(path, "PATH")
    return found


def _assert_confined(problems: list[tuple[int, str]], paths: tuple[str, ...]) -> None:
    reasons = _reasons_by_path(problems, paths)
    assert set(reasons) == set(paths)
    # One answer for every path outside: nothing tells a file that exists from one that does not.
    assert len(set(reasons.values())) == 1, reasons
    assert "not a file inside the upload" in next(iter(reasons.values()))
    assert all(SECRET_PREFIX not in r and "b'" not in r for r in reasons.values())


def _nothing_stored(rt: Any) -> None:
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 0
        assert session.scalar(select(func.count()).select_from(FaceTemplate)) == 0


def _admin(app: Flask, rt: Any) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    return client


def _web_problems(client: FlaskClient, data: bytes, name: str) -> tuple[int, str]:
    response = client.post(
        "/people/import",
        data={"file": (io.BytesIO(data), name), "csrf_token": csrf(client, "/people/import")},
    )
    return response.status_code, response.get_data(as_text=True)


def _api_problems(app: Flask, rt: Any, data: bytes, name: str) -> list[tuple[int, str]]:
    token = api_token(rt, make_account(rt, "consent_admin", username="api-dpo"))
    response = app.test_client().post(
        "/api/v1/people/import",
        data={"file": (io.BytesIO(data), name)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert body["imported"] == 0
    return [(p["line"], p["reason"]) for p in body["problems"]]


def _page_problems(page: str) -> list[tuple[int, str]]:
    import html
    import re

    return [
        (int(line), html.unescape(reason))
        for line, reason in re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td></tr>", page)
    ]


@pytest.mark.parametrize("kind", ["csv", "zip"])
def test_the_web_import_refuses_every_photo_path_outside_the_upload_alike(
    app: Flask, rt: Any, kind: str
) -> None:
    client = _admin(app, rt)
    data = _csv(OUTSIDE).encode() if kind == "csv" else _zip(OUTSIDE)
    status, page = _web_problems(client, data, f"people.{kind}")
    assert status == 200
    assert SECRET_PREFIX not in page
    _assert_confined(_page_problems(page), OUTSIDE)
    _nothing_stored(rt)


@pytest.mark.parametrize("kind", ["csv", "zip"])
def test_the_api_import_refuses_every_photo_path_outside_the_upload_alike(
    app: Flask, rt: Any, kind: str
) -> None:
    data = _csv(OUTSIDE).encode() if kind == "csv" else _zip(OUTSIDE)
    _assert_confined(_api_problems(app, rt, data, f"people.{kind}"), OUTSIDE)
    _nothing_stored(rt)


def test_a_link_in_an_uploaded_zip_is_never_followed(app: Flask, rt: Any) -> None:
    problems = _api_problems(app, rt, _zip_with_link("/etc/passwd"), "people.zip")
    [(line, reason)] = problems
    assert line == 2 and SECRET_PREFIX not in reason and "/etc" not in reason
    assert "not an accepted image format" in reason
    _nothing_stored(rt)


def test_a_file_in_the_zip_that_is_not_a_photo_is_refused_without_quoting_it(app: Flask, rt: Any) -> None:
    data = _zip(("notes.jpg", "missing.jpg"), {"notes.jpg": b"root:x:0:0:secret words"})
    problems = dict(_api_problems(app, rt, data, "people.zip"))
    assert problems[2] == (
        "enrolment photo notes.jpg: not an accepted image format (JPEG, PNG, WebP, HEIC/HEIF, GIF or TIFF): "
        "export it as a JPEG and upload it again"
    )
    # Inside the upload, a missing file is named as missing: the requester knows what they sent.
    assert problems[3] == "enrolment photo not found: missing.jpg"
    _nothing_stored(rt)


def test_the_command_line_given_a_zip_reads_photos_only_from_inside_it(rt: Any, tmp_path: Path) -> None:
    upload = tmp_path / "upload.zip"
    upload.write_bytes(_zip(OUTSIDE))
    result = run(rt, "people", "import", "--json", upload)
    assert result.exit_code == 1
    assert SECRET_PREFIX not in result.output
    report = json.loads(result.stdout)
    _assert_confined([(p["line"], p["reason"]) for p in report["problems"]], OUTSIDE)
    _nothing_stored(rt)


def test_a_link_or_a_device_in_the_csvs_folder_is_refused_when_confined(rt: Any, tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "out.jpg").symlink_to("/etc/passwd")
    (folder / "gone.jpg").symlink_to(tmp_path / "nothing-here.jpg")
    (folder / "null.jpg").symlink_to(os.devnull)
    paths = ("out.jpg", "gone.jpg", "null.jpg")
    rows, problems = people_csv.parse_people_csv(
        _csv(paths).encode(), folder, rt.settings, today=CLOCK.date(), confined=True
    )
    assert rows == []
    _assert_confined([(p.line, p.reason) for p in problems], paths)


def test_a_device_is_never_read_as_an_enrolment_photo(tmp_path: Path) -> None:
    # The command line on the operator's own CSV reads paths anywhere, but only regular files.
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        people_csv.photo_path(tmp_path, os.devnull, confined=False, read=True)
    with pytest.raises(InvalidInputError, match="not a file inside the upload"):
        people_csv.photo_path(tmp_path, os.devnull, confined=True, read=True)
