"""A blob store in an S3 (or S3-compatible) bucket, through boto3.

Endpoint, region and credentials come from the usual AWS configuration (`AWS_ENDPOINT_URL`,
`AWS_REGION`, a profile or keys), never from our settings. Objects are written private, with no
metadata beyond the content type. On a versioned bucket a delete removes every version and delete
marker of the key, and is reported done only once a listing finds none left.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from gatekeeper.errors import BlobNotFoundError, StorageError
from gatekeeper.storage.base import OCTET_STREAM, check_key

_NOT_FOUND = ("NoSuchKey", "404", "NotFound")
# A delete that still finds versions after this many rounds gives up rather than loop forever.
_DELETE_ROUNDS = 5
# More keys than this at once are deleted from one listing of the store (see `delete_many`).
_LIST_ONCE_FROM = 50


class S3BlobStore:
    """Keys under `prefix` in `bucket`."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """`s3://bucket/prefix`; raises StorageError for a URL without a bucket."""
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StorageError(f"store URL {url!r} names no bucket")
        return cls(bucket, prefix)

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (so a store can be built without credentials)."""
        if self._client is None:
            self._client = boto3.client("s3")
        return self._client

    @property
    def url(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes, content_type: str = OCTET_STREAM) -> None:
        """Store `data` under `key` (private, content type only); raises StorageError."""
        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot write {full!r} to s3://{self.bucket}: {exc}") from exc

    def stage(self, key: str, data: bytes, content_type: str = OCTET_STREAM) -> _Uploaded:
        """Upload now (a PUT is atomic; the key is unguessable and referenced only once committed)."""
        self.put(key, data, content_type)
        return _Uploaded(self, key)

    def get(self, key: str) -> bytes:
        """The bytes under `key`; raises BlobNotFoundError, StorageError."""
        full = self._key(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
            return bytes(body.read())
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobNotFoundError(self.url, key) from None
            raise StorageError(f"cannot read {full!r} from s3://{self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {full!r} from s3://{self.bucket}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """True when `key` holds a (current) object; raises StorageError."""
        full = self._key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
            return True
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return False
            raise StorageError(f"cannot look up {full!r} in s3://{self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot look up {full!r} in s3://{self.bucket}: {exc}") from exc

    def versions(self, key: str) -> list[tuple[str, str]]:
        """(kind, version id) of every object version and delete marker of exactly `key`."""
        full = self._key(key)
        found: list[tuple[str, str]] = []
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for kind, entries in (
                    ("version", page.get("Versions", [])),
                    ("marker", page.get("DeleteMarkers", [])),
                ):
                    found.extend((kind, e["VersionId"]) for e in entries if e["Key"] == full)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list versions of {full!r} in s3://{self.bucket}: {exc}") from exc
        return found

    def delete(self, key: str) -> int:
        """Delete every version and delete marker of `key`; raises StorageError if any remains.

        DeleteObjects answers 200 even when some keys failed (a legal hold, a permission): its
        per-key errors are read, and the key is listed again before the delete counts as done.
        """
        full = self._key(key)
        deleted = 0
        for _ in range(_DELETE_ROUNDS):
            remaining = self.versions(key)
            if not remaining:
                return deleted
            errors: list[str] = []
            for start in range(0, len(remaining), 1000):
                batch = [{"Key": full, "VersionId": vid} for _, vid in remaining[start : start + 1000]]
                try:
                    answer = self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise StorageError(f"cannot delete {full!r} from s3://{self.bucket}: {exc}") from exc
                failed = answer.get("Errors", [])
                deleted += len(batch) - len(failed)
                errors.extend(_describe(e, full) for e in failed)
            if errors:
                raise StorageError(
                    f"cannot delete every version of {full!r} from s3://{self.bucket}: {'; '.join(errors)}"
                )
        if self.versions(key):
            raise StorageError(f"versions of {full!r} remain in s3://{self.bucket} after deleting them")
        return deleted

    def delete_many(self, keys: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Delete every version and delete marker of each key: (versions gone by key, why by key
        that failed). A key counts as deleted only once a listing finds none of its versions left.

        A few keys are deleted one by one. Many are deleted from one listing of the store's
        versions (a request per 1,000), 1,000 versions per DeleteObjects request, its per-key
        errors read, then listed again to confirm.
        """
        if len(keys) < _LIST_ONCE_FROM:
            deleted: dict[str, int] = {}
            failed: dict[str, str] = {}
            for key in keys:
                try:
                    deleted[key] = self.delete(key)
                except StorageError as exc:
                    failed[key] = str(exc)
            return deleted, failed
        wanted = {self._key(key): key for key in keys}
        deleted = dict.fromkeys(keys, 0)
        errors: dict[str, list[str]] = {}
        for _ in range(_DELETE_ROUNDS):
            remaining = [(full, vid) for full, vid in self._all_versions() if full in wanted]
            remaining = [(full, vid) for full, vid in remaining if wanted[full] not in errors]
            if not remaining:
                break
            for start in range(0, len(remaining), 1000):
                batch = remaining[start : start + 1000]
                objects = [{"Key": full, "VersionId": vid} for full, vid in batch]
                try:
                    answer = self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                    )
                except (ClientError, BotoCoreError) as exc:
                    for full, _ in batch:
                        errors.setdefault(wanted[full], []).append(f"cannot delete: {exc}")
                    continue
                refused = set()
                for error in answer.get("Errors", []):
                    refused.add((error.get("Key"), error.get("VersionId")))
                    full = error.get("Key", "")
                    errors.setdefault(wanted.get(full, full), []).append(_describe(error, full))
                for full, vid in batch:
                    if (full, vid) not in refused:
                        deleted[wanted[full]] += 1
        else:
            left = {wanted[full] for full, _ in self._all_versions() if full in wanted}
            for key in left - set(errors):
                errors[key] = [f"versions remain in s3://{self.bucket} after deleting them"]
        failed = {key: "; ".join(why) for key, why in errors.items()}
        return {key: n for key, n in deleted.items() if key not in failed}, failed

    def _all_versions(self) -> Iterator[tuple[str, str]]:
        """(full key, version id) of every version and delete marker under the store's prefix."""
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    yield entry["Key"], entry["VersionId"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list versions in s3://{self.bucket}/{self.prefix}: {exc}") from exc

    def iter_entries(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Every current key with its LastModified; raises StorageError."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    yield entry["Key"][len(self.prefix) :], entry["LastModified"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: {exc}") from exc

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every current key starting with `prefix`; raises StorageError."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    yield entry["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: {exc}") from exc


class _Uploaded:
    """An object already in the bucket: committing keeps it, aborting deletes every version."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self.store, self.key = store, key

    def commit(self) -> None:
        """Nothing left to do: the object is in place."""

    def abort(self) -> None:
        """Delete the object and every version of it."""
        self.store.delete(self.key)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(error: dict[str, Any], key: str) -> str:
    where = error.get("VersionId") or error.get("Key", key)
    return f"{where}: {error.get('Code', '?')} {error.get('Message', '')}".strip()
