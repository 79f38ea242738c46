"""One storage interface, two backends: a local folder laid out like the bucket, and S3.

:mod:`~m7etl.storage.base` holds the protocol the core talks to,
:mod:`~m7etl.storage.local` and :mod:`~m7etl.storage.s3` the backends, and
:mod:`~m7etl.storage.aws` the one place that makes AWS clients (endpoint, region,
retries). The S3 backend imports botocore only when it is used.
"""

from __future__ import annotations

from pathlib import Path

from m7etl.exceptions import StorageError
from m7etl.storage.base import TMP_PREFIX, ObjectInfo, Storage
from m7etl.storage.local import LocalStorage
from m7etl.storage.s3 import S3Storage

__all__ = ["TMP_PREFIX", "LocalStorage", "ObjectInfo", "S3Storage", "Storage", "open_storage"]


def open_storage(location: str | Path, client=None) -> Storage:
    """``s3://bucket`` gives an :class:`S3Storage`; anything else is a local folder."""
    text = str(location)
    if text.startswith("s3://"):
        bucket = text[5:].strip("/")
        if not bucket or "/" in bucket:
            raise StorageError(f"'{text}' is not a bucket URL.", hint="Use s3://<bucket>.")
        return S3Storage(bucket, client=client)
    return LocalStorage(text)
