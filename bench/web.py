"""Benchmark: server response times of the web app's pages on the embedded default.

Starts `gatekeeper serve` on a temporary instance (SQLite, local folders), imports PEOPLE people
with the real command, and times each page over REQUESTS requests from one client, through HTTP
on 127.0.0.1 (connection set-up included): the public withdrawal form (page, submission without a
link), a person's link (page, submission), and the staff pages people, person and audit. Prints
one JSON object with p50/p95/max in milliseconds per page.

Upload to verdict: PHOTOS corpus photos (distinct files: the corpus, then re-encoded crops of it)
uploaded as one batch through the upload form, with the face models loaded and the gate jobs run
by the server's own embedded consumer; each photo's latency runs from the start of the upload to
the moment the batch's JSON first shows its verdict (polled every 0.2 s). The same photos then go
through `gatekeeper gate --json` in the same run, each photo's latency measured from the start of
the command to its line of output. Also the server response times of the upload page, the upload
itself, the batch (results) page, its JSON, and a photo page.

    uv run python bench/web.py [--people 500] [--requests 50] [--photos 50] > bench/results/web.json
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CSRF = re.compile(r'name="(?:[a-z]+-)?csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "benchmark password 123"
CHANNELS = "website;social_media;print"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """A browser-like client: cookies kept, redirects followed, CSRF tokens read from pages."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path) as response:
            return str(response.read().decode())

    def post(self, path: str, form: dict[str, Any], token_from: str | None = None) -> str:
        page = self.get(token_from or path)
        match = CSRF.search(page)
        assert match, f"no CSRF token on {token_from or path}"
        body = urllib.parse.urlencode({**form, "csrf_token": match.group(1)}, doseq=True).encode()
        with self.opener.open(self.base + path, data=body) as response:
            return str(response.read().decode())


def _timed(count: int, call: Any) -> dict[str, float]:
    times = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 2),
        "max_ms": round(times[-1], 2),
    }


def _stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(values[max(0, int(len(values) * 0.95) - 1)], 1),
        "max_ms": round(values[-1], 1),
    }


def _corpus() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    root = Path(os.environ.get("GATEKEEPER_CORPUS", default))
    if not (root / "faces" / "manifest.csv").is_file():
        raise SystemExit(f"photo corpus not found at {root} (set GATEKEEPER_CORPUS)")
    return root / "faces"


def _photos(faces: Path, count: int, folder: Path) -> list[Path]:
    """`count` distinct photos: the corpus files, then JPEG re-encodings of 1-pixel crops of them."""
    import io

    from PIL import Image

    sources = sorted(p for p in faces.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    folder.mkdir(parents=True)
    out = []
    for i in range(count):
        source = sources[i % len(sources)]
        target = folder / f"{i:03d}{source.suffix.lower() if i < len(sources) else '.jpg'}"
        if i < len(sources):
            target.write_bytes(source.read_bytes())
        else:
            with Image.open(source) as image:
                upright = image.convert("RGB")
                cut = i // len(sources)
                buffer = io.BytesIO()
                upright.crop((cut, cut, upright.width - cut, upright.height - cut)).save(
                    buffer, format="JPEG", quality=92
                )
            target.write_bytes(buffer.getvalue())
        out.append(target)
    return out


def _multipart(fields: dict[str, str], files: list[Path]) -> tuple[bytes, str]:
    boundary = "bench" + os.urandom(8).hex()
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    for path in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


ENROLMENT = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "alex_lacamoire": "alex_lacamoire/alex_lacamoire_img1.jpg",
    "kit_harington": "kit_harington/kit_harington_john1.jpeg",
    "rose_leslie": "rose_leslie/rose_leslie_img1.jpg",
}


def _upload_bench(base: str, client: Client, photos: list[Path], requests: int) -> dict[str, Any]:
    """Upload every photo as one batch and follow the batch's JSON until each verdict is in."""
    page = client.get("/upload")
    match = CSRF.search(page)
    assert match
    body, content_type = _multipart({"csrf_token": match.group(1), "channel": "website"}, photos)
    started = time.perf_counter()
    request = urllib.request.Request(base + "/upload", data=body, headers={"Content-Type": content_type})
    with client.opener.open(request) as response:
        batch_url = response.geturl()
        response.read()
    upload_ms = (time.perf_counter() - started) * 1000
    batch_path = urllib.parse.urlparse(batch_url).path
    done_at: dict[int, float] = {}
    verdicts: dict[int, str] = {}
    while len(done_at) < len(photos):
        state = json.loads(client.get(batch_path + ".json"))
        moment = (time.perf_counter() - started) * 1000
        for photo in state["photos"]:
            if photo["status"] in ("done", "failed") and photo["position"] not in done_at:
                done_at[photo["position"]] = moment
                verdicts[photo["position"]] = photo["verdict"] or photo["status"]
        if time.perf_counter() - started > 3600:
            raise SystemExit("verdicts did not arrive within an hour")
        time.sleep(0.2)
    photo_url = json.loads(client.get(batch_path + ".json"))["photos"][0]["url"]
    counts: dict[str, int] = {}
    for verdict in verdicts.values():
        counts[verdict] = counts.get(verdict, 0) + 1
    return {
        "photos": len(photos),
        "upload_request_ms": round(upload_ms, 1),
        "latency": _stats(list(done_at.values())),
        "batch_wall_s": round(max(done_at.values()) / 1000, 2),
        "verdicts": counts,
        "pages": {
            "upload_page": _timed(requests, lambda i: client.get("/upload")),
            "batch_results_page": _timed(requests, lambda i: client.get(batch_path)),
            "batch_results_json": _timed(requests, lambda i: client.get(batch_path + ".json")),
            "photo_page": _timed(requests, lambda i: client.get(photo_url)),
        },
    }


def _gate_bench(env: dict[str, str], folder: Path) -> dict[str, Any]:
    """`gatekeeper gate --json` on the same photos: each photo's latency from the command's start."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper.cli", "gate", "--channel", "website", "--json", str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    times = []
    counts: dict[str, int] = {}
    for line in process.stdout:
        times.append((time.perf_counter() - started) * 1000)
        verdict = json.loads(line).get("verdict") or "error"
        counts[verdict] = counts.get(verdict, 0) + 1
    process.wait()
    return {
        "photos": len(times),
        "latency": _stats(times),
        "wall_s": round(max(times) / 1000, 2),
        "verdicts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--photos", type=int, default=50)
    args = parser.parse_args()
    faces = _corpus()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "instance"
        port = _port()
        env = {
            **os.environ,
            "GATEKEEPER_HOME": str(home),
            "GATEKEEPER_DATABASE_URL": f"sqlite:///{home / 'gatekeeper.db'}",
            "GATEKEEPER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GATEKEEPER_WITHDRAW_RATE_LIMIT": "100000 per minute",
            "GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT": "100000 per minute",
        }

        def cli(*argv: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "gatekeeper.cli", *argv],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            return done.stdout

        rows = [
            "external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by,granted_on,valid_until,named"
        ]
        rows += [
            f"B{i:05d},Learner {i},2014-01-{i % 28 + 1:02d},,no,{CHANNELS},parent,2025-09-01,,no"
            for i in range(args.people)
        ]
        csv_path = Path(tmp) / "people.csv"
        csv_path.write_text("\n".join(rows) + "\n")
        cli("people", "import", str(csv_path))
        cli("dpia", "record", "--ref", "DPIA-BENCH", "--approved-by", "Bench", "--on", "2026-01-05")
        enrol = ["external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by"]
        enrol += [
            f"{name},{name.replace('_', ' ').title()},1980-01-01,{faces / rel},yes,website,self"
            for name, rel in ENROLMENT.items()
        ]
        (Path(tmp) / "enrol.csv").write_text("\n".join(enrol) + "\n")
        cli("people", "import", str(Path(tmp) / "enrol.csv"))
        photos = _photos(faces, args.photos, Path(tmp) / "photos")
        uploader = cli("users", "add", "bench-upload", "--role", "uploader").split()[-1]
        links = [cli("people", "link", f"B{i:05d}").strip() for i in range(args.requests)]
        password = cli("users", "add", "bench", "--role", "consent_admin").split()[-1]
        auditor = cli("users", "add", "bench-audit", "--role", "auditor").split()[-1]
        log = open(Path(tmp) / "serve.log", "w")  # noqa: SIM115 (closed after the server stops)
        server = subprocess.Popen(
            [sys.executable, "-m", "gatekeeper.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert server.stdout is not None
            for line in server.stdout:
                if line.startswith("serving on"):
                    break
            base = f"http://127.0.0.1:{port}"
            staff, audit, comms = Client(base), Client(base), Client(base)
            for client, name, secret in (
                (staff, "bench", password),
                (audit, "bench-audit", auditor),
                (comms, "bench-upload", uploader),
            ):
                client.post("/login", {"username": name, "password": secret})
                client.post("/account/password", {"current": secret, "new": PASSWORD, "confirm": PASSWORD})
            public = Client(base)
            paths = [urllib.parse.urlparse(link).path for link in links]
            form = {
                "name": "Learner 7",
                "date_of_birth": "2014-01-08",
                "relationship": "parent",
                "contact_email": "p@x.org",
            }
            token = CSRF.search(public.get("/withdraw"))
            assert token
            pages = {
                "withdraw_form_page": _timed(args.requests, lambda i: public.get("/withdraw")),
                "withdraw_form_submit_no_link": _timed(
                    args.requests,
                    lambda i: public.opener.open(
                        base + "/withdraw",
                        data=urllib.parse.urlencode(
                            {**form, "name": f"Learner {i}", "csrf_token": token.group(1)}
                        ).encode(),
                    ).read(),
                ),
                "withdraw_link_page": _timed(args.requests, lambda i: public.get(paths[i])),
                "withdraw_link_submit": _timed(
                    args.requests,
                    lambda i: public.opener.open(
                        base + paths[i],
                        data=urllib.parse.urlencode(
                            {"everything": "y", "csrf_token": token.group(1)}
                        ).encode(),
                    ).read(),
                ),
                "people_search_page": _timed(args.requests, lambda i: staff.get(f"/people?q=learner+{i}")),
                "person_page": _timed(args.requests, lambda i: staff.get(f"/people/B{i:05d}")),
                "withdrawal_requests_page": _timed(args.requests, lambda i: staff.get("/withdrawals")),
                "audit_page_with_chain_check": _timed(args.requests, lambda i: audit.get("/audit")),
            }
            try:
                upload = _upload_bench(base, comms, photos, args.requests)
            except Exception:
                log.flush()
                print((Path(tmp) / "serve.log").read_text()[-5000:], file=sys.stderr)
                raise
        finally:
            server.terminate()
            server.wait(timeout=30)
            if server.stdout:
                server.stdout.close()
            log.close()
        # The server is stopped: the command line has the machine to itself, as the server had.
        gate = _gate_bench(env, Path(tmp) / "photos")
    print(
        json.dumps(
            {
                "people": args.people,
                "requests_per_page": args.requests,
                "database": "sqlite (embedded default)",
                "pages": pages,
                "upload_to_verdict_web": {k: v for k, v in upload.items() if k != "pages"},
                "upload_and_results_pages": upload["pages"],
                "gate_command_same_photos": gate,
                "cores": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
