"""A blob store in a local folder: temporary file then rename, so no partial blob has a real key.

Folders are made 0700 and files 0600 whatever the umask: a store holds originals or copies of
photos of children, readable by the service's user only (a published folder outside the instance
folder excepted: see Runtime.published).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from gatekeeper.errors import BlobNotFoundError, InvalidKeyError, StorageError
from gatekeeper.storage.base import OCTET_STREAM, check_key, make_private_dirs, open_private, write_atomic


class LocalBlobStore:
    """A folder on local disk (the content type is not kept: a file has none)."""

    def __init__(self, root: Path, *, private: bool = True) -> None:
        self.root = root.resolve()
        # False only for published copies in a folder of their own, which a web server may serve.
        self.private = private

    @property
    def url(self) -> str:
        """`file://` and the absolute folder."""
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKeyError(f"key {key!r} resolves outside the store")
        return path

    def put(self, key: str, data: bytes, content_type: str = OCTET_STREAM) -> None:
        """Store `data` under `key`, replacing any previous value; raises StorageError."""
        try:
            write_atomic(self._path(key), data, private=self.private)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc.strerror}") from exc

    def stage(self, key: str, data: bytes, content_type: str = OCTET_STREAM) -> StagedFile:
        """A hidden temporary file beside `key`'s path, renamed into place on commit."""
        try:
            return StagedFile(self._path(key), data, private=self.private)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc.strerror}") from exc

    def get(self, key: str) -> bytes:
        """The bytes under `key`; raises BlobNotFoundError, StorageError."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(self.url, key) from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc.strerror}") from exc

    def delete(self, key: str) -> int:
        """Remove `key` (and a staged write of it); how many files went; raises StorageError."""
        try:
            path = self._path(key)
            removed = 0
            for candidate in (path, path.with_name(f".{path.name}.partial")):
                if candidate.is_file():
                    candidate.unlink(missing_ok=True)
                    removed += 1
            return removed
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc.strerror}") from exc

    def delete_many(self, keys: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Remove each key (see `delete`): (files gone by key, why by key that failed)."""
        deleted: dict[str, int] = {}
        errors: dict[str, str] = {}
        for key in keys:
            try:
                deleted[key] = self.delete(key)
            except StorageError as exc:
                errors[key] = str(exc)
        return deleted, errors

    def exists(self, key: str) -> bool:
        """True when `key` holds a blob."""
        return self._path(key).is_file()

    def iter_entries(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Every key with its modification time; a staged file counts under its final key."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            if not path.is_file():
                continue
            name = path.name
            if name.startswith(".") and name.endswith(".partial"):
                name = name[1 : -len(".partial")]
            elif name.startswith("."):
                continue
            key = path.relative_to(self.root).with_name(name).as_posix()
            if key.startswith(prefix):
                yield key, datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with `prefix`, temporary files excluded."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key


class StagedFile:
    """A file written under a hidden temporary name, made visible only by `commit()`."""

    def __init__(self, final: Path, data: bytes, *, private: bool = True) -> None:
        self.final = final
        self._tmp = final.with_name(f".{final.name}.partial")
        if private:
            make_private_dirs(final.parent)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.unlink(missing_ok=True)  # left by a crash: the write starts again
        try:
            with open(open_private(self._tmp), "wb") if private else open(self._tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def commit(self) -> None:
        """Move the file into place; raises StorageError."""
        try:
            os.replace(self._tmp, self.final)
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot move {self.final.name!r} into place: {exc.strerror}") from exc

    def abort(self) -> None:
        """Remove the temporary file; the final name never appears."""
        self._tmp.unlink(missing_ok=True)
