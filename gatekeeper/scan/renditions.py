"""Renditions of one picture, grouped so it is decided once, on its largest copy.

WordPress makes `-150x150`, `-300x200`, `-1024x683` (and `-scaled`) copies of every upload; social
sites recompress. Two images are one picture when their perceptual hashes (a 256-bit pHash of a
small decode) are within a few bits and their shapes agree, or when they are WordPress renditions
of the same upload (same folder, same name once the size suffix is gone). A crop such as
`-150x150` shows part of the upload, so the upload's decision covers it.

Grouping decides which copy the face engine sees, so it errs towards keeping pictures apart: the
threshold is tight and the shapes must match within 2%.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from posixpath import splitext
from urllib.parse import urlsplit

import imagehash
from PIL import Image

from gatekeeper import media
from gatekeeper.scan.found import Place

HASH_SIZE = 16
# Bits of the 256 that may differ between renditions (recompression and resizing move a few).
MAX_DISTANCE = 12
MAX_SHAPE_DIFFERENCE = 0.02
# Small enough to decode fast (a JPEG decodes at a DCT scale), large enough for the hash.
HASH_EDGE = 256
_WORDPRESS_SIZE = re.compile(r"(-\d{1,5}x\d{1,5}|-scaled|-rotated|-e\d{10,13})+$")


@dataclass(frozen=True)
class Fingerprint:
    """An image's perceptual hash and full upright size."""

    phash: imagehash.ImageHash
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def fingerprint(data: bytes, *, max_pixels: int) -> Fingerprint:
    """The perceptual hash and size of an image; raises MediaError as decoding does."""
    source = media.decode_source(data, max_pixels=max_pixels, long_edge=HASH_EDGE)
    pixels = source.image.pixels
    width, height = source.full_size or (pixels.shape[1], pixels.shape[0])
    return Fingerprint(imagehash.phash(Image.fromarray(pixels), hash_size=HASH_SIZE), width, height)


def wordpress_key(place: Place) -> str | None:
    """The upload a WordPress rendition was made from (folder and name without its size suffix)."""
    path = urlsplit(place.url).path if "://" in place.url else place.url
    stem, extension = splitext(path)
    base = _WORDPRESS_SIZE.sub("", stem)
    if not base or not extension:
        return None
    authority = urlsplit(place.url).netloc if "://" in place.url else ""
    return f"{authority}{base}{extension.lower()}"


@dataclass
class Picture:
    """One picture: its largest copy so far (the one decided) and every place it was found."""

    data: bytes
    print: Fingerprint
    places: list[tuple[Place, int, int]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def place_urls(self) -> list[str]:
        return [p.url for p, _, _ in self.places]


def _same_shape(a: Fingerprint, b: Fingerprint) -> bool:
    ratio_a, ratio_b = a.width / a.height, b.width / b.height
    return abs(ratio_a - ratio_b) <= MAX_SHAPE_DIFFERENCE * max(ratio_a, ratio_b)


class Renditions:
    """Pictures grouped as images arrive; only each picture's largest copy is kept in memory."""

    def __init__(self) -> None:
        self.pictures: list[Picture] = []

    def add(self, place: Place, data: bytes, print_: Fingerprint) -> Picture:
        """Put an image with its picture (a new one when it matches none); the picture."""
        key = wordpress_key(place)
        picture = self._match(print_, key)
        if picture is None:
            picture = Picture(data, print_)
            self.pictures.append(picture)
        elif print_.pixels > picture.print.pixels:
            picture.data, picture.print = data, print_
        if place.url not in picture.place_urls():
            picture.places.append((place, print_.width, print_.height))
        if key is not None:
            picture.keys.add(key)
        return picture

    def _match(self, print_: Fingerprint, key: str | None) -> Picture | None:
        for picture in self.pictures:
            if key is not None and key in picture.keys:
                return picture
            if print_.phash - picture.print.phash <= MAX_DISTANCE and _same_shape(print_, picture.print):
                return picture
        return None
