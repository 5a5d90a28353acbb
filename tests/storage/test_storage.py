"""The local blob store and staged files: our keys only, never a partial file under a real name."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import BlobNotFoundError, InvalidKeyError, NotFoundError, StorageError
from gatekeeper.storage import LocalBlobStore, StagedFile, opaque_name, open_store, write_atomic


def test_put_get_delete_round_trip(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("originals/ab/abc", b"data")
    assert store.get("originals/ab/abc") == b"data"
    assert store.exists("originals/ab/abc")
    assert list(store.iter_keys("originals/")) == ["originals/ab/abc"]
    store.delete("originals/ab/abc")
    store.delete("originals/ab/abc")  # idempotent
    assert not store.exists("originals/ab/abc")
    with pytest.raises(BlobNotFoundError) as caught:
        store.get("originals/ab/abc")
    assert isinstance(caught.value, NotFoundError) and caught.value.key == "originals/ab/abc"


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/../../b", "Name With Spaces.jpg", "", "a//b"])
def test_keys_that_could_leave_the_store_or_carry_names_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        LocalBlobStore(tmp_path).put(key, b"x")


def test_a_symlink_out_of_the_store_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidKeyError):
        LocalBlobStore(root).put("link/x", b"x")


def test_a_staged_file_is_invisible_until_committed(tmp_path: Path) -> None:
    staged = StagedFile(tmp_path / "out" / "a.jpg", b"jpeg")
    assert not staged.final.exists()
    assert [p.name.startswith(".") for p in (tmp_path / "out").iterdir()] == [True]
    staged.commit()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.jpg"]


def test_an_aborted_staged_file_leaves_nothing(tmp_path: Path) -> None:
    StagedFile(tmp_path / "b.jpg", b"jpeg").abort()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    with pytest.raises(OSError):
        write_atomic(target, b"x")  # a folder cannot be replaced by a file
    assert [p.name for p in tmp_path.iterdir()] == ["dir-in-the-way"]
    assert list(target.iterdir()) == []


def test_opaque_names_say_nothing_and_do_not_repeat() -> None:
    names = {opaque_name(".jpg") for _ in range(100)}
    assert len(names) == 100
    assert all(len(n) == 36 and n.endswith(".jpg") for n in names)


def test_store_urls_choose_the_store_by_scheme(tmp_path: Path) -> None:
    local = open_store(f"file://{tmp_path}")
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path.resolve()
    plain = open_store(str(tmp_path / "folder"))
    assert isinstance(plain, LocalBlobStore) and plain.url == f"file://{tmp_path.resolve()}/folder"
    s3 = open_store("s3://bucket/some/prefix")
    assert s3.url == "s3://bucket/some/prefix"
    with pytest.raises(StorageError, match="unsupported store URL"):
        open_store("ftp://example/x")
    with pytest.raises(StorageError, match="names no bucket"):
        open_store("s3:///prefix")


def test_the_store_url_opens_the_same_store_again(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.put("a/b", b"x")
    assert open_store(store.url).get("a/b") == b"x"
