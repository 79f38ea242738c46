"""An S3 bucket through a boto3 client, every S3 error mapped to a storage error.

A throttled, timed-out or unreachable call is a :class:`TransientStorageError` (a retry
can help); a missing object, a denied access or a missing bucket is a
:class:`StorageError` naming the object and the fix. PUTs are atomic in S3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from m7etl.exceptions import StorageError, TransientStorageError
from m7etl.storage.base import ObjectInfo, missing

if TYPE_CHECKING:
    import pyarrow as pa

S3_DELETE_BATCH = 1000
TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
    "ServiceUnavailable", "RequestTimeTooSkewed", "503", "500",
}


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

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise missing(what) from None
            if code in TRANSIENT_CODES:
                raise TransientStorageError(f"S3 is busy with {what} ({code}).",
                                            hint="Retry in a moment.") from exc
            if code in ("AccessDenied", "403"):
                raise StorageError(f"Access denied to {what}.", hint="Check the role's S3 "
                                   "permissions on this bucket and prefix.") from None
            if code == "NoSuchBucket":
                raise StorageError(f"Bucket {self.bucket} does not exist.",
                                   hint="Create it or check the bucket name.") from None
            detail = exc.response["Error"].get("Message", "")
            raise StorageError(f"S3 refused {what}: {code} {detail}") from exc
        except BotoCoreError as exc:
            raise TransientStorageError(f"Cannot reach S3 for {what} ({exc}).",
                                        hint="Check the network and retry.") from exc

    def list(self, prefix: str) -> list[ObjectInfo]:
        found = []
        token = None
        while True:
            kwargs = {"Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"listing {self.describe(prefix)}", self.client.list_objects_v2, **kwargs)
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # "folder" markers written by consoles and some tools
                found.append(ObjectInfo(obj["Key"], obj["Size"], obj["LastModified"].timestamp()))
            if not page.get("IsTruncated"):
                return found
            token = page["NextContinuationToken"]

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except StorageError as exc:
            if "does not exist" in exc.message:
                return False
            raise
        return True

    def size(self, key: str) -> int:
        head = self._call(self.describe(key), self.client.head_object, Key=key)
        return int(head["ContentLength"])

    def read_bytes(self, key: str) -> bytes:
        return self._call(self.describe(key), self.client.get_object, Key=key)["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(f"writing {self.describe(key)}", self.client.put_object, Key=key, Body=data)

    def open_input(self, key: str) -> pa.NativeFile:
        import pyarrow as pa

        body = self._call(self.describe(key), self.client.get_object, Key=key)["Body"]
        return pa.PythonFile(_Readable(body), mode="r")

    def upload_file(self, local_path: str | Path, key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.upload_file(str(local_path), self.bucket, key)
        except ClientError as exc:
            self._call(f"writing {self.describe(key)}", _reraise(exc))
        except Exception as exc:  # boto3's S3UploadFailedError wraps the ClientError
            raise StorageError(f"Upload of {local_path} to {self.describe(key)} failed: {exc}") from exc

    def download_file(self, key: str, local_path: str | Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, key, str(local_path))
        except ClientError as exc:
            self._call(self.describe(key), _reraise(exc))

    def move(self, src: str, dst: str) -> None:
        """Copy, verify the copy's size, then delete the source: never lose the object."""
        size = self.size(src)
        if size <= 5 * 1024**3:
            self._call(f"copying {self.describe(src)}", self.client.copy_object, Key=dst,
                       CopySource={"Bucket": self.bucket, "Key": src})
        else:
            self.client.copy({"Bucket": self.bucket, "Key": src}, self.bucket, dst)
        copied = self.size(dst)
        if copied != size:
            raise StorageError(
                f"Copy of {self.describe(src)} to {dst} has {copied} bytes, expected {size}; "
                "the source was kept.", hint="Retry the move.")
        self._call(f"deleting {self.describe(src)}", self.client.delete_object, Key=src)

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
    """Adapts a botocore StreamingBody to the file protocol pyarrow's PythonFile wants."""

    closed = False

    def __init__(self, body):
        self.body = body

    def read(self, n: int = -1) -> bytes:
        return self.body.read(None if n is None or n < 0 else n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.body.close()
        self.closed = True


def _reraise(exc):
    def fn(**_kwargs):
        raise exc

    return fn


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
