"""An S3 bucket through a boto3 client, every S3 error mapped to a storage error.

The category comes from :mod:`m7etl.storage.errors`: a throttled, timed-out or unreachable
call, or a stream cut while an object is read, is a :class:`TransientStorageError` (a
retry can help); a missing object is an :class:`ObjectNotFoundError`; a denied access or a
missing bucket is a :class:`StorageError` naming the object and the fix. PUTs are atomic
in S3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from m7etl.exceptions import ObjectNotFoundError, StorageError, TransientStorageError
from m7etl.storage import errors
from m7etl.storage.base import ObjectInfo, missing

if TYPE_CHECKING:
    import pyarrow as pa

S3_DELETE_BATCH = 1000


class S3Storage:
    """An S3 bucket, through a boto3 client (passed in, so tests can give a moto one)."""

    def __init__(self, bucket: str, client=None):
        if client is None:
            from m7etl.storage.aws import client as make_client

            client = make_client("s3")
        self.bucket = bucket
        self.client = client
        self.url = f"s3://{bucket}"

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, what: str, fn, *, key: str | None = None, **kwargs):
        try:
            return fn(Bucket=self.bucket, **({"Key": key} if key is not None else {}), **kwargs)
        except Exception as exc:
            error = self._error(what, exc, key)
            if error is None:
                raise
            raise error from exc

    def _error(self, what: str, exc: BaseException, key: str | None = None) -> StorageError | None:
        """The storage error for a failed S3 call or read; None for an exception that is not
        an AWS or connection failure (a bug: it goes up as it is)."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        inner = _unwrapped(exc)
        category = errors.classify(inner)
        code = errors.error_code(inner)
        if isinstance(inner, ClientError):
            if category == errors.NOT_FOUND and code == "NoSuchBucket":
                return StorageError(f"Bucket {self.bucket} does not exist.",
                                    hint="Create it or check the bucket name.")
            if category == errors.NOT_FOUND:
                return missing(what, key)
            if category in errors.RETRYABLE:
                return TransientStorageError(f"S3 is busy with {what} ({code}).",
                                             hint="Retry in a moment.", key=key)
            if category == errors.DENIED:
                return StorageError(f"Access denied to {what}.", hint="Check the role's S3 "
                                    "permissions on this bucket and prefix.", key=key)
            if category in (errors.EXPIRED, errors.BAD_CREDENTIALS):
                return StorageError(f"AWS rejected the credentials used for {what} ({code}).",
                                    hint="Refresh them (aws sso login, new keys) and retry.",
                                    key=key)
            return StorageError(f"S3 refused {what}: {code} {errors.error_message(inner)}",
                                key=key)
        if category in errors.RETRYABLE:
            return TransientStorageError(
                f"Cannot reach S3 for {what} ({type(inner).__name__}: {inner}).",
                hint="Check the network and retry: the object is unchanged.", key=key)
        if isinstance(inner, NoCredentialsError):
            return StorageError(f"No AWS credentials found for {what}.", hint="Configure them "
                                "(aws configure, AWS_PROFILE or a role) and retry.", key=key)
        if isinstance(inner, (BotoCoreError, Boto3Error)):
            return StorageError(f"The S3 call for {what} failed ({type(inner).__name__}: {inner}).",
                                key=key)
        return None

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix``: :meth:`walk` collected (one listing loop)."""
        return list(self.walk(prefix))

    def walk(self, prefix: str, *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """What :meth:`list` returns, in key order, one ListObjectsV2 page (at most
        ``page_size`` keys, 1000 being S3's maximum) held at a time."""
        what = f"listing {self.describe(prefix)}"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/"):  # "folder" markers of consoles and tools
                        yield ObjectInfo(obj["Key"], obj["Size"], obj["LastModified"].timestamp())
        except Exception as exc:
            error = self._error(what, exc)
            if error is None:
                raise
            raise error from exc

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        head = self._call(self.describe(key), self.client.head_object, key=key)
        return int(head["ContentLength"])

    def read_bytes(self, key: str) -> bytes:
        body = self._call(self.describe(key), self.client.get_object, key=key)["Body"]
        return _Readable(body, self, key).read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(f"writing {self.describe(key)}", self.client.put_object, key=key, Body=data)

    def open_input(self, key: str) -> pa.NativeFile:
        """The object as a stream; a read cut short raises the mapped error (not botocore's)."""
        import pyarrow as pa

        body = self._call(self.describe(key), self.client.get_object, key=key)["Body"]
        return pa.PythonFile(_Readable(body, self, key), mode="r")

    def upload_file(self, local_path: str | Path, key: str) -> None:
        try:
            self.client.upload_file(str(local_path), self.bucket, key)
        except Exception as exc:  # boto3's S3UploadFailedError wraps the ClientError
            raise self._transfer_error(f"writing {self.describe(key)} from {local_path}", exc,
                                       key) from exc

    def download_file(self, key: str, local_path: str | Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(local_path))
        except Exception as exc:
            raise self._transfer_error(f"{self.describe(key)} (to {local_path})", exc, key) from exc

    def _transfer_error(self, what: str, exc: Exception, key: str) -> StorageError:
        """A transfer also reads or writes a local file: an error there is named as such
        (retryable when :func:`errors.classify` says so, e.g. a full disk)."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(_unwrapped(exc), (BotoCoreError, ClientError, Boto3Error)):
            error = self._error(what, exc, key)
            if error is not None:
                return error
        kind = TransientStorageError if errors.is_retryable(exc) else StorageError
        return kind(f"The transfer for {what} failed on the local side ({type(exc).__name__}: "
                    f"{exc}).", key=key)

    def move(self, src: str, dst: str) -> None:
        """Copy, verify the copy's size, then delete the source: never lose the object."""
        size = self.size(src)
        what = f"copying {self.describe(src)}"
        if size <= 5 * 1024**3:
            self._call(what, self.client.copy_object, Key=dst,
                       CopySource={"Bucket": self.bucket, "Key": src})
        else:
            try:
                self.client.copy({"Bucket": self.bucket, "Key": src}, self.bucket, dst)
            except Exception as exc:
                error = self._error(what, exc, src)
                if error is None:
                    raise
                raise error from exc
        copied = self.size(dst)
        if copied != size:
            raise TransientStorageError(  # the object changed under the copy: try again
                f"Copy of {self.describe(src)} to {dst} has {copied} bytes, expected {size}; "
                "the source was kept.", hint="Retry the move.", key=src)
        self._call(f"deleting {self.describe(src)}", self.client.delete_object, key=src)

    def delete(self, keys: Iterable[str]) -> int:
        count = 0
        for batch in _batches(keys, S3_DELETE_BATCH):
            result = self._call(
                f"deleting {len(batch)} objects", self.client.delete_objects,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = result.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 did not delete {len(errors)} of {len(batch)} objects; first: "
                    f"{first.get('Key')} ({first.get('Code')}).", hint="Check permissions and retry.")
            count += len(batch)
        return count


class _Readable:
    """Adapts a botocore StreamingBody to the file protocol pyarrow's PythonFile wants.

    A read that fails (a timeout, a reset connection, a body shorter than announced) raises
    the storage's mapped error naming the object: through pyarrow, the reader sees a
    :class:`TransientStorageError`, never a botocore exception it could take for bad data."""

    closed = False

    def __init__(self, body, storage: S3Storage, key: str):
        self.body = body
        self.storage = storage
        self.key = key

    def read(self, n: int = -1) -> bytes:
        try:
            return self.body.read(None if n is None or n < 0 else n)
        except Exception as exc:
            error = self.storage._error(f"reading {self.storage.describe(self.key)}", exc, self.key)
            if error is None:
                raise
            raise error from exc

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.body.close()
        self.closed = True


def _unwrapped(exc: BaseException) -> BaseException:
    """The AWS error inside boto3's transfer wrappers (S3UploadFailedError keeps the
    ClientError as its context, RetriesExceededError as ``last_exception``)."""
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError

    if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
        return exc.last_exception
    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        return exc.__context__
    return exc


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
