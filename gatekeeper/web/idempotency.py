"""`Idempotency-Key` on the API's POST routes: a repeat of a request gets the first answer back.

The route runs in one unit of work that also claims the key (photos/idempotency.py) and records
the answer, so the answer exists exactly when the change it reports does. Only a success (2xx)
is kept: after an error the repeat runs afresh. The key belongs to the API token that
sent it; the same key with a different request (another path, form, file or JSON body) is refused
with 422, never run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, jsonify, request
from werkzeug.wrappers import Response

from consent_db.session import unit_of_work
from gatekeeper.photos import idempotency
from gatekeeper.web.common import SHARED_UNIT, now, runtime
from gatekeeper.web.limits import bearer_token, token_id

F = TypeVar("F", bound=Callable[..., Any])
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


def fingerprint() -> str:
    """The sha256 of what the request asks for: method, path, query, form fields, files (name and
    content digest) and the JSON body or raw bytes. Multipart boundaries do not count."""
    digest = hashlib.sha256()

    def part(*values: str) -> None:
        for value in values:
            digest.update(value.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")

    part(request.method, request.path)
    for name, value in sorted(request.args.items(multi=True)):
        part("arg", name, value)
    if request.is_json:
        part("json", json.dumps(request.get_json(silent=True), sort_keys=True, separators=(",", ":")))
    elif request.form or request.files:
        for name, value in sorted(request.form.items(multi=True)):
            part("form", name, value)
        for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
            content = hashlib.sha256()
            while chunk := upload.stream.read(1 << 20):
                content.update(chunk)
            upload.stream.seek(0)
            part("file", name, upload.filename or "", content.hexdigest())
    else:
        part("body", hashlib.sha256(request.get_data()).hexdigest())
    return digest.hexdigest()


def _replay(status: int, body: str) -> Response:
    response = current_app.response_class(body, status=status, mimetype="application/json")
    response.headers[REPLAYED] = "true"
    return response


def idempotent(view: F) -> F:
    """Honour an `Idempotency-Key` header on an API route (after `api_permission`: the token is valid).

    Without the header the route runs as usual. Raises InvalidInputError (a malformed key).
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        token = bearer_token()
        assert token is not None  # api_permission let the request through
        idempotency.check_key(key)
        rt = runtime()
        keep = timedelta(hours=rt.settings.web.idempotency_hours)
        with unit_of_work(rt.sessions) as db:
            claimed = idempotency.claim(db, token_id(token), key, fingerprint(), now=now(), keep=keep)
            if claimed.outcome == "replay":
                return _replay(claimed.status, claimed.body)
            if claimed.outcome == "mismatch":
                response = jsonify(
                    error="idempotency_key_reused",
                    message=f"the {HEADER} {key!r} was used for a different request: use a new key",
                )
                return response, 422
            setattr(g, SHARED_UNIT, db)
            try:
                response = current_app.make_response(view(*args, **kwargs))
            finally:
                g.pop(SHARED_UNIT, None)
            idempotency.record(db, claimed, response.status_code, response.get_data(as_text=True))
        return response

    return cast(F, wrapper)
