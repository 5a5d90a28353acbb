"""A school's website and its social media archives, built from corpus photos, for the scan tests.

`build_site` writes the pages and images into a folder; `SiteServer` serves it from 127.0.0.1 with
what a real site has (a robots.txt, a sitemap, redirects, a 404, an image served with the wrong
Content-Type) and records every request, with its User-Agent. The archives are zips in the layouts
Facebook, Instagram and X use for their "download your information" exports.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

# The corpus photos the site shows, by the name they have on it.
PHOTOS = {
    "obama": "obama/obama2.jpg",  # consented to the website
    "biden": "biden/biden2.jpg",  # consented to print only
    "kit": "kit_harington/kit_harington_johnsnow_test1.jpg",  # consented (withdrawn in a test)
    "rose": "rose_leslie/rose_leslie_img2.jpg",  # consent expired
}


def _resized(path: Path, long_edge: int, fmt: str = "JPEG") -> bytes:
    image = Image.open(path).convert("RGB")
    image.thumbnail((long_edge, long_edge))
    out = io.BytesIO()
    image.save(out, fmt, quality=85)
    return out.getvalue()


def landscape() -> bytes:
    """A picture with nobody in it."""
    image = Image.new("RGB", (640, 400))
    for x in range(640):
        for y in range(0, 400, 4):
            image.putpixel((x, y), (x % 256, 120, (y * 2) % 256))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG whose header declares far more pixels than the limit (its data is cut short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def photo_bytes(faces_dir: Path) -> dict[str, bytes]:
    """The site's images: WordPress renditions of obama, a WebP and a JPEG of kit, the others once."""
    obama = faces_dir / PHOTOS["obama"]
    return {
        "wp-content/uploads/2024/05/sports-day.jpg": obama.read_bytes(),
        "wp-content/uploads/2024/05/sports-day-1024x683.jpg": _resized(obama, 400),
        "wp-content/uploads/2024/05/sports-day-300x200.jpg": _resized(obama, 200),
        "img/biden.jpg": (faces_dir / PHOTOS["biden"]).read_bytes(),
        "img/kit.jpg": (faces_dir / PHOTOS["kit"]).read_bytes(),
        "img/kit.webp": _resized(faces_dir / PHOTOS["kit"], 10_000, "WEBP"),
        "img/full/rose.jpg": (faces_dir / PHOTOS["rose"]).read_bytes(),
        "img/landscape.png": landscape(),
        "img/huge.png": huge_png(),
        "private/secret.jpg": (faces_dir / PHOTOS["biden"]).read_bytes(),
    }


def page(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head><title>School</title>{head}</head><body>{body}</body></html>"


def build_site(root: Path, faces_dir: Path, other: str) -> None:
    """Write the site into `root`; `other` is the base URL of a server on another port (never to be
    fetched)."""
    for name, data in photo_bytes(faces_dir).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    up = "/wp-content/uploads/2024/05"
    pages = {
        "index.html": page(
            f"""<h1>Welcome</h1>
            <a href="/news/">News</a> <a href="/old-gallery">Gallery</a> <a href="/away">Away</a>
            <a href="{other}/admin">Another port</a> <a href="http://169.254.169.254/latest/meta-data/">x</a>
            <a href="file:///etc/passwd">file</a> <a href="/private/secret.html">secret</a>
            <img src="{up}/sports-day-300x200.jpg"
                 srcset="{up}/sports-day-300x200.jpg 300w, {up}/sports-day-1024x683.jpg 1024w,
                         {up}/sports-day.jpg 1600w"
                 alt="Sports day">""",
            head='<meta property="og:image" content="/img/kit.jpg">',
        ),
        "news/index.html": page(
            f"""<div class="hero" style="background-image: url('/img/biden.jpg')">Hero</div>
            <picture><source srcset="/img/kit.webp" type="image/webp">
            <img src="/img/kit.jpg" alt=""></picture>
            <a href="/img/full/rose.jpg">Full size</a>
            <img src="{other}/tracker.jpg"> <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">"""
        ),
        "gallery/index.html": page(
            """<img src="/img/missing.jpg"> <img src="/img/fake.jpg"> <img src="/img/huge.png">
            <img src="/img/landscape.png">"""
        ),
        "private/secret.html": page('<img src="/private/secret.jpg">'),
    }
    for name, html in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(html, encoding="utf-8")
    (root / "img" / "fake.jpg").write_text("<html>this is not a picture</html>", encoding="utf-8")


@dataclass
class Requests:
    """Every request a server answered: path and User-Agent."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.seen]

    def agents(self) -> set[str]:
        with self.lock:
            return {a for _, a in self.seen}


class SiteServer:
    """The site in `root` served on 127.0.0.1 (a port of its own), recording every request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests = Requests()
        self.redirects: dict[str, str] = {}
        # Paths answered with only a status (a server error, say).
        self.statuses: dict[str, int] = {}
        self.robots = ""
        self.sitemap_paths: tuple[str, ...] = ("/", "/news/", "/private/secret.html")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.requests.lock:
                    server.requests.seen.append((path, self.headers.get("User-Agent", "")))
                if path in server.statuses:
                    self.send_response(server.statuses[path])
                    self.end_headers()
                    return
                if path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.end_headers()
                    return
                if path == "/robots.txt":
                    return self._send(server.robots.encode(), "text/plain")
                if path == "/sitemap.xml":
                    return self._send(server.sitemap().encode(), "application/xml")
                target = server.root / path.lstrip("/")
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file() or not target.resolve().is_relative_to(server.root.resolve()):
                    self.send_response(404)
                    self.end_headers()
                    return
                kind = "text/html" if target.suffix == ".html" else "image/jpeg"  # wrong for PNG and WebP
                self._send(target.read_bytes(), kind)

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def sitemap(self) -> str:
        locs = "".join(f"<url><loc>{self.url}{p}</loc></url>" for p in self.sitemap_paths)
        return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Site:
    server: SiteServer
    other: SiteServer

    @property
    def url(self) -> str:
        return self.server.url


# --- archives --------------------------------------------------------------------------------------


def facebook_archive(path: Path, images: dict[str, bytes]) -> Path:
    """A Facebook "download your information" JSON export: posts with photos, and an album."""
    names = list(images)
    root = "your_facebook_activity/posts"
    posts = [
        {
            "timestamp": 1_700_000_000 + i,
            "attachments": [
                {
                    "data": [
                        {
                            "media": {
                                "uri": f"{root}/media/Timelinephotos_1/{n}",
                                "creation_timestamp": 1_700_000_000 + i,
                                "title": "",
                            }
                        }
                    ]
                }
            ],
            "data": [{"post": "Sports day!"}],
        }
        for i, n in enumerate(names[:-1])
    ]
    album = {
        "name": "Trip",
        "photos": [{"uri": f"{root}/media/Trip_2/{names[-1]}", "creation_timestamp": 1_650_000_000}],
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{root}/your_posts__check_ins__photos_and_videos_1.json", json.dumps(posts))
        archive.writestr(f"{root}/album/0.json", json.dumps(album))
        for n in names[:-1]:
            archive.writestr(f"{root}/media/Timelinephotos_1/{n}", images[n])
        archive.writestr(f"{root}/media/Trip_2/{names[-1]}", images[names[-1]])
        archive.writestr("your_facebook_activity/messages/readme.txt", "nothing")
    return path


def instagram_archive(path: Path, images: dict[str, bytes]) -> Path:
    """An Instagram JSON export (in a top folder, as some downloads are): posts and a story."""
    top = "instagram-school-2025-01-01"
    names = list(images)
    posts = [
        {
            "media": [
                {"uri": f"media/posts/202405/{n}", "creation_timestamp": 1_715_000_000 + i, "title": "Trip"}
            ]
        }
        for i, n in enumerate(names[:-1])
    ]
    stories = {
        "ig_stories": [{"uri": f"media/stories/202406/{names[-1]}", "creation_timestamp": 1_718_000_000}]
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/your_instagram_activity/content/posts_1.json", json.dumps(posts))
        archive.writestr(f"{top}/your_instagram_activity/content/stories.json", json.dumps(stories))
        for n in names[:-1]:
            archive.writestr(f"{top}/media/posts/202405/{n}", images[n])
        archive.writestr(f"{top}/media/stories/202406/{names[-1]}", images[names[-1]])
    return path


def x_archive(path: Path, images: dict[str, bytes], username: str = "springfield_school") -> Path:
    """An X (Twitter) archive: data/account.js, data/tweets.js and data/tweets_media/."""
    names = list(images)
    tweets = []
    files = {}
    for i, n in enumerate(names):
        tweet_id = str(1_790_000_000_000_000_000 + i)
        media_name = f"Abc{i}.jpg"
        tweets.append(
            {
                "tweet": {
                    "id_str": tweet_id,
                    "created_at": f"Wed May 1{i} 09:30:00 +0000 2024",
                    "full_text": "Sports day",
                    "extended_entities": {
                        "media": [
                            {
                                "type": "photo",
                                "media_url_https": f"https://pbs.twimg.com/media/{media_name}",
                                "expanded_url": f"https://twitter.com/{username}/status/{tweet_id}/photo/1",
                            }
                        ]
                    },
                }
            }
        )
        files[f"data/tweets_media/{tweet_id}-{media_name}"] = images[n]
    account = [{"account": {"username": username, "accountId": "1"}}]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/account.js", "window.YTD.account.part0 = " + json.dumps(account))
        archive.writestr("data/tweets.js", "window.YTD.tweets.part0 = " + json.dumps(tweets))
        archive.writestr("data/manifest.js", "window.__THAR_CONFIG = {}")
        for name, data in files.items():
            archive.writestr(name, data)
    return path
