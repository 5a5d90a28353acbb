"""An API upload that is refused keeps nothing: no photo, batch, job or audit event, no stored original."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from web_helpers import api_token, make_account

from consent_db.models import AuditEvent, Job, Photo, UploadBatch
from consent_db.session import unit_of_work


def _jpeg(colour: tuple[int, int, int] = (90, 140, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="JPEG")
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


REFUSED = {
    "a zip of one photo": (_zip({"a.jpg": _jpeg()}), "website", "not a zip"),
    "a zip with one bad entry": (
        _zip({"a.jpg": _jpeg(), "b.jpg": _jpeg((1, 2, 3)), "notes.txt": b"hello"}),
        "website",
        "not a zip",
    ),
    "a file that is not a photo": (b"GIF8 but not really", "website", "not an accepted image format"),
    "an unknown channel": (_jpeg(), "billboard", "unknown channel"),
}


def _kept(rt: Any) -> dict[str, int]:
    with unit_of_work(rt.sessions) as session:
        counts = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Photo, UploadBatch, Job)
        }
        counts["audit"] = (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "batch.uploaded")
            )
            or 0
        )
    counts["originals"] = len(list(rt.originals.iter_keys()))
    return counts


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_api_upload_stores_nothing(app: Flask, rt: Any, case: str) -> None:
    data, channel, why = REFUSED[case]
    headers = {"Authorization": f"Bearer {api_token(rt, make_account(rt, 'uploader'))}"}
    empty = _kept(rt)
    response = app.test_client().post(
        "/api/v1/photos",
        data={"file": (io.BytesIO(data), "upload.bin"), "channel": channel},
        headers=headers,
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert why in response.get_json()["message"]
    assert _kept(rt) == empty == {"photos": 0, "upload_batches": 0, "jobs": 0, "audit": 0, "originals": 0}
    from gatekeeper.web.photos import job_queue

    with app.app_context():
        assert job_queue().counts() == {"pending": 0, "scheduled": 0}
    # The same photo sent alone is taken: the refusals above were about the call, not the store.
    accepted = app.test_client().post(
        "/api/v1/photos",
        data={"file": (io.BytesIO(_jpeg()), "one.jpg"), "channel": "website"},
        headers=headers,
    )
    assert accepted.status_code == 202
    assert _kept(rt) == {"photos": 1, "upload_batches": 1, "jobs": 1, "audit": 1, "originals": 1}
