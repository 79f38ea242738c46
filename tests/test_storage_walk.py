"""Storage.walk: list() lazily, in key order, page by page (S3 through the moto server)."""

from __future__ import annotations

import os

import pytest

from m7etl.exceptions import StorageError
from m7etl.storage import S3Storage

KEYS = ["raw/20250501/a.csv", "raw/20250501/b.csv", "raw/20250501.csv", "raw/2025050/x.csv",
        "raw/20250502/c.csv", "rawdata/y.csv", "silver/20250501/Device/d.parquet"]


def test_walk_yields_every_key_under_the_prefix_in_s3_key_order(storage):
    for i, key in enumerate(KEYS):
        storage.write_bytes(key, b"x" * (i + 1))
    for prefix in ("raw/", "raw/20250501/", "silver/", "nothing/", ""):
        assert list(storage.walk(prefix)) == storage.list(prefix), prefix
    # A prefix is a string prefix, not a folder: "raw/2025050" is a folder and a key start.
    assert [o.key for o in storage.walk("raw/2025050")] == [
        "raw/2025050/x.csv", "raw/20250501.csv", "raw/20250501/a.csv", "raw/20250501/b.csv",
        "raw/20250502/c.csv"]
    assert [o.key for o in storage.walk("raw")][-1] == "rawdata/y.csv"
    assert [o.key for o in storage.walk("")] == sorted(KEYS)
    assert next(storage.walk("raw/20250502/")).size == 5


def test_walk_is_lazy(storage):
    for key in KEYS:
        storage.write_bytes(key, b"x")
    walking = storage.walk("raw/")
    assert next(walking).key == "raw/2025050/x.csv"
    storage.delete(["raw/2025050/x.csv"])  # what the walk yielded can go (retention does it)
    assert [o.key for o in walking] == [
        "raw/20250501.csv", "raw/20250501/a.csv", "raw/20250501/b.csv", "raw/20250502/c.csv"]


def test_s3_walk_reads_page_by_page(s3_storage, s3_client):
    for i in range(7):
        s3_storage.write_bytes(f"logs/{i}.json", b"{}")
    calls = []
    s3_client.meta.events.register("provide-client-params.s3.ListObjectsV2",
                                   lambda params, **kw: calls.append(params.get("MaxKeys")))
    walked = [o.key for o in s3_storage.walk("logs/", page_size=3)]
    assert walked == [f"logs/{i}.json" for i in range(7)]
    assert calls == [3, 3, 3]  # three pages of at most 3 keys, never the whole listing


def test_s3_walk_maps_errors():
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9",
                          config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    with pytest.raises(StorageError, match="listing s3://b/raw/"):
        next(S3Storage("b", client=client).walk("raw/"))


def test_local_walk_skips_partial_writes_and_links_to_folders(local_storage, tmp_path):
    local_storage.write_bytes("raw/20250501/a.csv", b"a")
    local_storage.write_bytes("raw/20250501/.m7tmp-half", b"h")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "z.csv").write_bytes(b"z")
    os.symlink(outside, local_storage.root / "raw" / "linked")
    assert [o.key for o in local_storage.walk("raw/")] == ["raw/20250501/a.csv"]
    assert list(local_storage.walk("raw/")) == local_storage.list("raw/")
