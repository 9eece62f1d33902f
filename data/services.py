"""Data assets: upload, ingest as a job, schema edits, immutable versions, deletion.

The web process only streams the upload to disk and sniffs its first bytes; parsing, typing and
profiling run in an ingest job on the workspace's default cluster. A version exists only once
its Parquet file and profile are complete, so a failure never leaves a half-made version.
"""

import json
import os
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from compute.jobs.models import Job
from compute.jobs.services import job_cancel, job_display_name_set, job_submit
from compute.services import default_cluster_for
from data.connectors import (
    S3Location,
    check_connection_url,
    check_endpoint_url,
    check_object_key,
    check_query,
    check_url,
)
from data.dataio import DataError, Limits, Schema, sniff
from data.dataio import ingest as run_ingest
from data.dataio.arriving import arrival, mark_arriving, mark_received, mark_refused, state_path
from data.models import (
    INGEST,
    DataAsset,
    Datastore,
    DatastoreKind,
    DataVersion,
    Ingest,
    IngestSource,
    IngestStatus,
    UploadSlot,
)
from studio import objectstore
from studio.hashing import sha256_file
from studio.references import References
from studio.sealing import seal, unseal
from studio.validation import model_validate
from workspaces.models import Workspace
from workspaces.policy import Action, require
from workspaces.services import (
    StorageQuotaExceeded,
    activity_record,
    workspace_artifact_dir,
    workspace_storage_check,
)

if TYPE_CHECKING:
    from data.uploads import StagedUpload

MAX_TAGS = 20


def data_version_location(version: DataVersion) -> Path:
    """Where a version's Parquet file lives on every host, computed from its rows (R1)."""
    return workspace_artifact_dir(version.asset.workspace_id) / "data" / f"{int(version.pk)}.parquet"


def data_version_path(version: DataVersion) -> Path:
    """A version's Parquet file, ready to read on this host: with object storage, fetched (and
    checked against the version's SHA-256) when this host lacks it or holds a damaged copy.
    Raises objectstore.ObjectStoreError when it cannot be had."""
    return objectstore.ensure_local(data_version_location(version), sha256=version.parquet_sha256)


def ingest_upload_path(ingest: Ingest) -> Path:
    return workspace_artifact_dir(ingest.workspace_id) / "uploads" / f"{int(ingest.pk)}.upload"


def ingest_limits() -> Limits:
    return Limits(own_process_from_bytes=max(1, settings.STUDIO_INGEST_OWN_PROCESS_FROM_BYTES))


def _clean_name(name) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    model_validate(DataAsset(name=name), fields=["name"])
    return name


def asset_name_valid(name: str) -> bool:
    """The data asset name rule (on DataAsset.name), for names other services choose."""
    try:
        model_validate(DataAsset(name=name), fields=["name"])
    except ValidationError:
        return False
    return True


def _clean_tags(tags) -> list[str]:
    if tags in (None, ""):
        return []
    if isinstance(tags, str):
        tags = [t for t in (part.strip() for part in tags.split(",")) if t]
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 50 for t in tags):
        raise ValidationError({"tags": ["Give up to 20 tags of at most 50 characters, separated by commas."]})
    if len(tags) > MAX_TAGS:
        raise ValidationError({"tags": [f"Give at most {MAX_TAGS} tags."]})
    return sorted(set(tags))


def default_asset_name(filename: str) -> str:
    stem = Path(filename or "data").name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".parquet", ".pq"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = re.sub(r"[^\w .()\-]+", "-", stem).strip(" -.") or "data"
    return stem[:100]


# --- Uploads in progress ----------------------------------------------------------------------------
class TooManyUploads(ValidationError):
    """The user already streams STUDIO_UPLOAD_MAX_CONCURRENT uploads."""


def upload_slot_acquire(*, user) -> UploadSlot:
    """Take one of the user's upload slots, or raise TooManyUploads. Exact across web processes:
    two requests racing for the same slot number meet the unique constraint, one moves on."""
    limit = settings.STUDIO_UPLOAD_MAX_CONCURRENT
    now = timezone.now()
    stale = now - timedelta(seconds=settings.STUDIO_UPLOAD_STALE_SECONDS)
    UploadSlot.objects.filter(user=user, touched_at__lt=stale).delete()
    for number in range(limit):
        try:
            with transaction.atomic():
                return UploadSlot.objects.create(user=user, number=number, touched_at=now)
        except IntegrityError:
            continue
    raise TooManyUploads(
        f"You already have {limit} upload{'s' if limit != 1 else ''} in progress; "
        "wait for one to finish, then try again."
    )


def upload_slot_touch(*, slot: UploadSlot) -> None:
    """The upload is still streaming: its slot is not stale."""
    UploadSlot.objects.filter(pk=slot.pk).update(touched_at=timezone.now())


def upload_slot_release(*, slot: UploadSlot) -> None:
    UploadSlot.objects.filter(pk=slot.pk).delete()


def upload_slots_sweep() -> int:
    """Free the slots of uploads whose process died mid-request. Returns how many."""
    stale = timezone.now() - timedelta(seconds=settings.STUDIO_UPLOAD_STALE_SECONDS)
    return UploadSlot.objects.filter(touched_at__lt=stale).delete()[0]


class IdenticalUpload(ValidationError):
    """The file is byte for byte one the asset already has (`version`) or is ingesting (`ingest`)."""

    def __init__(self, *, asset_name: str, version: DataVersion | None = None, ingest: Ingest | None = None):
        self.version, self.ingest = version, ingest
        same = f"{asset_name} v{version.version}" if version else f"the upload being ingested (#{ingest.pk})"
        super().__init__(
            {
                "file": [
                    f"This file is identical to {same} (same SHA-256), so no new version was made. "
                    "Use that version, or choose “Make a new version anyway”."
                ]
            }
        )


def _check_not_identical(*, workspace: Workspace, name: str, sha256: str) -> None:
    version = (
        DataVersion.objects.filter(asset__workspace=workspace, asset__name=name, source_sha256=sha256)
        .order_by("-version")
        .first()
    )
    if version is not None:
        raise IdenticalUpload(asset_name=name, version=version)
    ingest = Ingest.objects.filter(
        workspace=workspace,
        asset_name=name,
        source_sha256=sha256,
        status__in=[IngestStatus.QUEUED, IngestStatus.RUNNING],
    ).first()
    if ingest is not None:
        raise IdenticalUpload(asset_name=name, ingest=ingest)


def data_upload(
    *,
    actor,
    workspace: Workspace,
    upload: "StagedUpload",
    name: str = "",
    description: str = "",
    tags=None,
    allow_identical: bool = False,
) -> Ingest:
    """Accept an uploaded file for a new version of the asset `name` (N+1, or 1 for a new asset).

    Only the first bytes are read here: an empty, binary, pickled or otherwise unusable file is
    refused at once; the rest is checked by the ingest job. A file that would pass the
    workspace's storage quota is refused (StorageQuotaExceeded). A file identical to a version of
    the asset (or to one being ingested) is refused with IdenticalUpload naming it, unless
    `allow_identical`: a duplicate version only costs storage and makes people wonder what changed.
    Whatever fails, the staged file and any copy of it are removed.
    """
    receiving = getattr(upload, "ingest", None)  # already being ingested as it arrived
    try:
        require(actor, workspace, Action.WRITE)
        name = _clean_name(name or default_asset_name(upload.name))
        tags = _clean_tags(tags)
        model_validate(DataAsset(description=description or ""), fields=["description"])
        sha256 = getattr(upload, "sha256", "")
        if sha256 and not allow_identical:
            _check_not_identical(workspace=workspace, name=name, sha256=sha256)
        workspace_storage_check(workspace=workspace, adding=max(upload.size, 1))
        try:
            sniff(upload.path, upload.name, limits=ingest_limits())
        except DataError as exc:
            raise ValidationError({"file": [exc.message]}) from None
    except Exception as exc:
        if receiving is not None:
            ingest_receive_refuse(ingest=receiving, message=_refusal_message(exc))
        upload.discard()
        raise
    if receiving is not None:
        return _ingest_receive_accept(
            ingest=receiving, upload=upload, name=name, description=description, tags=tags, sha256=sha256
        )

    destination = None
    try:
        with transaction.atomic():
            ingest = Ingest.objects.create(
                workspace=workspace,
                asset_name=name,
                description=description or "",
                tags=tags,
                source_name=Path(upload.name).name[:255],
                source_size=upload.size,
                source_sha256=sha256,
                created_by=actor,
            )
            destination = ingest_upload_path(ingest)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(upload.path, destination)
            objectstore.publish(destination, sha256=sha256)  # the ingest job may run on another host
            ingest.job = _submit_ingest_job(
                actor=actor, workspace=workspace, ingest=ingest, target=default_cluster_for(workspace)
            )
            ingest.save(update_fields=["job"])
    except Exception:
        upload.discard()
        if destination is not None:
            destination.unlink(missing_ok=True)  # the Ingest row rolled back: nothing refers to it
        raise
    return ingest


# --- Uploads ingested while they arrive ------------------------------------------------------------
def ingest_receive_start(
    *, actor, workspace: Workspace, file_name: str, staged: Path, expected_size: int
) -> Ingest | None:
    """Start ingesting a large upload as the rest of it arrives: its Ingest and job now, the file
    staged so far moved to the ingest's upload path (the upload goes on writing to it) and marked as
    arriving (see data.dataio.arriving), so the node parses behind the upload instead of after it.
    `data_upload` accepts or refuses it once the whole file is in.

    None when the upload must arrive first: below STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES, or with
    object storage (the node reads the copy published at the end)."""
    threshold = settings.STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES
    if not threshold or expected_size < threshold or objectstore.enabled():
        return None
    require(actor, workspace, Action.WRITE)
    try:
        name = _clean_name(default_asset_name(file_name))  # the form's name replaces it at the end
    except ValidationError:
        return None
    path = None
    try:
        with transaction.atomic():
            ingest = Ingest.objects.create(
                workspace=workspace, asset_name=name, source_name=Path(file_name).name[:255], created_by=actor
            )
            path = ingest_upload_path(ingest)
            path.parent.mkdir(parents=True, exist_ok=True)
            mark_arriving(path, expected_size=expected_size, stale_seconds=settings.STUDIO_UPLOAD_STALE_SECONDS)
            os.replace(staged, path)
            ingest.job = _submit_ingest_job(
                actor=actor, workspace=workspace, ingest=ingest, target=default_cluster_for(workspace)
            )
            ingest.save(update_fields=["job"])
    except Exception as exc:
        if path is not None:  # the Ingest rolled back: the file goes back to staging
            if path.exists():
                os.replace(path, staged)
            state_path(path).unlink(missing_ok=True)
        if isinstance(exc, ValidationError | OSError):
            # The job cannot be taken now (a quota, say), or the file cannot move (another file
            # system): the upload stays staged, and data_upload says why if anything is wrong.
            return None
        raise
    return ingest


def _ingest_receive_accept(*, ingest: Ingest, upload, name: str, description: str, tags, sha256: str) -> Ingest:
    """The whole file is in and passed the upload's checks: the ingest gets the form's name and the
    file's size and checksum, then its reader is told where the file ends."""
    with transaction.atomic():
        accepted = Ingest.objects.filter(pk=ingest.pk, status__in=[IngestStatus.QUEUED, IngestStatus.RUNNING]).update(
            asset_name=name,
            description=description or "",
            tags=tags,
            source_size=upload.size,
            source_sha256=sha256,
        )
        if accepted:
            job_display_name_set(job_id=ingest.job_id, display_name=f"Ingest {name} ({ingest.source_name})")
    if accepted:
        mark_received(upload.path, size=upload.size)
    else:  # the job failed on the part it read (its error says why) and removed the file
        state_path(upload.path).unlink(missing_ok=True)
    ingest.refresh_from_db()
    return ingest


def ingest_receive_refuse(*, ingest: Ingest, message: str) -> None:
    """An upload being ingested as it arrived that will not be complete (cut off, too large) or was
    refused: its reader stops with `message`, its job is canceled, the ingest fails with it. Nothing
    happens once the upload was accepted or refused already."""
    path = ingest_upload_path(ingest)
    state = arrival(path)
    if state is None or state.state not in ("arriving", "written"):
        return
    mark_refused(path, message)
    error = {"code": "upload_refused", "message": message, "row": None, "column": None}
    ingest_fail(ingest=ingest, error=error)
    job = Job.objects.filter(pk=ingest.job_id).first()
    if job is not None and ingest.created_by is not None:
        job_cancel(actor=ingest.created_by, job=job)


def _refusal_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return "The upload could not be accepted; nothing was stored."


# --- Imports from a URL or a datastore ---------------------------------------------------------
DATASTORE_SEAL_PURPOSE = "datastore connection URLs"


def datastore_create(*, actor, workspace: Workspace, name: str, url: str, description: str = "") -> Datastore:
    """Save a PostgreSQL connection under `name`. The URL is sealed at rest and never shown again;
    only user@host:port/database is kept in clear. The studio does not connect here: the first
    import does, on a node."""
    require(actor, workspace, Action.WRITE)
    name = name.strip() if isinstance(name, str) else ""
    row = Datastore(workspace=workspace, name=name, description=description or "", kind=DatastoreKind.POSTGRESQL)
    model_validate(row, fields=["name", "description"])
    try:
        row.display = check_connection_url(url if isinstance(url, str) else "")
    except DataError as exc:
        raise ValidationError({"url": [exc.message]}) from None
    return _datastore_save(actor, row, secret=url.strip())


def datastore_create_s3(
    *,
    actor,
    workspace: Workspace,
    name: str,
    bucket: str,
    access_key_id: str,
    secret_access_key: str,
    region: str = "",
    endpoint_url: str = "",
    description: str = "",
) -> Datastore:
    """Save an S3 bucket (on AWS, or on MinIO or another S3 API at `endpoint_url`) under `name`.
    The key pair is sealed at rest and never shown again; the access key id stays visible in
    `display`, as consoles show it. The studio does not connect here: the first import does."""
    require(actor, workspace, Action.WRITE)
    name = name.strip() if isinstance(name, str) else ""
    row = Datastore(
        workspace=workspace,
        name=name,
        description=description or "",
        kind=DatastoreKind.S3,
        bucket=(bucket or "").strip() if isinstance(bucket, str) else "",
        region=(region or "").strip() if isinstance(region, str) else "",
    )
    if not row.bucket:
        raise ValidationError({"bucket": ["Give the bucket the data is in."]})
    model_validate(row, fields=["name", "description", "bucket", "region"])
    try:
        row.endpoint_url = check_endpoint_url(endpoint_url)
    except DataError as exc:
        raise ValidationError({"endpoint_url": [exc.message]}) from None
    access_key_id = access_key_id.strip() if isinstance(access_key_id, str) else ""
    secret_access_key = secret_access_key.strip() if isinstance(secret_access_key, str) else ""
    if not access_key_id or len(access_key_id) > 128 or not access_key_id.isprintable() or " " in access_key_id:
        raise ValidationError({"access_key_id": ["Give the access key id: 1–128 characters, no spaces."]})
    if not secret_access_key or len(secret_access_key) > 256:
        raise ValidationError({"secret_access_key": ["Give the secret access key (at most 256 characters)."]})
    where = f" at {urlsplit(row.endpoint_url).netloc}" if row.endpoint_url else ""
    row.display = f"s3://{row.bucket}{where} ({row.region or 'us-east-1'}), key {access_key_id}"[:300]
    return _datastore_save(
        actor, row, secret=json.dumps({"access_key_id": access_key_id, "secret_access_key": secret_access_key})
    )


def _datastore_save(actor, row: Datastore, *, secret: str) -> Datastore:
    """Save a checked datastore with its secret sealed, unless its workspace has one of that name."""
    if Datastore.objects.filter(workspace=row.workspace, name=row.name).exists():
        raise ValidationError(
            {"name": [ValidationError(f"This workspace already has a datastore named {row.name}.", code="conflict")]}
        )
    row.sealed_secret = seal(secret, purpose=DATASTORE_SEAL_PURPOSE)
    row.created_by = actor
    with transaction.atomic():
        row.save()
        activity_record(
            workspace=row.workspace,
            actor=actor,
            verb="datastore_created",
            summary=f"{actor} added the datastore {row.name} ({row.display})",
        )
    return row


def datastore_delete(*, actor, datastore: Datastore) -> None:
    """Forget a datastore and its sealed URL. Versions imported from it stay; their ingests keep the query."""
    require(actor, datastore.workspace, Action.WRITE)
    with transaction.atomic():
        datastore.delete()
        activity_record(
            workspace=datastore.workspace,
            actor=actor,
            verb="datastore_deleted",
            summary=f"{actor} deleted the datastore {datastore.name}",
        )


def datastore_connection_url(datastore: Datastore) -> str:
    """The clear connection URL, for the ingest job only: never shown, logged or answered."""
    return unseal(datastore.sealed_secret, purpose=DATASTORE_SEAL_PURPOSE)


def datastore_s3_location(datastore: Datastore) -> S3Location:
    """An S3 datastore's bucket with its clear key pair, for the ingest job only."""
    keys = json.loads(unseal(datastore.sealed_secret, purpose=DATASTORE_SEAL_PURPOSE))
    return S3Location(
        bucket=datastore.bucket,
        region=datastore.region,
        endpoint_url=datastore.endpoint_url,
        access_key_id=keys["access_key_id"],
        secret_access_key=keys["secret_access_key"],
    )


def _import_submit(*, actor, workspace: Workspace, name: str, description: str, tags, **source) -> Ingest:
    """The checks every import shares (the asset's name and description, the storage quota), then
    its ingest row and job."""
    name = _clean_name(name)
    model_validate(DataAsset(description=description or ""), fields=["description"])
    workspace_storage_check(workspace=workspace, adding=1)
    with transaction.atomic():
        ingest = Ingest.objects.create(
            workspace=workspace,
            asset_name=name,
            description=description or "",
            tags=_clean_tags(tags),
            created_by=actor,
            **source,
        )
        ingest.job = _submit_ingest_job(
            actor=actor, workspace=workspace, ingest=ingest, target=default_cluster_for(workspace)
        )
        ingest.save(update_fields=["job"])
    return ingest


def data_import_url(
    *, actor, workspace: Workspace, url: str, name: str = "", description: str = "", tags=None
) -> Ingest:
    """Import the file at an HTTP(S) URL as version N+1 of the asset `name` (by default named after
    the file), in an ingest job: it downloads within the limits (connectors.fetch_url), then parses,
    profiles and versions the file as an upload."""
    require(actor, workspace, Action.WRITE)
    try:
        url = check_url(url if isinstance(url, str) else "")
    except DataError as exc:
        raise ValidationError({"url": [exc.message]}) from None
    if len(url) > Ingest._meta.get_field("source_url").max_length:
        raise ValidationError({"url": ["The URL is longer than 2,000 characters."]})
    file_name = Path(unquote(urlsplit(url).path)).name[:255] or "download"
    name = name or _name_after(file_name)
    return _import_submit(
        actor=actor,
        workspace=workspace,
        name=name,
        description=description,
        tags=tags,
        source_kind=IngestSource.URL,
        source_url=url,
        source_name=file_name,
    )


def _check_datastore(workspace: Workspace, datastore: Datastore, kind: str, wrong_kind: str) -> None:
    if datastore.workspace_id != workspace.pk:
        raise ValidationError({"datastore": ["No such datastore in this workspace."]})
    if datastore.kind != kind:
        raise ValidationError({"datastore": [f"{datastore.name} {wrong_kind}."]})


def _name_after(file_name: str) -> str:
    """The data asset an import goes to when none is named: its file's name, if it makes a valid one."""
    name = default_asset_name(file_name)
    return name if asset_name_valid(name) else "imported data"


def data_import_query(
    *, actor, workspace: Workspace, datastore: Datastore, query: str, name: str, description: str = "", tags=None
) -> Ingest:
    """Import the rows of a SELECT query on a datastore as version N+1 of the asset `name`, in an
    ingest job (connectors.fetch_query: read-only, statement timeout, row cap)."""
    require(actor, workspace, Action.WRITE)
    _check_datastore(workspace, datastore, DatastoreKind.POSTGRESQL, "is an S3 datastore: import a key from it")
    try:
        query = check_query(query if isinstance(query, str) else "")
    except DataError as exc:
        raise ValidationError({"query": [exc.message]}) from None
    if not name:
        raise ValidationError({"name": ["Name the data asset the query's rows go to."]})
    return _import_submit(
        actor=actor,
        workspace=workspace,
        name=name,
        description=description,
        tags=tags,
        source_kind=IngestSource.QUERY,
        datastore=datastore,
        query=query,
        source_name=f"query on {datastore.name}"[:255],
    )


def data_import_s3(
    *, actor, workspace: Workspace, datastore: Datastore, key: str, name: str = "", description: str = "", tags=None
) -> Ingest:
    """Import the object `key` of an S3 datastore (or the CSV parts under a prefix ending in "/") as
    version N+1 of the asset `name` (by default named after the object), in an ingest job
    (connectors.fetch_s3: streamed under the import size cap)."""
    require(actor, workspace, Action.WRITE)
    _check_datastore(workspace, datastore, DatastoreKind.S3, "is not an S3 datastore: import a query from it")
    try:
        key = check_object_key(key)
    except DataError as exc:
        raise ValidationError({"key": [exc.message]}) from None
    file_name = Path(key.rstrip("/")).name[:255] or datastore.bucket
    name = name or _name_after(file_name)
    return _import_submit(
        actor=actor,
        workspace=workspace,
        name=name,
        description=description,
        tags=tags,
        source_kind=IngestSource.S3,
        datastore=datastore,
        object_key=key,
        source_url=f"s3://{datastore.bucket}/{key}"[:2000],
        source_name=file_name,
    )


def ingest_source_fetched(*, ingest: Ingest, name: str, size: int, sha256: str) -> None:
    """An import's file is staged: record what it is, as an upload records its file. A file that
    would pass the workspace's storage quota is refused, as the upload of it would be."""
    try:
        workspace_storage_check(workspace=ingest.workspace, adding=max(size, 1))
    except StorageQuotaExceeded as exc:
        message = exc.messages[0].replace("this upload would", "this import would")
        raise DataError(message, code="quota_exceeded") from None
    Ingest.objects.filter(pk=ingest.pk).update(source_name=name[:255], source_size=size, source_sha256=sha256)
    ingest.source_name, ingest.source_size, ingest.source_sha256 = name[:255], size, sha256


def data_version_from_file(
    *, actor, workspace: Workspace, path: Path, name: str, column_types: dict | None = None
) -> DataVersion:
    """Ingest a file on this machine now, in this process, into version N+1 of the asset `name`:
    the same engine and the same version record as an upload's ingest job (for scripts and tests)."""
    require(actor, workspace, Action.WRITE)
    path = Path(path)
    row = Ingest.objects.create(
        workspace=workspace,
        asset_name=_clean_name(name),
        source_name=path.name[:255],
        source_size=path.stat().st_size,
        source_sha256=sha256_file(path),
        status=IngestStatus.RUNNING,
        created_by=actor,
    )
    staged = workspace_artifact_dir(workspace.pk) / "data" / f".ingest-{row.pk}.parquet"
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        sniffed = sniff(path, path.name, limits=ingest_limits())
        result = run_ingest(path, sniffed, staged, limits=ingest_limits(), column_types=column_types)
        return ingest_complete(
            ingest=row,
            parquet=staged,
            schema=result.schema,
            rows=result.rows,
            profile=result.profile,
            sha256=sha256_file(staged),
            source_format=sniffed.format,
            warnings=list(result.warnings),
        )
    except DataError as exc:
        ingest_fail(ingest=row, error=exc.to_json())
        raise ValidationError({"file": [exc.message]}) from None
    finally:
        staged.unlink(missing_ok=True)


def _submit_ingest_job(*, actor, workspace, ingest, target):
    what = f"{ingest.source_name}" if not ingest.base_version_id else f"a schema edit of {ingest.base_version}"
    return job_submit(
        actor=actor,
        workspace=workspace,
        kind=INGEST,
        target=target,
        spec={"ingest_id": ingest.pk},
        experiment_name="Data ingest",
        display_name=f"Ingest {ingest.asset_name} ({what})"[:200],
        max_attempts=2,
    )


def data_schema_edit(
    *, actor, version: DataVersion, types: dict | None = None, exclude: list | None = None, description: str = ""
) -> Ingest:
    """Make version N+1 from `version` with some column types changed and some columns excluded."""
    workspace = version.asset.workspace
    require(actor, workspace, Action.WRITE)
    types = types or {}
    exclude = list(exclude or [])
    if not isinstance(types, dict) or not isinstance(exclude, list):
        raise ValidationError({"types": ["Give types as {column: type} and exclude as a list of columns."]})
    try:
        schema = Schema.from_json(version.schema)
        edited = schema.edited(types=types, exclude=exclude)
    except DataError as exc:
        field = "exclude" if exc.column in exclude else "types"
        raise ValidationError({field: [exc.message]}) from None
    if edited == schema:
        raise ValidationError("Nothing changed: pick a new type or a column to exclude.")
    if not edited.included:
        raise ValidationError({"exclude": ["A version needs at least one column."]})
    workspace_storage_check(workspace=workspace, adding=max(version.parquet_size, 1))

    with transaction.atomic():
        ingest = Ingest.objects.create(
            workspace=workspace,
            asset_name=version.asset.name,
            base_version=version,
            schema_changes={"types": types, "exclude": exclude, "schema": edited.to_json()},
            description=description or f"Schema edit of version {version.version}",
            tags=version.tags,
            source_name=version.source_name,
            source_size=version.parquet_size,
            created_by=actor,
        )
        ingest.job = _submit_ingest_job(
            actor=actor, workspace=workspace, ingest=ingest, target=default_cluster_for(workspace)
        )
        ingest.save(update_fields=["job"])
    return ingest


# --- Called by the ingest job ------------------------------------------------------------------
def ingest_mark_running(*, ingest: Ingest) -> None:
    Ingest.objects.filter(pk=ingest.pk, status=IngestStatus.QUEUED).update(status=IngestStatus.RUNNING)
    Ingest.objects.filter(pk=ingest.pk, status=IngestStatus.FAILED).update(status=IngestStatus.RUNNING, error={})


def ingest_progress(*, ingest_id: int, rows: int, bytes_done: int) -> None:
    Ingest.objects.filter(pk=ingest_id).update(progress_rows=rows, progress_bytes=bytes_done)


def ingest_fail(*, ingest: Ingest, error: dict, final: bool = True) -> None:
    """Record why an ingest failed (the first reason given stays). `final`: the upload can never
    succeed, so its file goes."""
    Ingest.objects.filter(pk=ingest.pk).exclude(status__in=[IngestStatus.READY, IngestStatus.FAILED]).update(
        status=IngestStatus.FAILED, error=error, finished_at=timezone.now()
    )
    if final:
        _ingest_upload_remove(ingest)


def _ingest_upload_remove(ingest: Ingest) -> None:
    """The staged upload is done with: here and in object storage."""
    path = ingest_upload_path(ingest)
    path.unlink(missing_ok=True)
    state_path(path).unlink(missing_ok=True)  # of an upload ingested as it arrived
    if ingest.source_kind == IngestSource.UPLOAD and not ingest.base_version_id:
        objectstore.discard(path)


def ingest_complete(
    *,
    ingest: Ingest,
    parquet: Path,
    schema: Schema,
    rows: int,
    profile: dict,
    sha256: str,
    source_format: str,
    warnings: list,
) -> DataVersion:
    """Turn a finished Parquet file into version N+1 of the asset, atomically."""
    with transaction.atomic():
        asset, created = DataAsset.objects.select_for_update().get_or_create(
            workspace_id=ingest.workspace_id,
            name=ingest.asset_name,
            defaults={"description": ingest.description, "created_by": ingest.created_by},
        )
        last = asset.versions.order_by("-version").values_list("version", flat=True).first() or 0
        if warnings:
            profile = {**profile, "ingest_warnings": warnings}
        version = DataVersion.objects.create(
            asset=asset,
            version=last + 1,
            description=ingest.description,
            tags=ingest.tags,
            source_name=ingest.source_name,
            source_format=source_format,
            source_size=ingest.source_size,
            source_sha256=ingest.source_sha256,
            rows=rows,
            columns=len(schema.included),
            schema=schema.to_json(),
            profile=profile,
            parquet_size=parquet.stat().st_size,
            parquet_sha256=sha256,
            derived_from=ingest.base_version,
            created_by=ingest.created_by,
        )
        final = data_version_location(version)
        final.parent.mkdir(parents=True, exist_ok=True)
        parquet.replace(final)
        try:
            objectstore.publish(final, sha256=sha256)  # before the version exists for other hosts
        except objectstore.ObjectStoreError as exc:
            final.unlink(missing_ok=True)  # the version row rolls back with this
            raise DataError(str(exc), code="storage_failed") from None
        transaction.on_commit(lambda: _ingest_upload_remove(ingest))
        Ingest.objects.filter(pk=ingest.pk).update(
            status=IngestStatus.READY, version=version, finished_at=timezone.now()
        )
        DataAsset.objects.filter(pk=asset.pk).update(updated_at=timezone.now())
        activity_record(
            workspace=asset.workspace,
            actor=ingest.created_by,
            verb="data_version_created",
            summary=f"{ingest.created_by or 'The studio'} added {asset.name} version {version.version} "
            f"({rows:,} rows, {len(schema.included)} columns)",
        )
    return version


# --- Deletion ---------------------------------------------------------------------------------------
# Apps above data that refer to data versions add their checks here (training: models trained on them).
DATA_VERSION_REFERENCES = References()


def _jobs_reading(versions) -> list[str]:
    jobs = list(
        Job.objects.filter(data_version__in=versions).exclude(kind=INGEST).values_list("pk", "display_name")[:6]
    )
    if not jobs:
        return []
    names = ", ".join(f"#{pk}" + (f" ({name})" if name else "") for pk, name in jobs[:5])
    return [f"job{'s' if len(jobs) > 1 else ''} {names}{' and more' if len(jobs) > 5 else ''}"]


def _references(versions) -> list[str]:
    """What refers to these versions (jobs that read them, models trained on them)."""
    return _jobs_reading(versions) + DATA_VERSION_REFERENCES.of(versions)


def data_version_delete(*, actor, version: DataVersion) -> int:
    """Delete one version and its file; refused while a job or model refers to it. Returns bytes freed."""
    require(actor, version.asset.workspace, Action.WRITE)
    refs = _references([version])
    if refs:
        raise ValidationError(f"{version} is used by {'; '.join(refs)}. Delete those first.", code="conflict")
    path = data_version_location(version)
    freed = path.stat().st_size if path.exists() else version.parquet_size
    with transaction.atomic():
        asset = version.asset
        version.delete()
        activity_record(
            workspace=asset.workspace,
            actor=actor,
            verb="data_version_deleted",
            summary=f"{actor} deleted {asset.name} version {version.version}",
        )
        transaction.on_commit(lambda: _remove_files([path]))
    return freed


def data_asset_delete(*, actor, asset: DataAsset) -> int:
    """Delete an asset with all its versions; refused while any version is in use."""
    require(actor, asset.workspace, Action.WRITE)
    versions = list(asset.versions.all())
    refs = _references(versions)
    if refs:
        raise ValidationError(
            f"{asset.name} has versions used by {'; '.join(refs)}. Delete those first.", code="conflict"
        )
    paths = [data_version_location(v) for v in versions]
    freed = sum(p.stat().st_size for p in paths if p.exists())
    with transaction.atomic():
        name = asset.name
        workspace = asset.workspace
        asset.delete()
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="data_asset_deleted",
            summary=f"{actor} deleted the data asset {name} ({len(versions)} versions)",
        )
        transaction.on_commit(lambda: _remove_files(paths))
    return freed


def _remove_files(paths: list[Path]) -> None:
    """Deleted versions' files go here and from object storage (an unreachable store keeps a stray copy)."""
    for path in paths:
        path.unlink(missing_ok=True)
        try:
            objectstore.discard(path)
        except objectstore.ObjectStoreError:
            pass  # the rows are gone; a stray object costs storage, not correctness


def data_asset_update(*, actor, asset: DataAsset, description: str) -> DataAsset:
    require(actor, asset.workspace, Action.WRITE)
    if not isinstance(description, str):
        raise ValidationError({"description": ["Use at most 2,000 characters."]})
    model_validate(DataAsset(description=description), fields=["description"])
    asset.description = description
    asset.save(update_fields=["description", "updated_at"])
    return asset
