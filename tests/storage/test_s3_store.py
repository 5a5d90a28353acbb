"""The S3 store against a real S3 HTTP endpoint (moto's server) with a versioned bucket."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from gatekeeper.errors import BlobNotFoundError, InvalidKeyError, StorageError
from gatekeeper.storage import open_store


def _prefix() -> str:
    return f"t{secrets.token_hex(4)}"


def test_put_get_exists_and_list_round_trip(s3: Any) -> None:
    prefix = _prefix()
    store = open_store(f"s3://{s3.bucket}/{prefix}")
    store.put("copies/ab.jpg", b"jpeg bytes", "image/jpeg")
    store.put("copies/cd.jpg", b"more", "image/jpeg")
    assert store.get("copies/ab.jpg") == b"jpeg bytes"
    assert store.exists("copies/ab.jpg")
    assert not store.exists("copies/zz.jpg")
    assert sorted(store.iter_keys("copies/")) == ["copies/ab.jpg", "copies/cd.jpg"]
    assert [k for k, _ in s3.versions(prefix)] == [f"{prefix}/copies/ab.jpg", f"{prefix}/copies/cd.jpg"]


def test_objects_carry_no_metadata_beyond_the_content_type(s3: Any) -> None:
    prefix = _prefix()
    store = open_store(f"s3://{s3.bucket}/{prefix}")
    store.put("k.jpg", b"x", "image/jpeg")
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"{prefix}/k.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert head["Metadata"] == {}
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key=f"{prefix}/k.jpg")["Grants"]
    assert all("URI" not in g["Grantee"] for g in grants)  # no AllUsers / AuthenticatedUsers grant


def test_a_missing_key_is_its_own_error(s3: Any) -> None:
    store = open_store(f"s3://{s3.bucket}/{_prefix()}")
    with pytest.raises(BlobNotFoundError) as caught:
        store.get("nothing/here")
    assert caught.value.key == "nothing/here"


def test_a_delete_removes_every_version_and_delete_marker(s3: Any) -> None:
    prefix = _prefix()
    store = open_store(f"s3://{s3.bucket}/{prefix}")
    store.put("a.jpg", b"one")
    store.put("a.jpg", b"two")
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{prefix}/a.jpg")  # a delete marker on top
    store.put("a.jpg", b"three")
    store.put("ab.jpg", b"a neighbour sharing the prefix")
    assert len([k for k, _ in s3.versions(f"{prefix}/a.jpg") if k == f"{prefix}/a.jpg"]) == 4
    store.delete("a.jpg")
    assert [k for k, _ in s3.versions(prefix)] == [f"{prefix}/ab.jpg"]
    store.delete("a.jpg")  # idempotent
    assert not store.exists("a.jpg")


def test_a_delete_refused_for_one_version_is_reported_and_nothing_claims_done(s3: Any) -> None:
    bucket = f"locked-{secrets.token_hex(4)}"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = open_store(f"s3://{bucket}/p")
    store.put("held.jpg", b"old")
    held = s3.client.list_object_versions(Bucket=bucket)["Versions"][0]["VersionId"]
    store.put("held.jpg", b"new")
    s3.client.put_object_legal_hold(
        Bucket=bucket, Key="p/held.jpg", VersionId=held, LegalHold={"Status": "ON"}
    )
    with pytest.raises(StorageError, match="AccessDenied"):
        store.delete("held.jpg")
    # The free version went; the held one stays, and the store says so rather than "done".
    remaining = store.versions("held.jpg")  # type: ignore[attr-defined]
    assert remaining == [("version", held)]
    s3.client.put_object_legal_hold(
        Bucket=bucket, Key="p/held.jpg", VersionId=held, LegalHold={"Status": "OFF"}
    )
    store.delete("held.jpg")
    assert store.versions("held.jpg") == []  # type: ignore[attr-defined]


def test_keys_are_checked_before_anything_is_sent(s3: Any) -> None:
    store = open_store(f"s3://{s3.bucket}/{_prefix()}")
    with pytest.raises(InvalidKeyError):
        store.put("../escape", b"x")


def test_deleting_many_keys_lists_once_deletes_every_version_and_reports_refusals(s3: Any) -> None:
    bucket = f"many-{secrets.token_hex(4)}"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = open_store(f"s3://{bucket}/p")
    keys = [f"k{i:03d}.jpg" for i in range(60)]  # enough to delete from one listing
    for key in keys:
        store.put(key, b"v1")
        store.put(key, b"v2")
    s3.client.delete_object(Bucket=bucket, Key="p/k001.jpg")  # a delete marker on top
    store.put("kept.jpg", b"not asked for")
    held = s3.client.list_object_versions(Bucket=bucket, Prefix="p/k002.jpg")["Versions"][0]["VersionId"]
    s3.client.put_object_legal_hold(
        Bucket=bucket, Key="p/k002.jpg", VersionId=held, LegalHold={"Status": "ON"}
    )
    deleted, failed = store.delete_many(keys)
    assert list(failed) == ["k002.jpg"] and "AccessDenied" in failed["k002.jpg"]
    assert deleted["k001.jpg"] == 3 and deleted["k000.jpg"] == 2 and len(deleted) == 59
    left = s3.client.list_object_versions(Bucket=bucket)
    assert sorted((v["Key"], v["VersionId"]) for v in left.get("Versions", [])) == sorted(
        [
            ("p/k002.jpg", held),
            *(("p/kept.jpg", v["VersionId"]) for v in left["Versions"] if v["Key"] == "p/kept.jpg"),
        ]
    )
    assert left.get("DeleteMarkers", []) == []
    s3.client.put_object_legal_hold(
        Bucket=bucket, Key="p/k002.jpg", VersionId=held, LegalHold={"Status": "OFF"}
    )
    deleted, failed = store.delete_many(keys)
    assert failed == {} and deleted["k002.jpg"] == 1 and sum(deleted.values()) == 1
    assert list(store.iter_keys()) == ["kept.jpg"]
