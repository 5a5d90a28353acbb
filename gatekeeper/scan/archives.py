"""Social media archives as scan sources, read from the zip without extracting it to disk.

- Facebook and Instagram, "Download your information" in JSON: every JSON file is walked for media
  (`{"uri": ..., "creation_timestamp": ...}` inside posts, albums, stories), each linked to its
  post's date (the media's own `creation_timestamp`, else its post's `timestamp`). These exports
  carry no post URLs; a photo's place is its post's date and its path in the archive.
- X (Twitter): `data/tweets.js` (or `data/tweet.js`) names each tweet's media; the files are in
  `data/tweets_media/` (or `data/tweet_media/`) as `<tweet id>-<media file name>`. A photo's place
  is its tweet's photo URL (`https://x.com/<account>/status/<id>/photo/<n>`), with the tweet's date.

Every image in the archive is checked, whether or not a post names it, so none is missed. Members
are read one at a time with the limits of an upload (size, ratio), never written to disk.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from gatekeeper import media
from gatekeeper.errors import InvalidInputError, MediaError
from gatekeeper.media.refusals import explain
from gatekeeper.scan.folder import looks_like_image
from gatekeeper.scan.found import FACEBOOK, INSTAGRAM, FoundImage, Place, Problem, Reading, X

MAX_MEMBERS = 200_000
MAX_JSON_BYTES = 200 * 1024 * 1024
# A photo compresses little: a member that unpacks to more than this many times its packed size is
# refused as a zip bomb before it is read.
MAX_RATIO = 100
LABELS = {FACEBOOK: "Facebook", INSTAGRAM: "Instagram", X: "X"}
_TEXT_SUFFIXES = frozenset({".json", ".js", ".html", ".htm", ".txt", ".css", ".csv"})
_TWEETS = re.compile(r"(^|/)data/tweets?(-part\d+)?\.js$")
_ACCOUNT = re.compile(r"(^|/)data/account\.js$")
_TWEET_MEDIA = re.compile(r"(^|/)data/tweets?_media/(\d+)-([^/]+)$")


def archive_kind(path: Path) -> str:
    """Which social media archive a zip is, by its layout; raises InvalidInputError for none."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()[:MAX_MEMBERS]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(f"{path}: the zip cannot be read ({exc})", field="source") from None
    if any(_TWEETS.search(n) or _ACCOUNT.search(n) for n in names):
        return X
    if any(
        "your_instagram_activity/" in n or n.startswith(("content/posts_", "media/posts/")) for n in names
    ):
        return INSTAGRAM
    if any(
        "your_facebook_activity/" in n or "/your_posts" in f"/{n}" or "photos_and_videos/" in n for n in names
    ):
        return FACEBOOK
    raise InvalidInputError(
        f"{path}: not a Facebook or Instagram (JSON) or X archive as their owners download them",
        field="source",
    )


@dataclass(frozen=True)
class Post:
    """What an archive says about one photo: its place's target, its post's URL, its date."""

    target: str | None
    page: str | None
    posted_at: datetime | None


def _moment(value: object) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _meta_media(node: Any, found: dict[str, datetime | None], when: datetime | None = None) -> None:
    """Every `uri` of an image in a Facebook or Instagram JSON tree, with its date."""
    if isinstance(node, dict):
        when = _moment(node.get("timestamp")) or _moment(node.get("creation_timestamp")) or when
        uri = node.get("uri")
        if isinstance(uri, str) and looks_like_image(uri):
            found.setdefault(uri.lstrip("/"), _moment(node.get("creation_timestamp")) or when)
        for value in node.values():
            _meta_media(value, found, when)
    elif isinstance(node, list):
        for value in node:
            _meta_media(value, found, when)


def _ytd(text: str) -> Any:
    """The JSON of an X archive's `window.YTD.<name>.part0 = [...]` file."""
    start = text.find("=")
    return json.loads(text[start + 1 :] if start >= 0 and not text.lstrip().startswith("[") else text)


def _tweet_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
    except ValueError:
        return None


class ArchiveSource:
    """Every image in a Facebook, Instagram or X archive, with its post where the archive says."""

    def __init__(self, path: Path, kind: str, *, max_bytes: int, max_images: int) -> None:
        self.path = path.resolve()
        self.location = str(self.path)
        self.kind = kind
        self.label = LABELS[kind]
        self.max_bytes = max_bytes
        self.max_images = max_images
        self.reading = Reading()

    def _read(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int) -> bytes:
        """A member's bytes, with the limits of an upload; raises ValueError with why not."""
        if member.flag_bits & 0x1:
            raise ValueError("the file is encrypted")
        if member.file_size > limit:
            raise ValueError(f"{member.file_size:,} bytes, over the limit of {limit:,}")
        if member.file_size > MAX_RATIO * max(member.compress_size, 1) and member.file_size > 1 << 20:
            raise ValueError("it unpacks far larger than it is packed (a zip bomb?)")
        with archive.open(member) as fh:
            content = fh.read(member.file_size + 1)
        if len(content) != member.file_size:
            raise ValueError("the zip's sizes do not match its contents")
        return content

    def _posts(
        self, archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]
    ) -> tuple[dict[str, Post], list[Problem]]:
        """What the archive's own records say of its photos, by member name."""
        problems: list[Problem] = []
        by_name = {m.filename: m for m in members}
        posts: dict[str, Post] = {}
        if self.kind == X:
            account = None
            for member in members:
                if _ACCOUNT.search(member.filename):
                    try:
                        data = _ytd(self._read(archive, member, MAX_JSON_BYTES).decode("utf-8"))
                        account = data[0]["account"]["username"]
                    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
                        problems.append(
                            Problem(f"{self.location}: {member.filename}", "cannot be read", "bad_json")
                        )
            media_files = {}
            for name in by_name:
                match = _TWEET_MEDIA.search(name)
                if match:
                    media_files[(match.group(2), match.group(3))] = name
            for member in members:
                if not _TWEETS.search(member.filename):
                    continue
                try:
                    tweets = _ytd(self._read(archive, member, MAX_JSON_BYTES).decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as exc:
                    problems.append(
                        Problem(f"{self.location}: {member.filename}", f"cannot be read ({exc})", "bad_json")
                    )
                    continue
                for entry in tweets if isinstance(tweets, list) else []:
                    tweet = entry.get("tweet", entry) if isinstance(entry, dict) else {}
                    tweet_id = str(tweet.get("id_str") or tweet.get("id") or "")
                    when = _tweet_time(tweet.get("created_at"))
                    entities = tweet.get("extended_entities") or tweet.get("entities") or {}
                    user = account or "i/web"
                    page = f"https://x.com/{user}/status/{tweet_id}" if tweet_id else None
                    for number, item in enumerate(entities.get("media") or [], start=1):
                        url = str(item.get("media_url_https") or item.get("media_url") or "")
                        media_name = media_files.get((tweet_id, url.rsplit("/", 1)[-1]))
                        if media_name is not None and page is not None:
                            posts[media_name] = Post(f"{page}/photo/{number}", page, when)
            return posts, problems
        found: dict[str, datetime | None] = {}
        for member in members:
            if not member.filename.lower().endswith(".json"):
                continue
            try:
                _meta_media(json.loads(self._read(archive, member, MAX_JSON_BYTES)), found)
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(
                    Problem(f"{self.location}: {member.filename}", f"cannot be read ({exc})", "bad_json")
                )
        # URIs are relative to the export's root, which may sit in a folder of the zip.
        suffixes = {name.split("/", 1)[1]: name for name in by_name if "/" in name}
        for uri, when in found.items():
            member_name = uri if uri in by_name else suffixes.get(uri)
            if member_name is not None:
                day = f" of {when:%Y-%m-%d %H:%M} UTC" if when else ""
                posts[member_name] = Post(f"{self.label} post{day}: {uri}", None, when)
        return posts, problems

    def images(self) -> Iterator[FoundImage | Problem]:
        """Every image member's bytes, with its post where known; members that cannot be read as problems."""
        try:
            archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            self.reading.complete = False
            yield Problem(self.location, f"the archive cannot be read ({exc})", "bad_zip")
            return
        with archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) > MAX_MEMBERS:
                self.reading.complete = False
                yield Problem(
                    self.location, f"the archive holds more than {MAX_MEMBERS:,} files", "too_many_files"
                )
                return
            posts, problems = self._posts(archive, members)
            yield from problems
            self.reading.count("posts_with_photos", len({p.page or p.target for p in posts.values()}))
            taken = 0
            for member in members:
                name = member.filename
                parts = PurePosixPath(name).parts
                if PurePosixPath(name).suffix.lower() in _TEXT_SUFFIXES or any(
                    p.startswith(".") for p in parts
                ):
                    continue
                if taken >= self.max_images:
                    self.reading.complete = False
                    self.reading.count("not_read_cap")
                    continue
                where = f"{self.location}: {name}"
                try:
                    data = self._read(archive, member, self.max_bytes)
                except ValueError as exc:
                    if looks_like_image(name):
                        yield Problem(where, str(exc), "cannot_read")
                    continue
                except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError) as exc:
                    yield Problem(where, f"cannot be unpacked ({type(exc).__name__})", "cannot_read")
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
                post = posts.get(name)
                if post is None:
                    self.reading.count("photos_without_post")
                    place = Place(f"{self.label} archive: {name}")
                else:
                    place = Place(post.target or name, post.page, post.posted_at)
                yield FoundImage(place, data)
            if not self.reading.complete:
                yield Problem(
                    self.location,
                    f"the image cap ({self.max_images}) was reached: "
                    f"{self.reading.counts.get('not_read_cap', 0)} files were not read",
                    "image_cap",
                )
