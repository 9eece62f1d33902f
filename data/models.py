"""Data assets, their immutable versions, the ingests that make them, upload slots and datastores.

Table names are the ones these models had in `workspaces/`, so moving them lost no row.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from studio.validation import description_field, name_field

ASSET_NAME_PATTERN = r"^[\w][\w .()\-]{0,99}$"
ASSET_NAME_MESSAGE = "Use 1–100 letters, digits, spaces, dots, hyphens or underscores."


class DataAsset(models.Model):
    """A named, versioned tabular data set in a workspace."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="data_assets")
    name = name_field(max_length=100, pattern=ASSET_NAME_PATTERN, message=ASSET_NAME_MESSAGE)
    description = description_field()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "workspaces_dataasset"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="data_asset_unique_name")]

    def __str__(self) -> str:
        return self.name


class DataVersion(models.Model):
    """One immutable version of a data asset: a Parquet file with its schema and profile.

    A version exists only once its data is ingested and profiled; attempts in progress or failed
    are `Ingest` rows, so a failure never leaves a half-made version.
    """

    asset = models.ForeignKey(DataAsset, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = description_field()
    tags = models.JSONField(default=list, blank=True)
    source_name = models.CharField(max_length=255, blank=True)  # the uploaded file's name, for display only
    source_format = models.CharField(max_length=20, blank=True)
    source_size = models.BigIntegerField(default=0)
    source_sha256 = models.CharField(max_length=64, blank=True)  # of the uploaded file: spots identical re-uploads
    rows = models.BigIntegerField(default=0)
    columns = models.PositiveIntegerField(default=0)
    schema = models.JSONField(default=dict)  # dataio.Schema.to_json()
    profile = models.JSONField(default=dict)  # dataio.profile()
    parquet_size = models.BigIntegerField(default=0)
    parquet_sha256 = models.CharField(max_length=64, blank=True)
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_versions"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "workspaces_dataversion"
        ordering = ["asset_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["asset", "version"], name="data_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.asset.name}:{self.version}"


INGEST = "ingest"  # the job kind an ingest runs as (registered in apps.py; its handler is in jobs.py)


class IngestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Ingesting"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class IngestSource(models.TextChoices):
    UPLOAD = "upload", "Upload"  # also a schema edit (base_version set) and a file ingested in process
    URL = "url", "URL"
    QUERY = "query", "Datastore query"
    S3 = "s3", "S3 object"


class Ingest(models.Model):
    """An attempt to make a new data version: from an uploaded file, a URL, a datastore's query or
    object, or from an existing version with an edited schema. Runs as a job; on success it points at the
    version it made."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="ingests")
    asset_name = models.CharField(max_length=100)
    description = description_field()
    tags = models.JSONField(default=list, blank=True)
    source_name = models.CharField(max_length=255, blank=True)
    source_size = models.BigIntegerField(default=0)
    source_sha256 = models.CharField(max_length=64, blank=True)
    base_version = models.ForeignKey(
        DataVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # set for a schema edit
    schema_changes = models.JSONField(default=dict, blank=True)
    source_kind = models.CharField(max_length=20, choices=IngestSource.choices, default=IngestSource.UPLOAD)
    source_url = models.CharField(max_length=2000, blank=True)  # an import from a URL (connectors.check_url)
    datastore = models.ForeignKey(
        "Datastore", null=True, blank=True, on_delete=models.SET_NULL, related_name="ingests"
    )  # an import of a query's rows
    query = models.TextField(blank=True)
    object_key = models.CharField(max_length=1024, blank=True)  # an S3 datastore's key, or a prefix ending in /
    status = models.CharField(max_length=20, choices=IngestStatus.choices, default=IngestStatus.QUEUED)
    error = models.JSONField(default=dict, blank=True)  # {"message", "row", "column"}
    progress_rows = models.BigIntegerField(default=0)
    progress_bytes = models.BigIntegerField(default=0)
    job = models.ForeignKey("compute.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    version = models.ForeignKey(DataVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "workspaces_ingest"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self) -> str:
        return f"ingest #{self.pk} of {self.asset_name}"


class UploadSlot(models.Model):
    """One upload in progress by a user. A user holds at most STUDIO_UPLOAD_MAX_CONCURRENT slots,
    numbered from 0; the unique number makes the limit exact across web processes. The upload
    touches its slot while it streams; a slot untouched for STUDIO_UPLOAD_STALE_SECONDS belonged
    to a process that died, and is reclaimed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    touched_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "workspaces_uploadslot"
        constraints = [models.UniqueConstraint(fields=["user", "number"], name="upload_slot_unique_number")]

    def __str__(self) -> str:
        return f"upload slot {self.number} of {self.user}"


class DatastoreKind(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    S3 = "s3", "S3"


S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
S3_BUCKET_MESSAGE = "Give an S3 bucket name: 3–63 lowercase letters, digits, dots or hyphens."
S3_REGION_PATTERN = r"^[a-z0-9][a-z0-9\-]{0,49}$"
S3_REGION_MESSAGE = "Give a region such as us-east-1 (lowercase letters, digits and hyphens)."


class Datastore(models.Model):
    """Where data is imported from: a PostgreSQL database (by query) or an S3 bucket (by key).

    The secret part is sealed at rest and never shown again: a PostgreSQL connection URL with its
    password, or an S3 access key pair (JSON). `display` and the bucket fields keep what people may see.
    """

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="datastores")
    name = name_field(max_length=100, pattern=ASSET_NAME_PATTERN, message=ASSET_NAME_MESSAGE)
    description = description_field()
    kind = models.CharField(max_length=20, choices=DatastoreKind.choices, default=DatastoreKind.POSTGRESQL)
    sealed_secret = models.TextField()  # studio.sealing, purpose DATASTORE_SEAL_PURPOSE
    bucket = models.CharField(
        max_length=63, blank=True, validators=[RegexValidator(S3_BUCKET_PATTERN, S3_BUCKET_MESSAGE)]
    )  # S3 only, as the next two
    region = models.CharField(
        max_length=50, blank=True, validators=[RegexValidator(S3_REGION_PATTERN, S3_REGION_MESSAGE)]
    )
    endpoint_url = models.CharField(max_length=300, blank=True)  # empty: AWS; else MinIO or another S3 API
    display = models.CharField(max_length=300, blank=True)  # user@host:port/database, no password
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="datastore_unique_name")]

    def __str__(self) -> str:
        return self.name
