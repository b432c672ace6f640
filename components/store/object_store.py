"""The project's only door to the object store: MinIO's S3 client, retries and clear failures.

Everything that reads or writes models, datasets or logged traffic goes through `ObjectStore`
so that a store that is briefly down is retried with backoff, while wrong credentials or a
missing bucket fail at once with a message that says what to fix.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

log = logging.getLogger(__name__)

ENDPOINT_VAR = "MINIO_ENDPOINT"
ACCESS_KEY_VAR = "MINIO_ACCESS_KEY"
SECRET_KEY_VAR = "MINIO_SECRET_KEY"
DEFAULT_ENDPOINT = "127.0.0.1:9000"

# S3 error codes that no amount of retrying fixes.
_FATAL_CODES = {
    "SignatureDoesNotMatch": "wrong secret key ({secret})",
    "InvalidAccessKeyId": "unknown access key ({access})",
    "AccessDenied": "access denied: the credentials in {access} lack permission",
    "NoSuchBucket": "bucket does not exist",
    "InvalidBucketName": "invalid bucket name",
}

T = TypeVar("T")


class StoreError(RuntimeError):
    """A store operation that failed for good; the message says what to fix."""


@dataclass(frozen=True)
class StoreConfig:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    secure: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, endpoint: str = "") -> StoreConfig:
        """Read the MinIO variables; credentials have no default so none can leak into code.

        A non-empty `endpoint` (a pipeline parameter, say) overrides MINIO_ENDPOINT.
        """
        missing = [name for name in (ACCESS_KEY_VAR, SECRET_KEY_VAR) if not environ.get(name)]
        if missing:
            raise StoreError(
                "object store credentials missing: set "
                + " and ".join(missing)
                + " (make run creates local ones in .local/store.env)"
            )
        given = endpoint or environ.get(ENDPOINT_VAR) or DEFAULT_ENDPOINT
        secure = given.startswith("https://")
        endpoint = given.removeprefix("https://").removeprefix("http://").rstrip("/")
        if not endpoint or "/" in endpoint:
            raise StoreError(f"the object store endpoint must be host:port, got {given!r}")
        return cls(endpoint, environ[ACCESS_KEY_VAR], environ[SECRET_KEY_VAR], secure)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 8.0
    timeout: float = 10.0


class ObjectStore:
    """A bucket-aware wrapper over `Minio` whose every call is retried or fails clearly."""

    def __init__(
        self,
        config: StoreConfig,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.retry = retry
        self._sleep = sleep
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=retry.timeout, read=retry.timeout),
            retries=urllib3.Retry(total=0),  # retried here, with backoff and a clear final error
            maxsize=16,
        )
        self.client = Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=config.secure,
            http_client=http,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, endpoint: str = "") -> ObjectStore:
        return cls(StoreConfig.from_env(environ, endpoint))

    def call(self, what: str, operation: Callable[[], T]) -> T:
        """Run one store operation, retrying only what can get better by waiting."""
        delay = self.retry.first_delay
        last: Exception | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return operation()
            except S3Error as error:
                if error.code in _FATAL_CODES:
                    hint = _FATAL_CODES[error.code].format(access=ACCESS_KEY_VAR, secret=SECRET_KEY_VAR)
                    raise StoreError(f"{what}: {error.code}: {hint} at {self.config.endpoint}") from error
                if error.code in ("NoSuchKey", "NoSuchUpload"):
                    raise
                last = error
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
                last = error
            if attempt < self.retry.attempts:
                log.warning(
                    "%s failed (attempt %d/%d): %s; retrying in %.1fs",
                    what,
                    attempt,
                    self.retry.attempts,
                    _short(last),
                    delay,
                )
                self._sleep(delay)
                delay = min(delay * 2, self.retry.max_delay)
        raise StoreError(
            f"{what}: object store at {self.config.endpoint} unavailable after "
            f"{self.retry.attempts} attempts: {_short(last)}"
        )

    def ensure_bucket(self, bucket: str) -> None:
        def make() -> None:
            if not self.client.bucket_exists(bucket):
                try:
                    self.client.make_bucket(bucket)
                except S3Error as error:  # created meanwhile by another writer
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        self.call(f"create bucket {bucket}", make)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.call(
            f"write s3://{bucket}/{key}",
            lambda: self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type),
        )

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """Raises S3Error with code NoSuchKey when absent, so callers can tell 'missing' from 'down'."""

        def get() -> bytes:
            response = self.client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self.call(f"read s3://{bucket}/{key}", get)

    def get_bytes_or_none(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.get_bytes(bucket, key)
        except S3Error as error:
            if error.code == "NoSuchKey":
                return None
            raise

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        self.call(f"upload {path} to s3://{bucket}/{key}", lambda: self.client.fput_object(bucket, key, str(path)))

    def download_file(self, bucket: str, key: str, path: Path) -> None:
        self.call(f"download s3://{bucket}/{key}", lambda: self.client.fget_object(bucket, key, str(path)))

    def list_keys(self, bucket: str, prefix: str, recursive: bool = True) -> list[str]:
        return self.call(
            f"list s3://{bucket}/{prefix}",
            lambda: [o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=recursive)],
        )

    def remove(self, bucket: str, keys: Iterator[str] | list[str]) -> None:
        for key in keys:
            self.call(f"remove s3://{bucket}/{key}", functools.partial(self.client.remove_object, bucket, key))


def _short(error: Exception | None) -> str:
    text = str(error) if error else "unknown error"
    return text if len(text) < 300 else text[:300] + "..."
