"""Face templates are encrypted at rest: a database dump holds no encoding, `keys rotate` re-encrypts.

Real enrolment from corpus photos, the raw column read back with SQL, the real gate afterwards.
"""

from __future__ import annotations

import base64
import stat
import struct
from typing import Any

import numpy as np
import pytest
from engines import recorded_runtime
from sqlalchemy import text

from consent_db.session import unit_of_work
from gatekeeper.errors import FaceError
from gatekeeper.faces.codec import TemplateKeys, encoding_to_bytes, is_sealed
from gatekeeper.people.templates import template_keys
from gatekeeper.runtime import Runtime
from helpers import add_person, gate_json, run
from workers import JobQueue

pytestmark = pytest.mark.slow


def _enrol_biden(runtime: Any, corpus: Any) -> None:
    add_person(runtime, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"])


def _raw_templates(runtime: Any) -> list[tuple[int, bytes]]:
    with runtime.db.connect() as conn:
        rows = conn.execute(text("SELECT person_id, encoding FROM face_templates ORDER BY id")).all()
    return [(int(person_id), bytes(data)) for person_id, data in rows]


def _biden_is_recognised(runtime: Any, corpus: Any) -> bool:
    [line] = gate_json(runtime, "website", corpus.faces_dir / "biden/biden2.jpg")
    return bool(line["verdict"] == "publishable" and [f["person"] for f in line["faces"]] == ["biden"])


def test_a_database_dump_holds_no_plaintext_encoding_and_the_gate_still_recognises(
    runtime: Any, corpus: Any
) -> None:
    from gatekeeper import media

    _enrol_biden(runtime, corpus)
    [(person_id, raw)] = _raw_templates(runtime)
    encoding = runtime.faces.encode_single(
        media.decode((corpus.faces_dir / "biden/biden.jpg").read_bytes(), max_pixels=10**8).pixels
    )
    # Not one float64 of the encoding, nor the encoding's bytes, is in the column.
    assert is_sealed(raw)
    assert encoding_to_bytes(encoding) not in raw
    assert [value for value in encoding if struct.pack("<d", value) in raw] == []
    keys = template_keys(runtime.settings)
    assert np.allclose(keys.open(raw, person_id), encoding, atol=1e-6)
    with pytest.raises(FaceError):
        keys.open(raw, person_id + 1)
    # The key file the instance made is private.
    key_file = runtime.settings.template_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _biden_is_recognised(runtime, corpus)


def test_plaintext_templates_still_match_and_keys_rotate_encrypts_them(runtime: Any, corpus: Any) -> None:
    _enrol_biden(runtime, corpus)
    [(person_id, sealed)] = _raw_templates(runtime)
    old_key_file = runtime.settings.template_key_path.read_text()
    # A template as versions before encryption stored it: the 1024 bytes of the encoding.
    plain = encoding_to_bytes(template_keys(runtime.settings).open(sealed, person_id))
    with runtime.db.begin() as conn:
        conn.execute(text("UPDATE face_templates SET encoding = :plain"), {"plain": plain})
    assert _biden_is_recognised(runtime, corpus)

    result = run(runtime, "keys", "rotate")

    assert result.exit_code == 0, result.output
    assert "1 of 1 face templates encrypted under the new key (1 were stored in the clear)" in result.output
    [(_, raw)] = _raw_templates(runtime)
    assert is_sealed(raw) and plain not in raw
    new_key_file = runtime.settings.template_key_path.read_text()
    assert new_key_file != old_key_file and len(new_key_file.split()) == 1
    assert stat.S_IMODE(runtime.settings.template_key_path.stat().st_mode) == 0o600
    # The old key no longer opens anything: the new one does.
    [old_key] = (base64.urlsafe_b64decode(k) for k in old_key_file.split())
    with pytest.raises(FaceError, match="not configured"):
        TemplateKeys([old_key]).open(raw, person_id)
    assert _biden_is_recognised(runtime, corpus)
    again = run(runtime, "keys", "rotate")
    assert "1 of 1 face templates encrypted under the new key (0 were stored in the clear)" in again.output


def test_configured_keys_rotate_to_the_first_and_the_old_key_alone_no_longer_opens(
    runtime: Any, corpus: Any
) -> None:
    first, second = (run(runtime, "keys", "new").output.strip() for _ in range(2))
    assert first != second and len(base64.urlsafe_b64decode(first)) == 32

    def with_keys(value: str) -> Runtime:
        return recorded_runtime(runtime.settings.with_(template_key=value), sender=JobQueue)

    old = with_keys(first)
    try:
        _enrol_biden(old, corpus)
        assert not runtime.settings.template_key_path.exists()
    finally:
        old.db.dispose()
    rotating = with_keys(f"{second},{first}")
    try:
        result = run(rotating, "keys", "rotate")
        assert result.exit_code == 0, result.output
        assert "remove the others" in result.output
    finally:
        rotating.db.dispose()
    new = with_keys(second)
    try:
        [(person_id, raw)] = _raw_templates(new)
        assert template_keys(new.settings).is_current(raw)
        assert _biden_is_recognised(new, corpus)
        with pytest.raises(FaceError):
            template_keys(with_keys(first).settings).open(raw, person_id)
        with unit_of_work(new.sessions) as session:
            actions = session.execute(text("SELECT action FROM audit_events")).scalars().all()
        assert "templates.resealed" in actions
    finally:
        new.db.dispose()
