"""The two storage backends behave the same (S3 through a real HTTP moto server)."""

from __future__ import annotations

import pytest

from m7etl.exceptions import StorageError
from m7etl.storage import LocalStorage, S3Storage, open_storage


def test_write_read_list_and_sizes(storage):
    storage.write_bytes("raw/20250501/a.csv", b"abc")
    storage.write_bytes("raw/20250502/b.csv", b"hello")
    storage.write_bytes("raws/c.csv", b"x")
    listed = storage.list("raw/")
    assert [(o.key, o.size) for o in listed] == [("raw/20250501/a.csv", 3), ("raw/20250502/b.csv", 5)]
    assert storage.read_bytes("raw/20250502/b.csv") == b"hello"
    assert storage.size("raw/20250501/a.csv") == 3
    assert storage.exists("raws/c.csv") and not storage.exists("raw/nope.csv")


def test_streaming_read(storage):
    payload = bytes(range(256)) * 5000
    storage.write_bytes("k.bin", payload)
    with storage.open_input("k.bin") as stream:
        chunks = []
        while chunk := stream.read(65536):
            chunks.append(chunk)
    assert b"".join(chunks) == payload


def test_move_keeps_the_bytes_and_removes_the_source(storage):
    storage.write_bytes("landing/x.csv", b"payload")
    storage.move("landing/x.csv", "raw/20250501/x.csv")
    assert not storage.exists("landing/x.csv")
    assert storage.read_bytes("raw/20250501/x.csv") == b"payload"


def test_missing_objects_raise_a_clear_error(storage):
    with pytest.raises(StorageError, match="nope.csv does not exist"):
        storage.read_bytes("raw/nope.csv")
    with pytest.raises(StorageError, match="does not exist"):
        storage.move("raw/nope.csv", "raw/other.csv")


def test_delete_counts_and_batches(storage, monkeypatch):
    monkeypatch.setattr("m7etl.storage.s3.S3_DELETE_BATCH", 3)
    keys = [f"logs/{i}.json" for i in range(7)]
    for k in keys:
        storage.write_bytes(k, b"{}")
    assert storage.delete(keys) == 7
    assert storage.list("logs/") == []


def test_upload_and_download(storage, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"z" * 1000)
    storage.upload_file(src, "gold/x.parquet")
    storage.download_file("gold/x.parquet", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"z" * 1000


def test_local_writes_leave_no_partial_file(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.write_bytes("a/b.json", b"1")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]


def test_local_keys_cannot_escape_the_root(tmp_path):
    with pytest.raises(StorageError, match="outside"):
        LocalStorage(tmp_path / "root").write_bytes("../escape.txt", b"x")


def test_missing_bucket_is_named(s3_client):
    with pytest.raises(StorageError, match="Bucket no-such-bucket-m7 does not exist"):
        S3Storage("no-such-bucket-m7", client=s3_client).list("raw/")


def test_open_storage_picks_the_backend(tmp_path, s3_client):
    assert isinstance(open_storage(tmp_path), LocalStorage)
    assert isinstance(open_storage("s3://bucket-a", client=s3_client), S3Storage)
    with pytest.raises(StorageError, match="not a bucket URL"):
        open_storage("s3://bucket/with/prefix", client=s3_client)


def test_a_prefix_is_a_string_prefix_on_both_backends(storage):
    """S3 lists by key prefix: "raw/20250501" finds the folder's files and the file beside
    it. The local folder listed only the folder when one had that name."""
    for key in ("raw/20250501/a.csv", "raw/20250501.csv", "raw/2025050x.csv", "raw/other.csv"):
        storage.write_bytes(key, b"x")
    assert [o.key for o in storage.list("raw/20250501")] == [
        "raw/20250501.csv", "raw/20250501/a.csv"]
    assert [o.key for o in storage.list("raw/2025050")] == [
        "raw/20250501.csv", "raw/20250501/a.csv", "raw/2025050x.csv"]
