"""Blob stores: private originals and published copies, chosen by URL scheme from one table.

| URL | store |
| --- | --- |
| a folder path, or `file:///abs/folder` | `LocalBlobStore` |
| `s3://bucket/prefix` | `storage.s3.S3BlobStore` (boto3, configured the usual AWS way) |
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gatekeeper.errors import StorageError
from gatekeeper.storage.base import OCTET_STREAM, BlobStore, Staged, check_key, opaque_name, write_atomic
from gatekeeper.storage.local import LocalBlobStore, StagedFile

__all__ = [
    "OCTET_STREAM",
    "STORES",
    "BlobStore",
    "LocalBlobStore",
    "Staged",
    "StagedFile",
    "check_key",
    "opaque_name",
    "open_store",
    "write_atomic",
]


def _open_s3(url: str) -> BlobStore:
    # boto3 takes a noticeable moment to import: only processes that use S3 pay for it.
    from gatekeeper.storage.s3 import S3BlobStore

    return S3BlobStore.from_url(url)


# Scheme -> how to open a store of that scheme. "" is a plain folder path.
STORES: dict[str, Callable[[str], BlobStore]] = {
    "": lambda url: LocalBlobStore(Path(url)),
    "file": lambda url: LocalBlobStore(Path(url.removeprefix("file://"))),
    "s3": _open_s3,
}


def open_store(url: str) -> BlobStore:
    """The store named by `url` (see the table above); raises StorageError for other schemes."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    opener = STORES.get(scheme)
    if opener is None:
        supported = ", ".join(f"{s}://" for s in STORES if s)
        raise StorageError(f"unsupported store URL {url!r}: use a folder path, {supported}")
    return opener(url)
