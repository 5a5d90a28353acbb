"""Media: recognise, decode, sanitise and verify photos, one handler per format.

Formats are recognised by magic bytes only (`registry`); each handler declares what may stay in a
clean copy. `sanitise` never returns a copy that `verify_clean`, our own strict parser, rejects.
"""

from __future__ import annotations

from gatekeeper.media.base import CleanCopy, DecodedImage, DecodedSource
from gatekeeper.media.cleaning import encode_clean, sanitise, verify_clean
from gatekeeper.media.covering import cover
from gatekeeper.media.decoding import decode, decode_source, frames, output_size
from gatekeeper.media.registry import sniff_format

__all__ = [
    "CleanCopy",
    "DecodedImage",
    "DecodedSource",
    "cover",
    "decode",
    "decode_source",
    "encode_clean",
    "frames",
    "output_size",
    "sanitise",
    "sniff_format",
    "verify_clean",
]
