"""A transient failure is never a bad file; one classification of AWS and storage errors.

The faults are injected around the real backends (a LocalStorage folder, an S3Storage on the
moto server): a stream that raises after some bytes stands in for a disk or a connection
failing mid-file. What it cannot show: botocore turning a real socket timeout into
``ReadTimeoutError`` (the exception class is botocore's own, raised where its body would).
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import tempfile

import pyarrow as pa
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
)
from helpers import csv_bytes

from m7etl.core import layout
from m7etl.core.ingest import INGESTED
from m7etl.core.raw_to_silver import process_raw_file
from m7etl.exceptions import ObjectNotFoundError, StorageError, TransientStorageError
from m7etl.local.standins.mwaa import MwaaStandin
from m7etl.orchestration.failures import RETRYABLE_ERROR_TYPES
from m7etl.orchestration.landing import FAILED, LandedObject, LandingSettings, file_batch
from m7etl.storage import S3Storage, errors

HEADER = ["channel_id", "channel_name", "genre", "language", "is_hd", "package", "launched_on",
          "updated_at"]
ROW = ["TF1", "general", "fr", "true", "basic", "1990-01-01", "2025-05-01 00:00:00"]
KEY = "raw/20250501/Channel_20250501.csv"
CUT_AT = 300_000  # past the 256 KiB head the sniffer reads: the failure comes mid-file


def channel_csv(n: int = 8000, **options) -> bytes:
    """About 70 bytes a row: 8000 rows are ~560 kB, longer than CUT_AT."""
    return csv_bytes([HEADER] + [[str(i), *ROW] for i in range(1, n + 1)], **options)


class _Cut(io.RawIOBase):
    """A stream that raises ``error`` once ``after`` bytes were read from it."""

    def __init__(self, stream, error: BaseException, after: int):
        self.stream, self.error, self.left = stream, error, after

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise self.error
        if n is None or n < 0:  # the whole rest: cut if it is longer than what is left
            data = self.stream.read()
            if len(data) > self.left:
                raise self.error
        else:
            data = self.stream.read(min(n, self.left))
        self.left -= len(data)
        return bytes(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


class FailingStreams:
    """A real storage whose ``open_input`` streams fail after ``after`` bytes."""

    def __init__(self, inner, error: BaseException, after: int = CUT_AT):
        self.inner, self.error, self.after = inner, error, after

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def open_input(self, key: str) -> pa.NativeFile:
        return pa.PythonFile(_Cut(self.inner.open_input(key), self.error, self.after), mode="r")


class CutBodies:
    """A real (moto) S3 client whose GetObject bodies raise ``error`` after ``after`` bytes,
    where botocore's StreamingBody would raise it when the connection breaks."""

    def __init__(self, client, error: BaseException, after: int = CUT_AT):
        self.client, self.error, self.after = client, error, after

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_object(self, **kwargs):
        response = self.client.get_object(**kwargs)
        response["Body"] = _Cut(response["Body"], self.error, self.after)
        return response


def nothing_moved(storage, key: str = KEY) -> bool:
    return (storage.exists(key) and storage.list(layout.QUARANTINE) == []
            and storage.list(layout.SILVER) == [])


# -- 1. an I/O, permission or space error is retryable, the file stays in raw/ -------------
@pytest.mark.parametrize("error", [
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    PermissionError(errno.EACCES, "Permission denied"),
    OSError(errno.EIO, "Input/output error"),
], ids=["reset", "permission", "eio"])
def test_a_stream_failing_mid_file_leaves_the_file_in_raw(local_storage, registry, error):
    local_storage.write_bytes(KEY, channel_csv())
    with pytest.raises(TransientStorageError) as info:
        process_raw_file(FailingStreams(local_storage, error), KEY, registry)
    assert info.value.retryable and info.value.key == KEY
    assert KEY in str(info.value) and type(error).__name__ in str(info.value)
    assert nothing_moved(local_storage)


def test_a_gzip_stream_failing_in_its_head_is_not_corrupt_gzip(local_storage, registry):
    key = KEY + ".gz"
    local_storage.write_bytes(key, channel_csv(gzip=True))
    failing = FailingStreams(local_storage, ConnectionResetError(errno.ECONNRESET, "reset"), 100)
    with pytest.raises(TransientStorageError, match="ConnectionResetError"):
        process_raw_file(failing, key, registry)
    assert nothing_moved(local_storage, key)


def test_corrupt_gzip_data_past_the_head_is_still_quarantined(local_storage, registry):
    """The other side of the line: the decoder's own error is about the data."""
    key = KEY + ".gz"
    data = gzip.compress(channel_csv(40_000), mtime=0)  # ~2.8 MB of text, ~100 kB compressed
    broken = data[:60_000] + bytes(b ^ 0xFF for b in data[60_000:60_200]) + data[60_200:]
    local_storage.write_bytes(key, broken)
    result = process_raw_file(local_storage, key, registry)
    assert result.status == "quarantined" and result.reason.startswith("read_error")


def test_s3_read_timeout_mid_file_is_retryable_and_moves_nothing(s3_storage, s3_client, registry):
    s3_storage.write_bytes(KEY, channel_csv())
    cut = S3Storage(s3_storage.bucket, client=CutBodies(s3_client,
                                                        ReadTimeoutError(endpoint_url="http://s3")))
    with pytest.raises(TransientStorageError) as info:
        process_raw_file(cut, KEY, registry)
    assert info.value.key == KEY and "ReadTimeoutError" in str(info.value)
    assert f"s3://{s3_storage.bucket}/{KEY}" in str(info.value)
    assert type(info.value).__name__ in RETRYABLE_ERROR_TYPES  # the DAG retries it
    assert nothing_moved(s3_storage)


def test_a_full_temporary_folder_is_retryable_and_moves_nothing(local_storage, registry,
                                                               monkeypatch):
    """The temporary silver file is a link to /dev/full, whose writes fail with ENOSPC (the
    kernel's own error, as on a full /tmp)."""
    made = tempfile.mkdtemp

    def full_mkdtemp(suffix=None, prefix=None, dir=None):
        path = made(suffix, prefix, dir)
        if prefix == "m7-r2s-":
            os.symlink("/dev/full", os.path.join(path, "silver.parquet"))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", full_mkdtemp)
    local_storage.write_bytes(KEY, channel_csv(500))
    with pytest.raises(TransientStorageError, match="No space left") as info:
        process_raw_file(local_storage, KEY, registry)
    assert info.value.key == KEY and KEY in str(info.value)
    assert nothing_moved(local_storage)


# -- 2. S3 streams map their errors like every other S3 call --------------------------------
@pytest.mark.parametrize("error", [
    ReadTimeoutError(endpoint_url="http://s3"),
    ConnectionClosedError(endpoint_url="http://s3"),
    IncompleteReadError(actual_bytes=10, expected_bytes=20),
], ids=["timeout", "closed", "incomplete"])
def test_s3_stream_errors_are_transient_storage_errors(s3_storage, s3_client, error):
    s3_storage.write_bytes("k.bin", b"x" * 5000)
    cut = S3Storage(s3_storage.bucket, client=CutBodies(s3_client, error, after=1000))
    with cut.open_input("k.bin") as stream:
        assert len(stream.read(1000)) == 1000
        with pytest.raises(TransientStorageError) as info:
            stream.read(1000)
    assert info.value.key == "k.bin" and type(error).__name__ in str(info.value)
    with pytest.raises(TransientStorageError):
        cut.read_bytes("k.bin")


def test_a_missing_object_is_its_own_class_not_a_message(storage):
    with pytest.raises(ObjectNotFoundError):
        storage.size("raw/nope.csv")
    assert storage.exists("raw/nope.csv") is False


# -- 5. a key that is not there, a file already quarantined, stale reports ------------------
def test_a_missing_key_writes_nothing(storage, registry):
    key = "raw/20250501/Billing_20250501.csv"  # no contract: it used to get a quarantine note
    with pytest.raises(ObjectNotFoundError) as info:
        process_raw_file(storage, key, registry)
    assert info.value.key == key and "nothing was written" in str(info.value)
    assert not info.value.retryable
    assert storage.list("") == []


def test_a_file_already_quarantined_says_so_and_writes_nothing(local_storage, registry):
    local_storage.write_bytes(KEY, b"foo,bar\n1,2\n")
    first = process_raw_file(local_storage, KEY, registry)
    assert first.status == "quarantined"
    before = {o.key: local_storage.read_bytes(o.key) for o in local_storage.list("")}
    again = process_raw_file(local_storage, KEY, registry)
    target = layout.quarantine_key("20250501", KEY)
    assert again.status == "quarantined" and again.outputs == {"quarantine": target}
    assert again.reason == f"already quarantined as {target} ({first.reason})"
    assert {o.key: local_storage.read_bytes(o.key) for o in local_storage.list("")} == before


def test_quarantine_drops_the_stale_report_of_an_earlier_run(storage, registry):
    storage.write_bytes(KEY, channel_csv(3))
    ok = process_raw_file(storage, KEY, registry)
    assert ok.status == "ok" and storage.exists(ok.outputs["report"])
    storage.write_bytes(KEY, b"foo,bar\n1,2\n")  # the same name landed again, broken
    bad = process_raw_file(storage, KEY, registry)
    assert bad.status == "quarantined"
    assert storage.list(layout.SILVER) == []  # silver and report of the earlier run both gone


# -- 4. the S3-event batch: one failing record does not stop the others ---------------------
BUCKET = "m7-etl-data-solocco-test"
DEVICE = csv_bytes([["device_id", "subscriber_id", "model", "firmware_version", "region",
                     "activation_date", "last_seen_at", "status", "signal_quality_pct"],
                    ["STB000000001", "SUB00000001", "M7-HD100", "1.2.3", "Bretagne", "2020-01-01",
                     "2025-05-01 10:00:00", "active", "50"]])


class FailingMoves:
    """A real storage whose ``move`` of one key fails with a throttling error."""

    def __init__(self, inner, key: str):
        self.inner, self.key = inner, key

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def move(self, src: str, dst: str) -> None:
        if src == self.key:
            raise TransientStorageError(f"S3 is busy with copying {src} (SlowDown).", key=src)
        self.inner.move(src, dst)


def test_a_retryable_record_failure_files_the_others_then_fails(local_storage, registry):
    names = ["Device_20250501.csv", "Device_20250502.csv", "Device_20250503.csv"]
    for name in names:
        local_storage.write_bytes(f"landing/{name}", DEVICE)
    batch = [LandedObject(BUCKET, f"landing/{n}", "ObjectCreated:Put", "2025-05-03T07:15:42Z", str(i))
             for i, n in enumerate(names)]
    storage = FailingMoves(local_storage, "landing/Device_20250502.csv")
    server = MwaaStandin(env_name="m7-etl-mwaa-test").start()
    try:
        result = file_batch(batch, LandingSettings(BUCKET, "m7-etl-mwaa-test"),
                            lambda _b: storage, registry=registry, client=server.client())
        runs = sorted(run["conf"]["date"] for run in server.runs.values())
    finally:
        server.stop()
    assert [f.status for f in result.files] == [INGESTED, FAILED, INGESTED]
    assert "SlowDown" in result.files[1].reason
    assert runs == ["20250501", "20250503"]  # the filed ones were not held back
    failure = result.failure()
    assert isinstance(failure, TransientStorageError) and failure.retryable
    assert "landing/Device_20250502.csv" in str(failure) and failure.key == "landing/Device_20250502.csv"
    assert local_storage.exists("landing/Device_20250502.csv")  # left for the retry


# -- 3. one classification ------------------------------------------------------------------
def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("exc", "category"), [
    (client_error("SlowDown", 503), errors.THROTTLED),
    (client_error("RequestLimitExceeded"), errors.THROTTLED),
    (client_error("InternalFailure", 500), errors.TRANSIENT),
    (client_error("SomethingNew", 503), errors.TRANSIENT),  # an unknown code: its HTTP status
    (client_error("SomethingNew", 429), errors.THROTTLED),
    (client_error("AccessDeniedException", 403), errors.DENIED),
    (client_error("NoSuchKey", 404), errors.NOT_FOUND),
    (client_error("ExpiredToken"), errors.EXPIRED),
    (client_error("InvalidClientTokenId", 403), errors.BAD_CREDENTIALS),
    (client_error("ValidationError"), errors.OTHER),
    (ReadTimeoutError(endpoint_url="u"), errors.TRANSIENT),
    (ConnectionClosedError(endpoint_url="u"), errors.TRANSIENT),
    (EndpointConnectionError(endpoint_url="u"), errors.TRANSIENT),
    (ConnectionResetError(), errors.TRANSIENT),
    (OSError(errno.ENOSPC, "full"), errors.TRANSIENT),
    (PermissionError(errno.EACCES, "no"), errors.DENIED),
    (OSError("no errno"), errors.OTHER),
    (ValueError("a bug"), errors.OTHER),
])
def test_one_classification_of_aws_and_storage_errors(exc, category):
    assert errors.classify(exc) == category
    assert errors.is_retryable(exc) is (category in (errors.TRANSIENT, errors.THROTTLED))


def test_the_control_plane_sites_take_the_category_from_it():
    """Codes that one site knew and another did not now mean the same everywhere."""
    from m7etl.deploy.changeset import aws_error
    from m7etl.deploy.doctor import FAIL, aws_failure
    from m7etl.deploy.upload import explain
    from m7etl.orchestration.mwaa import _client_error

    unavailable = client_error("ServiceUnavailableException", 503)
    assert aws_error(unavailable, "reading the stack", "cloudformation:DescribeStacks").retryable
    assert explain("ServiceUnavailableException", "", "PutObject", "b", "k").retryable
    assert _client_error(client_error("ServiceUnavailable", 503), "env", "InvokeRestApi").retryable
    check = aws_failure("x", ReadTimeoutError(endpoint_url="u"), "the stack", "p")
    assert check.status == FAIL and "ReadTimeoutError" in check.detail
    assert aws_failure("x", client_error("AccessDenied"), "the stack", "p").detail == \
        "access denied to the stack"


def test_a_storage_error_names_its_key_and_stays_an_m7_error():
    err = TransientStorageError("S3 is busy.", hint="Retry.", key="raw/a.csv")
    assert (err.key, str(err), err.retryable) == ("raw/a.csv", "S3 is busy. Retry.", True)
    assert StorageError("x").key is None
