"""A website as a scan source: its pages (sitemaps and same-host links) and every image they show.

Manners: robots.txt is read first and obeyed (for pages and images; its Crawl-delay slows the rate
further), requests are spaced to `GATEKEEPER_SCAN_RATE` per second, every request names the tool in
its User-Agent and has a time-out, and the page and image caps stop the crawl.

Safety: only the host given is fetched, at the port given (a default port counts for both http
and https, so `http://` to `https://` redirects are followed); redirects are followed by hand and
only on that host; only http and https. The host's addresses at the start are the only private
ones allowed: if the name later resolves to another private, loopback, link-local or reserved
address (DNS rebinding), the request is refused. Responses are read up to a cap (pages: the scan's
page cap in bytes; images: the upload limit), and an image is recognised by its bytes, never by
its Content-Type.
"""

from __future__ import annotations

import gzip
import html
import ipaddress
import re
import socket
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx

from gatekeeper import media
from gatekeeper.config import ScanSettings
from gatekeeper.errors import InvalidInputError, MediaError
from gatekeeper.scan.folder import looks_like_image
from gatekeeper.scan.found import WEBSITE, FoundImage, Place, Problem, Reading

MAX_REDIRECTS = 5
MAX_SITEMAPS = 50
DEFAULT_PORTS = {"http": 80, "https": 443}
# Links to these are neither pages nor images.
NOT_PAGES = frozenset(
    {
        ".pdf",
        ".zip",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".mp4",
        ".mov",
        ".mp3",
        ".css",
        ".js",
        ".ico",
        ".svg",
        ".woff",
        ".woff2",
        ".ttf",
        ".xml",
        ".json",
        ".rss",
        ".txt",
        ".csv",
        ".avi",
        ".webm",
    }
)
_CSS_URL = re.compile(r"background(?:-image)?\s*:[^;}]*?url\(\s*(['\"]?)(.*?)\1\s*\)", re.I | re.S)
_LOC = re.compile(r"<(?:(\w+):)?loc>\s*(.*?)\s*</(?:\w+:)?loc>", re.I | re.S)
_IMAGE_ATTRIBUTES = ("src", "data-src", "data-lazy-src", "data-orig-file", "data-large-file", "data-full-url")
_SRCSET_ATTRIBUTES = ("srcset", "data-srcset", "data-lazy-srcset")
_META_IMAGES = frozenset(
    {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
)


class FetchError(Exception):
    """A request that was refused or failed: why (plain words), a reason code, the HTTP status."""

    def __init__(self, why: str, code: str, status: int | None = None) -> None:
        super().__init__(why)
        self.why, self.code, self.status = why, code, status


def check_start_url(url: str) -> str:
    """The website's URL, normalised; raises InvalidInputError for anything but an http(s) URL with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise InvalidInputError(f"{url}: only http:// and https:// websites can be scanned", field="source")
    if not parts.hostname:
        raise InvalidInputError(f"{url}: no host in the URL", field="source")
    if parts.username or parts.password:
        raise InvalidInputError(f"{url}: a URL with a user name or password is not scanned", field="source")
    try:
        _port(parts)
    except ValueError:
        raise InvalidInputError(f"{url}: the port is not a number", field="source") from None
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _port(parts: SplitResult) -> int:
    """The port a URL reaches (its scheme's default when none is given); raises ValueError."""
    return parts.port or DEFAULT_PORTS.get(parts.scheme, 0)


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as exc:
        raise FetchError(f"the host {host} cannot be found ({exc.strerror})", "dns") from None


def _is_public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_global


def parse_srcset(value: str) -> list[str]:
    """The URLs of a `srcset` (each candidate is a URL and an optional width or density)."""
    urls = []
    for candidate in re.split(r",\s+|,(?=\S+\s)", value.strip()):
        words = candidate.strip().split()
        if words:
            urls.append(words[0].rstrip(","))
    return urls


class PageParser(HTMLParser):
    """The links and the images of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[str] = []
        self.images: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value for name, value in attrs if value is not None}
        if tag == "base" and "href" in values and self.base is None:
            self.base = values["href"]
        if tag in ("a", "area") and "href" in values:
            self.links.append(values["href"])
        if tag in ("img", "source", "input") or (tag == "image"):
            for name in _IMAGE_ATTRIBUTES:
                if name in values and not (
                    tag == "source" and name == "src" and "image" not in values.get("type", "image")
                ):
                    self.images.append(values[name])
            for name in _SRCSET_ATTRIBUTES:
                if name in values:
                    self.images.extend(parse_srcset(values[name]))
            if "href" in values and tag == "image":
                self.images.append(values["href"])
        if tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            if key in _META_IMAGES and "content" in values:
                self.images.append(values["content"])
        if tag == "link" and "image_src" in values.get("rel", "").lower().split() and "href" in values:
            self.images.append(values["href"])
        if "style" in values:
            self.images.extend(m.group(2) for m in _CSS_URL.finditer(values["style"]))
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.images.extend(m.group(2) for m in _CSS_URL.finditer(data))


@dataclass
class Response:
    url: str
    status: int
    content_type: str
    body: bytes


class WebsiteSource:
    """Every image a website shows, page by page, within its caps and its robots.txt."""

    kind = WEBSITE

    def __init__(
        self,
        start_url: str,
        *,
        scan: ScanSettings,
        max_bytes: int,
        max_pages: int,
        max_images: int,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.location = check_start_url(start_url)
        self.start = urlsplit(self.location)
        self.host = (self.start.hostname or "").lower()
        self.port = _port(self.start)
        self.scan = scan
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.max_images = max_images
        self.reading = Reading()
        self.interval = 1.0 / scan.rate
        self.sleep = sleep
        self._last_request: float | None = None
        self._allowed_private: set[str] | None = None
        self._client = httpx.Client(
            headers={"User-Agent": scan.user_agent, "Accept": "text/html,image/*;q=0.9,*/*;q=0.5"},
            timeout=httpx.Timeout(scan.timeout),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )
        self.agent = scan.user_agent.split("/", 1)[0].split()[0]
        self.robots = RobotFileParser()
        self.fetched: list[str] = []
        self._off_host_images: list[str] = []

    # --- what may be fetched --------------------------------------------------------------------

    def on_host(self, url: str) -> bool:
        """Whether `url` is on the host given (http or https, at the given port or the defaults)."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or (parts.hostname or "").lower() != self.host:
            return False
        try:
            port = _port(parts)
        except ValueError:
            return False
        if parts.username or parts.password:
            return False
        return port == self.port or (port in DEFAULT_PORTS.values() and self.port in DEFAULT_PORTS.values())

    def _check_addresses(self) -> None:
        found = _addresses(self.host)
        if self._allowed_private is None:
            # The addresses of the host as given: a school's intranet site may be private.
            self._allowed_private = {a for a in found if not _is_public(a)}
            return
        for address in found:
            if not _is_public(address) and address not in self._allowed_private:
                raise FetchError(
                    f"{self.host} now resolves to the private address {address}: not fetched",
                    "private_address",
                )

    def _wait(self) -> None:
        if self._last_request is not None:
            wait = self._last_request + self.interval - time.monotonic()
            if wait > 0:
                self.sleep(wait)
        self._last_request = time.monotonic()

    def get(self, url: str, *, limit: int) -> Response:
        """GET `url` on the host, following same-host redirects; raises FetchError."""
        for _ in range(MAX_REDIRECTS + 1):
            if not self.on_host(url):
                raise FetchError(
                    f"redirected to another host or port ({url}): not followed", "off_host_redirect"
                )
            self._check_addresses()
            self._wait()
            self.fetched.append(url)
            self.reading.count("requests")
            try:
                with self._client.stream("GET", url) as answer:
                    if answer.is_redirect:
                        location = answer.headers.get("location", "")
                        if not location:
                            raise FetchError(f"HTTP {answer.status_code} without a Location", "bad_redirect")
                        url = urljoin(url, location.strip())
                        continue
                    if answer.status_code != 200:
                        raise FetchError(f"HTTP {answer.status_code}", "http_error", answer.status_code)
                    declared = answer.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise FetchError(f"{int(declared):,} bytes, over the limit of {limit:,}", "too_large")
                    body = bytearray()
                    for chunk in answer.iter_bytes():
                        body.extend(chunk)
                        if len(body) > limit:
                            raise FetchError(f"more than {limit:,} bytes: not read further", "too_large")
                    return Response(
                        url, answer.status_code, answer.headers.get("content-type", ""), bytes(body)
                    )
            except httpx.TimeoutException:
                raise FetchError(f"no answer within {self.scan.timeout:g} seconds", "timeout") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"the request failed ({type(exc).__name__})", "network") from None
        raise FetchError(f"more than {MAX_REDIRECTS} redirects", "too_many_redirects")

    # --- reading the site ----------------------------------------------------------------------

    def _read_robots(self) -> list[str]:
        robots_url = urlunsplit((self.start.scheme, self.start.netloc, "/robots.txt", "", ""))
        try:
            answer = self.get(robots_url, limit=512 * 1024)
        except FetchError as exc:
            if exc.code in ("timeout", "network", "dns", "private_address"):
                raise
            # RFC 9309: rules that exist but cannot be read (401, 403, a server error) forbid
            # everything; rules that are not there (404 and the like) allow everything.
            if exc.status in (401, 403) or (exc.status or 0) >= 500:
                self.robots.disallow_all = True  # type: ignore[attr-defined]
            else:
                self.robots.allow_all = True  # type: ignore[attr-defined]
            return []
        self.robots.parse(answer.body.decode("utf-8", "replace").splitlines())
        delay = self.robots.crawl_delay(self.agent)
        if delay is not None:
            self.interval = max(self.interval, float(delay))
        return list(self.robots.site_maps() or [])

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets this tool fetch `url`."""
        return self.robots.can_fetch(self.agent, url)

    def _sitemap_urls(
        self, sitemaps: list[str]
    ) -> tuple[list[str], list[tuple[str, str | None]], list[Problem]]:
        pages: list[str] = []
        images: list[tuple[str, str | None]] = []
        problems: list[Problem] = []
        queue = deque(
            sitemaps or [urlunsplit((self.start.scheme, self.start.netloc, "/sitemap.xml", "", ""))]
        )
        seen: set[str] = set()
        given = bool(sitemaps)
        while queue and len(seen) < MAX_SITEMAPS:
            url = queue.popleft()
            if url in seen:
                continue
            seen.add(url)
            if not self.on_host(url):
                problems.append(Problem(url, "a sitemap on another host: not fetched", "off_host"))
                continue
            if not self.allowed(url):
                continue
            try:
                answer = self.get(url, limit=self.scan.max_page_bytes)
            except FetchError as exc:
                if given or exc.status != 404:
                    problems.append(Problem(url, f"sitemap not read: {exc.why}", exc.code))
                continue
            body = answer.body
            if body[:2] == b"\x1f\x8b":
                try:
                    body = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(body, self.scan.max_page_bytes)
                except (zlib.error, gzip.BadGzipFile):
                    problems.append(Problem(url, "a sitemap that cannot be unpacked", "bad_sitemap"))
                    continue
            text = body.decode("utf-8", "replace")
            index = "<sitemapindex" in text[:2000].lower()
            self.reading.count("sitemaps")
            current_page: str | None = None
            for match in _LOC.finditer(text):
                prefix, loc = match.group(1), html.unescape(match.group(2)).strip()
                if prefix and prefix.lower() == "image":
                    images.append((loc, current_page))
                elif index:
                    queue.append(loc)
                else:
                    pages.append(loc)
                    current_page = loc
        return pages, images, problems

    def images(self) -> Iterator[FoundImage | Problem]:
        """Every image of the site's pages, each once, then what was left unread."""
        try:
            sitemaps = self._read_robots()
        except FetchError as exc:
            self.reading.complete = False
            yield Problem(self.location, f"the site cannot be reached: {exc.why}", exc.code)
            return
        pages: deque[str] = deque([self.location])
        queued: set[str] = {self.location}
        sitemap_pages, sitemap_images, problems = self._sitemap_urls(sitemaps)
        yield from problems
        for url in sitemap_pages:
            self._queue_page(url, pages, queued)
        image_pages: dict[str, str | None] = {}
        waiting: deque[str] = deque()
        for url, page in sitemap_images:
            self._queue_image(url, page, image_pages, waiting)
        visited = 0
        taken = 0
        while pages or waiting:
            if waiting:
                url = waiting.popleft()
                if taken >= self.max_images:
                    self.reading.complete = False
                    self.reading.count("images_not_fetched_cap")
                    continue
                taken += 1
                yield from self._image(url, image_pages.get(url))
                continue
            page = pages.popleft()
            if visited >= self.max_pages:
                self.reading.complete = False
                self.reading.count("pages_not_visited_cap")
                continue
            if not self.allowed(page):
                self.reading.count("pages_disallowed")
                continue
            visited += 1
            try:
                answer = self.get(page, limit=self.scan.max_page_bytes)
            except FetchError as exc:
                # A page that is not there, or that leads off the host, is as read as it can be;
                # one that failed (time-out, server error) may still show images.
                if not (exc.code == "off_host_redirect" or (exc.status is not None and exc.status < 500)):
                    self.reading.complete = False
                yield Problem(page, f"page not fetched: {exc.why}", exc.code)
                continue
            self.reading.count("pages")
            if _is_image(answer.body):
                # A link that turned out to be an image.
                self._queue_image(page, None, image_pages, waiting)
                image_pages[page] = None
                continue
            if not _is_html(answer):
                self.reading.count("other_documents")
                continue
            parser = PageParser()
            try:
                parser.feed(answer.body.decode(_charset(answer.content_type), "replace"))
                parser.close()
            except (AssertionError, ValueError):
                yield Problem(page, "the page could not be parsed", "bad_html")
            base = urljoin(answer.url, parser.base) if parser.base else answer.url
            for link in parser.links:
                absolute = _absolute(base, link)
                if absolute is None:
                    continue
                if looks_like_image(urlsplit(absolute).path):
                    self._queue_image(absolute, answer.url, image_pages, waiting)
                elif not self.on_host(absolute):
                    self.reading.count("off_host_links")
                elif not _not_a_page(absolute):
                    self._queue_page(absolute, pages, queued)
            for source in parser.images:
                if source.strip().lower().startswith("data:"):
                    self.reading.count("inline_images_not_checked")
                    continue
                absolute = _absolute(base, source)
                if absolute is not None:
                    self._queue_image(absolute, answer.url, image_pages, waiting)
        for url in self._off_host_images:
            yield Problem(
                url, "an image on another host: not fetched (only the host given is scanned)", "off_host"
            )
        if self.reading.counts.get("pages_not_visited_cap"):
            yield Problem(
                self.location,
                f"the page cap ({self.max_pages}) was reached: "
                f"{self.reading.counts['pages_not_visited_cap']} pages were not visited",
                "page_cap",
            )
        if self.reading.counts.get("images_not_fetched_cap"):
            yield Problem(
                self.location,
                f"the image cap ({self.max_images}) was reached: "
                f"{self.reading.counts['images_not_fetched_cap']} images were not fetched",
                "image_cap",
            )
        self._client.close()

    def _queue_page(self, url: str, pages: deque[str], queued: set[str]) -> None:
        url = _without_fragment(url)
        if self.on_host(url) and url not in queued:
            queued.add(url)
            pages.append(url)

    def _queue_image(
        self,
        url: str,
        page: str | None,
        image_pages: dict[str, str | None],
        waiting: deque[str],
    ) -> None:
        url = _without_fragment(url)
        if url in image_pages:
            return
        image_pages[url] = page
        if not self.on_host(url):
            if urlsplit(url).scheme in DEFAULT_PORTS:
                self._off_host_images.append(url)
            return
        waiting.append(url)

    def _image(self, url: str, page: str | None) -> Iterator[FoundImage | Problem]:
        if not self.allowed(url):
            self.reading.count("images_disallowed")
            yield Problem(url, "robots.txt disallows it: not fetched", "robots")
            return
        try:
            answer = self.get(url, limit=self.max_bytes)
        except FetchError as exc:
            if exc.status in (404, 410):
                self.reading.gone.add(url)
            yield Problem(url, f"image not fetched: {exc.why}", exc.code)
            return
        if not _is_image(answer.body):
            try:
                media.sniff_format(answer.body)
            except MediaError as exc:
                yield Problem(
                    url,
                    f"not an image, whatever its Content-Type ({answer.content_type or 'none'}) says",
                    exc.code,
                )
                return
        self.reading.count("images_fetched")
        yield FoundImage(Place(url, page), answer.body)


def _is_image(body: bytes) -> bool:
    try:
        media.sniff_format(body)
    except MediaError:
        return False
    return True


def _is_html(answer: Response) -> bool:
    if "html" in answer.content_type.lower():
        return True
    head = answer.body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _charset(content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type, re.I)
    if match:
        try:
            "".encode(match.group(1))
            return match.group(1)
        except LookupError:
            pass
    return "utf-8"


def _absolute(base: str, link: str) -> str | None:
    link = link.strip()
    if not link or link.startswith(("#", "mailto:", "tel:", "javascript:")):
        return None
    try:
        absolute = urljoin(base, link)
        _port(urlsplit(absolute))
    except ValueError:
        return None
    return absolute


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _not_a_page(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return any(path.endswith(suffix) for suffix in NOT_PAGES)
