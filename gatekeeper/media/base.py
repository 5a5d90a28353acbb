"""The values the media package hands out, and the interface every format handler implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy

# Output formats only: the three a clean copy can be written in.
_OUTPUT_TYPES = {
    "jpeg": (".jpg", "image/jpeg"),
    "png": (".png", "image/png"),
    "webp": (".webp", "image/webp"),
}


class MalformedError(ValueError):
    """Our own parsers cannot follow the file's structure (mapped to a MediaError by the caller)."""


# eq=False: comparing numpy arrays with == is ambiguous, so identity equality is the honest choice.
@dataclass(frozen=True, eq=False)
class DecodedImage:
    """Upright 8-bit RGB pixels of the first frame of an image, with what the source said."""

    pixels: numpy.ndarray
    format: str
    orientation: int

    @property
    def width(self) -> int:
        """Upright width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Upright height in pixels."""
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class CleanCopy:
    """A copy fit for publication: allow-listed structure only, already verified."""

    data: bytes
    format: str
    extension: str
    media_type: str
    lossless: bool

    @classmethod
    def of(cls, data: bytes, fmt: str, *, lossless: bool) -> CleanCopy:
        """Build a copy of an output format with its extension and media type."""
        extension, media_type = _OUTPUT_TYPES[fmt]
        return cls(data=data, format=fmt, extension=extension, media_type=media_type, lossless=lossless)


@dataclass(frozen=True, eq=False)
class DecodedSource:
    """What a handler needs to sanitise: the decoded image and the source's ICC profile."""

    image: DecodedImage
    icc_profile: bytes | None
    # The upright size of the full image when `image` is a downscaled copy of it (decoded for a
    # channel whose copies are smaller); None when `image` is the full image.
    full_size: tuple[int, int] | None = None

    @property
    def scale(self) -> float:
        """The size of `image` relative to the full upright image (1.0: full size)."""
        if self.full_size is None:
            return 1.0
        return self.image.pixels.shape[1] / self.full_size[0]


@dataclass(frozen=True, eq=False)
class Probe:
    """What our own parsers proved about a file that can be cleaned without decoding its pixels.

    `layout` is the handler's own parsed structure (segments or chunks), reused to build the copy
    so nothing is walked twice. `orientation` and `icc_profile` are what Pillow would report.
    """

    width: int
    height: int
    orientation: int
    icc_profile: bytes | None
    layout: object


class FormatHandler(Protocol):
    """One accepted input format: how it is recognised, checked, cleaned and verified."""

    name: str
    # The Pillow plugin allowed to open it, so Pillow never guesses a different format.
    pillow_format: str
    # The format its clean copy is written in ("jpeg", "png" or "webp").
    output: str
    # What may stay in a clean copy of this format; empty when the format is never published.
    allowed: frozenset[str]

    def matches(self, head: bytes) -> bool:
        """Whether the first bytes of a file carry this format's magic."""
        ...

    def check_complete(self, data: bytes) -> None:
        """Walk the structure independently of Pillow; raises MalformedError when truncated or broken."""
        ...

    def probe(self, data: bytes) -> Probe | None:
        """Prove with our own parsers that the file can be cleaned losslessly as is, or None.

        None (never an exception) whenever pixels would have to change (orientation to bake,
        animation) or the structure is anything our parsers do not fully account for: the caller
        then decodes, so the decoder's refusals stay exactly as they were.
        """
        ...

    def strip(self, data: bytes, probe: Probe) -> CleanCopy:
        """The lossless clean copy (not yet verified) of a probed file; raises MalformedError."""
        ...

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """Build the clean copy (not yet verified); raises MediaError subclasses.

        The caller has already converted any source whose ICC profile is not a standard one, so
        `source.icc_profile` is None or recognised; the handler writes only its rebuilt form.
        """
        ...

    def verify(self, data: bytes) -> None:
        """Check a clean copy strictly against the allow-list; raises MetadataLeakError."""
        ...
