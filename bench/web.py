"""Benchmark: server response times of the web app's pages on the embedded default.

Starts `gatekeeper serve` on a temporary instance (SQLite, local folders), imports PEOPLE people
with the real command, and times each page over REQUESTS requests from one client, through HTTP
on 127.0.0.1 (connection set-up included): the public withdrawal form (page, submission without a
link), a person's link (page, submission), and the staff pages people, person and audit. Prints
one JSON object with p50/p95/max in milliseconds per page.

Upload-to-verdict latency and the upload and results pages need the photo upload, which is not
in the web app yet; they are reported as null.

    uv run python bench/web.py [--people 500] [--requests 50] > bench/results/web.json
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
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
        links = [cli("people", "link", f"B{i:05d}").strip() for i in range(args.requests)]
        password = cli("users", "add", "bench", "--role", "consent_admin").split()[-1]
        auditor = cli("users", "add", "bench-audit", "--role", "auditor").split()[-1]
        server = subprocess.Popen(
            [sys.executable, "-m", "gatekeeper.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert server.stdout is not None
            for line in server.stdout:
                if line.startswith("serving on"):
                    break
            base = f"http://127.0.0.1:{port}"
            staff, audit = Client(base), Client(base)
            for client, name, secret in ((staff, "bench", password), (audit, "bench-audit", auditor)):
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
        finally:
            server.terminate()
            server.wait(timeout=30)
            if server.stdout:
                server.stdout.close()
    print(
        json.dumps(
            {
                "people": args.people,
                "requests_per_page": args.requests,
                "database": "sqlite (embedded default)",
                "pages": pages,
                "upload_to_verdict": None,
                "upload_and_results_pages": None,
                "note": "photo upload is not in the web app yet",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
