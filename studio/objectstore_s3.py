"""The S3 backend of object storage (django-storages' S3Storage), apart from `objectstore` so that a
host without object storage never imports boto3 (~24 MB in every web process, node and replica).

Django imports it when the "artifacts" storage is first used (settings names it only when
STUDIO_STORAGE_URL is set). botocore's errors become `ObjectStoreError`s here, with the reason.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from studio.storage_errors import ObjectStoreError

SHA256_METADATA = "sha256"


class ArtifactStorage(S3Storage):
    """The S3 backend, writing each file's SHA-256 into its metadata and with its transfers in parts."""

    def __init__(self, **options):
        part = settings.STUDIO_STORAGE_MULTIPART_BYTES
        options.setdefault("file_overwrite", True)  # a key names one immutable file: no renaming
        # At most 4 parts in flight and 4 read ahead: memory stays near 8 parts whatever the file's size.
        config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)
        config.max_in_memory_upload_chunks = 4  # s3transfer's read-ahead of a file object (10 by default)
        options.setdefault("transfer_config", config)
        if options.get("endpoint_url"):
            options.setdefault("addressing_style", "path")  # MinIO and most S3-compatible stores
        super().__init__(**options)

    def _get_write_parameters(self, name, content=None):
        params = super()._get_write_parameters(name, content)
        sha256 = getattr(content, "sha256", "")
        if sha256:
            params["Metadata"] = {**params.get("Metadata", {}), SHA256_METADATA: sha256}
        return params

    def object_for(self, name: str):
        """The boto3 object of a stored name (its key has the storage's prefix)."""
        return self.bucket.Object(self._normalize_name(clean_name(name)))

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket_name}/{self._normalize_name(clean_name(name))}"

    @contextmanager
    def failing_as(self, doing: str) -> Iterator[None]:
        """botocore's errors inside become ObjectStoreError("<doing>: <reason>")."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"{doing}: {_reason(exc)}") from None

    def published_sha256(self, name: str) -> str | None:
        """The SHA-256 a stored file carries ("" if none), or None when there is no such file (a HEAD)."""
        where = self.describe(name)
        try:
            return (self.object_for(name).metadata or {}).get(SHA256_METADATA, "")
        except ClientError as exc:
            if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) == 404:
                return None
            raise ObjectStoreError(f"Could not read {where}: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise ObjectStoreError(f"Could not reach object storage for {where}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
