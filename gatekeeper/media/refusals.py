"""Why a file was refused, in the same reason code and plain words on every surface.

The command line, the web pages and the JSON API all say why a photo could not be read through
`explain`: a reason code (the error's `code`) and words a member of staff can act on. The words
never carry what a decoder said (Pillow's messages, object addresses): only sizes and limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.errors import (
    ColourConversionError,
    EmptyFileError,
    FileTooLargeError,
    FrameLimitError,
    ImageTooLargeError,
    MediaError,
    MetadataLeakError,
    UnreadableImageError,
    UnsupportedMediaError,
)

ACCEPTED = "JPEG, PNG, WebP, HEIC/HEIF, GIF or TIFF"
AGAIN = "copy it again from the camera or phone and upload it again"


@dataclass(frozen=True)
class Refusal:
    """A refused file: its reason code, why in plain words, and what to do about it."""

    code: str
    reason: str
    action: str

    @property
    def words(self) -> str:
        """The reason and what to do, as one sentence."""
        return f"{self.reason}: {self.action}"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f}" if pixels % 1_000_000 == 0 else f"{pixels / 1_000_000:.1f}"


def _megabytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.0f} MB"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


def explain(error: MediaError) -> Refusal:
    """The reason code and plain words for a file that could not be read as a photo."""
    if isinstance(error, EmptyFileError):
        return Refusal(error.code, "the file is empty", AGAIN)
    if isinstance(error, FileTooLargeError):
        limit = error.limit or 0
        return Refusal(
            error.code,
            f"the file is {_megabytes(error.size)}, over the limit of {_megabytes(limit)}",
            f"save it smaller than {_megabytes(limit)} and upload it again",
        )
    if isinstance(error, ImageTooLargeError):
        if error.pixels is not None and error.limit is not None:
            reason = (
                f"the photo has {error.pixels:,} pixels ({_megapixels(error.pixels)} MP), over the limit "
                f"of {error.limit:,} ({_megapixels(error.limit)} MP)"
            )
        elif error.limit is not None:
            limit_mp = _megapixels(error.limit)
            reason = f"the photo has more pixels than the limit of {error.limit:,} ({limit_mp} MP)"
        else:
            reason = "the photo has more pixels than the limit"
        below = f"below {_megapixels(error.limit)} MP" if error.limit is not None else "smaller"
        return Refusal(error.code, reason, f"resize it {below} and upload it again")
    if isinstance(error, FrameLimitError):
        return Refusal(
            error.code,
            f"the image has {error.frames} frames, more than the {error.limit} that can be checked",
            "upload the frames you want to use as separate photos",
        )
    if isinstance(error, ColourConversionError):
        return Refusal(
            error.code,
            "its colour profile is not a standard one and cannot be converted for the web",
            "export it in sRGB and upload it again",
        )
    if isinstance(error, UnsupportedMediaError):
        return Refusal(
            error.code,
            f"not an accepted image format ({ACCEPTED})",
            "export it as a JPEG and upload it again",
        )
    if isinstance(error, UnreadableImageError):
        return Refusal(
            error.code,
            "the file could not be read as an image (it is empty, incomplete or damaged)",
            AGAIN,
        )
    if isinstance(error, MetadataLeakError):
        return Refusal(
            error.code,
            "no verified clean copy could be made: metadata outside the allow-list remained",
            "export it again without metadata and upload it again",
        )
    return Refusal(
        error.code,
        "the file could not be read as an image",
        "copy it again from the camera or phone and upload it again",
    )
