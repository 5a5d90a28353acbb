"""Why a file was refused: one reason code and plain words for every surface, never a decoder's message."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gatekeeper import errors, media
from gatekeeper.media.refusals import explain
from helpers import add_people

BROKEN_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64  # JPEG magic, then nothing a decoder can use


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (
            errors.ImageTooLargeError("9000x6000 = 54000000 pixels", pixels=54_000_000, limit=50_000_000),
            "image_too_large",
            "the photo has 54,000,000 pixels (54 MP), over the limit of 50,000,000 (50 MP): "
            "resize it below 50 MP and upload it again",
        ),
        (
            errors.ImageTooLargeError("jpeg: decompression bomb", limit=50_000_000),
            "image_too_large",
            "the photo has more pixels than the limit of 50,000,000 (50 MP): "
            "resize it below 50 MP and upload it again",
        ),
        (
            errors.FileTooLargeError(150 * 1024 * 1024, 100 * 1024 * 1024),
            "file_too_large",
            "the file is 150 MB, over the limit of 100 MB: save it smaller than 100 MB and upload it again",
        ),
        (
            errors.EmptyFileError(),
            "empty_file",
            "the file is empty: copy it again from the camera or phone and upload it again",
        ),
        (
            errors.UnsupportedMediaError("not an accepted image format; starts b'%PDF-1.4'"),
            "unsupported_media",
            "not an accepted image format (JPEG, PNG, WebP, HEIC/HEIF, GIF or TIFF): "
            "export it as a JPEG and upload it again",
        ),
        (
            errors.UnreadableImageError(
                "jpeg does not decode: cannot identify image file <_io.BytesIO at 0x7f>"
            ),
            "unreadable_image",
            "the file could not be read as an image (it is empty, incomplete or damaged): "
            "copy it again from the camera or phone and upload it again",
        ),
        (
            errors.FrameLimitError("gif has 400 frames", frames=400, limit=100),
            "too_many_frames",
            "the image has 400 frames, more than the 100 that can be checked: "
            "upload the frames you want to use as separate photos",
        ),
        (
            errors.ColourConversionError("ICC: bad curve at 0x1f"),
            "colour_profile",
            "its colour profile is not a standard one and cannot be converted for the web: "
            "export it in sRGB and upload it again",
        ),
    ],
)
def test_each_refusal_has_its_code_and_words_with_no_internals(
    error: errors.MediaError, code: str, words: str
) -> None:
    refusal = explain(error)
    assert (refusal.code, refusal.words) == (code, words)


def test_what_pillow_says_about_a_broken_file_never_reaches_the_words() -> None:
    with pytest.raises(errors.MediaError) as raised:
        media.decode(BROKEN_JPEG, max_pixels=50_000_000)
    assert "BytesIO" in str(raised.value)  # what the decoder said, kept for logs only
    words = explain(raised.value).words
    assert "BytesIO" not in words and "0x" not in words and "decode" not in words


def test_an_enrolment_photo_that_does_not_decode_says_so_in_plain_words(
    runtime: Any, now: datetime, tmp_path: Path
) -> None:
    from consent_db.models import Person
    from consent_db.session import unit_of_work
    from gatekeeper.people import enrolment

    ids = add_people(runtime, now, "L001")
    photo = tmp_path / "amy.jpg"
    photo.write_bytes(BROKEN_JPEG)
    with unit_of_work(runtime.sessions) as session:
        person = session.get(Person, ids["L001"])
        assert person is not None
        with pytest.raises(errors.InvalidInputError) as raised:
            enrolment.enrol(
                session, person, [photo], engine=runtime.faces, settings=runtime.settings, now=now, actor="t"
            )
    message = str(raised.value)
    assert message == (
        "enrolment photo amy.jpg: the file could not be read as an image (it is empty, incomplete or "
        "damaged): copy it again from the camera or phone and upload it again"
    )
