"""What every kind of source gives a scan: images with where they were found, and what it could not read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# The kinds of source a scan reads.
WEBSITE = "website"
FOLDER = "folder"
FACEBOOK = "facebook"
INSTAGRAM = "instagram"
X = "x"
KINDS = (WEBSITE, FOLDER, FACEBOOK, INSTAGRAM, X)
ARCHIVES = (FACEBOOK, INSTAGRAM, X)


@dataclass(frozen=True)
class Place:
    """Where an image is public: `url` is the placement's target (an image URL, a file path, a post's
    photo), `page` the page or post showing it when known, `posted_at` the post's date when known."""

    url: str
    page: str | None = None
    posted_at: datetime | None = None


@dataclass(frozen=True)
class FoundImage:
    """An image's bytes and where they were found."""

    place: Place
    data: bytes


@dataclass(frozen=True)
class Problem:
    """Something a scan could not fetch or read: where, why (plain words), and a reason code."""

    where: str
    why: str
    code: str

    def as_json(self) -> dict[str, str]:
        """The problem as the report's JSON gives it."""
        return {"where": self.where, "why": self.why, "code": self.code}


@dataclass
class Reading:
    """What a source says about its own reading once every image is given: whether it reached
    everything (no cap, no page that failed), counts for the report, and image URLs found gone."""

    complete: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def count(self, name: str, by: int = 1) -> None:
        """Add to one of the report's counts."""
        self.counts[name] = self.counts.get(name, 0) + by


class Source(Protocol):
    """A place a scan reads images from."""

    kind: str
    location: str
    reading: Reading

    def images(self) -> Iterator[FoundImage | Problem]:
        """Every image found, and every problem, in the order met; `reading` is final afterwards."""
        ...
