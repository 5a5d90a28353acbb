"""The half every converted format shares: no lossless copy, always re-encoded from its pixels."""

from __future__ import annotations

from gatekeeper.errors import MetadataLeakError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError, Probe
from gatekeeper.media.conversion import encode_jpeg, encode_png
from gatekeeper.media.icc import rebuilt


class ConvertedFormat:
    """A format never published as it is: its first image is decoded and written as `output`."""

    name: str
    output: str

    def probe(self, data: bytes) -> Probe | None:
        """Never: this format is always converted from decoded pixels."""
        return None

    def strip(self, data: bytes, probe: Probe) -> CleanCopy:
        """Never called: `probe` proves nothing for this format."""
        raise MalformedError(f"{self.name} has no lossless clean copy")

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """The decoded first image as `output` (JPEG at jpeg_quality, or PNG); lossless is False."""
        profile = rebuilt(source.icc_profile)
        if self.output == "png":
            return CleanCopy.of(encode_png(source.image.pixels, profile), "png", lossless=False)
        return CleanCopy.of(
            encode_jpeg(source.image.pixels, profile, quality=jpeg_quality), "jpeg", lossless=False
        )

    def verify(self, data: bytes) -> None:
        """The source format is never a clean copy; raises MetadataLeakError."""
        label = self.name.upper()
        raise MetadataLeakError(
            f"{label} is never a clean copy (it is converted to {self.output.upper()})",
            found=(f"{label} file",),
        )
