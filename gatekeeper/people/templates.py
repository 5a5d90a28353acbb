"""Face templates at rest: sealed with AES-256-GCM under the person's id, and the keys' rotation.

The keys come from GATEKEEPER_TEMPLATE_KEY (base64, comma-separated, the first seals) or, when it
is not set, from the instance's key file (one key a line, the first seals; made 0600 on first use).
Templates stored in the clear by earlier versions still open; `reseal_all` (`gatekeeper keys
rotate`) encrypts them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import FaceTemplate
from gatekeeper.config import TEMPLATE_KEY_BYTES, Settings, parse_template_keys
from gatekeeper.errors import ConfigError
from gatekeeper.faces.codec import TemplateKeys, is_sealed
from gatekeeper.storage.base import read_or_create_private, write_atomic


@dataclass(frozen=True)
class Resealed:
    """What a rotation did: templates encrypted under the new key, of which were stored in the clear."""

    resealed: int
    were_plain: int
    total: int


def template_keys(settings: Settings) -> TemplateKeys:
    """The configured keys, else the instance key file's (made on first use); raises ConfigError."""
    if settings.template_key:
        return TemplateKeys(parse_template_keys(settings.template_key))
    path = settings.template_key_path
    try:
        raw = read_or_create_private(path, lambda: _key_file([new_key()]))
    except OSError as exc:
        raise ConfigError(f"cannot read or create the template key file {path}: {exc.strerror}") from exc
    try:
        return TemplateKeys(parse_template_keys(",".join(raw.decode("ascii").split())))
    except (UnicodeDecodeError, ConfigError):
        raise ConfigError(f"the template key file {path} is damaged: it must hold base64 keys") from None


def new_key() -> bytes:
    """A fresh random AES-256 key."""
    return os.urandom(TEMPLATE_KEY_BYTES)


def encode_key(key: bytes) -> str:
    """A key as written in GATEKEEPER_TEMPLATE_KEY or the key file."""
    return base64.urlsafe_b64encode(key).decode("ascii")


def _key_file(keys: Sequence[bytes]) -> bytes:
    return "".join(encode_key(k) + "\n" for k in keys).encode("ascii")


def start_rotation(settings: Settings) -> TemplateKeys:
    """With the key file: put a new key first, keeping the old ones (they still open every template).

    With configured keys, nothing is written: the first configured key is the new one. Raises
    ConfigError.
    """
    keys = template_keys(settings)
    if settings.template_key:
        return keys
    rotated = TemplateKeys((new_key(), *keys.keys))
    _write_key_file(settings, rotated.keys)
    return rotated


def finish_rotation(settings: Settings, keys: TemplateKeys) -> None:
    """After the resealed templates are committed: the key file keeps only the key that sealed them."""
    if not settings.template_key:
        _write_key_file(settings, keys.keys[:1])


def _write_key_file(settings: Settings, keys: Sequence[bytes]) -> None:
    path = settings.template_key_path
    try:
        write_atomic(path, _key_file(keys), private=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the template key file {path}: {exc.strerror}") from exc


def reseal_all(session: Session, keys: TemplateKeys, *, now: datetime, actor: str) -> Resealed:
    """Encrypt every template under the first of `keys` (plain ones included); raises FaceError."""
    resealed = were_plain = total = 0
    for template in session.scalars(select(FaceTemplate).order_by(FaceTemplate.id)):
        total += 1
        if keys.is_current(template.encoding):
            continue
        were_plain += not is_sealed(template.encoding)
        encoding = keys.open(template.encoding, template.person_id)
        template.encoding = keys.seal(encoding, template.person_id)
        resealed += 1
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.TEMPLATES_RESEALED,
        subject="templates",
        details={"resealed": resealed, "were_plain": were_plain, "total": total},
    )
    return Resealed(resealed, were_plain, total)
