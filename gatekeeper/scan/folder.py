"""A folder as a scan source: a website export or a WordPress `uploads/` tree, read file by file.

Only regular files are read (links are not followed, so the scan stays inside the folder); hidden
files are skipped. A file is an image by its content: one with an image's name that is not one is
reported, any other file (pages, styles, scripts) is passed over and counted.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from gatekeeper import media
from gatekeeper.errors import FileTooLargeError, MediaError
from gatekeeper.media.refusals import explain
from gatekeeper.scan.found import FOLDER, FoundImage, Place, Problem, Reading

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".heic", ".heif", ".tif", ".tiff", ".avif", ".bmp"}
)


def looks_like_image(name: str) -> bool:
    """Whether a file or URL path is named as an image."""
    return Path(name.lower().split("?", 1)[0]).suffix in IMAGE_SUFFIXES


class FolderSource:
    """Every image under a folder, in name order, up to `max_images`."""

    kind = FOLDER

    def __init__(self, root: Path, *, max_bytes: int, max_images: int) -> None:
        self.root = root.resolve()
        self.location = str(self.root)
        self.max_bytes = max_bytes
        self.max_images = max_images
        self.reading = Reading()

    def images(self) -> Iterator[FoundImage | Problem]:
        """Each image file's bytes (path as its place); files that cannot be read as problems."""
        taken = 0
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                where = str(path)
                status = path.lstat()
                if not stat.S_ISREG(status.st_mode):
                    if looks_like_image(name):
                        yield Problem(where, "not a regular file (a link?): not followed", "not_a_file")
                    continue
                if taken >= self.max_images:
                    self.reading.complete = False
                    self.reading.count("not_read_cap")
                    continue
                if status.st_size > self.max_bytes:
                    too_large = explain(FileTooLargeError(status.st_size, self.max_bytes))
                    yield Problem(where, too_large.reason, too_large.code)
                    continue
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    yield Problem(where, f"cannot read: {exc.strerror or exc}", "cannot_read")
                    continue
                try:
                    media.sniff_format(data)
                except MediaError as exc:
                    if looks_like_image(name):
                        yield Problem(where, explain(exc).reason, exc.code)
                    else:
                        self.reading.count("other_files")
                    continue
                taken += 1
                yield FoundImage(Place(where), data)
        if not self.reading.complete:
            yield Problem(
                self.location,
                f"the image cap ({self.max_images}) was reached: "
                f"{self.reading.counts.get('not_read_cap', 0)} files were not read",
                "image_cap",
            )
