"""The ingest job: parse an upload (or a file it imports first, or re-type a version) into Parquet,
profile it, make a version."""

import os
import secrets
import time
from dataclasses import replace

import pyarrow
from django.core.exceptions import ValidationError

from compute.jobs.kinds import CleanSpec, JobHandler
from compute.jobs.models import Job, JobStatus
from compute.jobs.runner import JobError
from data import services as data_services
from data.connectors import fetch_query, fetch_s3, fetch_url
from data.dataio import DataError, Schema, apply_schema, ingest, profile, sniff
from data.dataio.arriving import arrival as arriving
from data.dataio.arriving import expected_size, wait_for, wait_for_verdict
from data.dataio.own_process import IngestProcessDied, ingest_in_own_process
from data.dataio.sniff import SAMPLE_BYTES
from data.models import INGEST, Ingest, IngestSource, IngestStatus  # noqa: F401 - INGEST: the kind this module runs, named from here too
from studio import objectstore
from studio.hashing import sha256_file


class IngestJob(JobHandler):
    checks_storage_quota = False  # the upload was admitted against the quota before the job
    clone_hint = "upload the file again from Data."

    def validate(self, *, workspace, spec) -> CleanSpec:
        ingest_id = spec.get("ingest_id") if isinstance(spec, dict) else None
        ingest_row = (
            Ingest.objects.filter(pk=ingest_id, workspace=workspace).first() if isinstance(ingest_id, int) else None
        )
        if ingest_row is None:
            raise ValidationError({"ingest_id": ["Ingest jobs are made by uploading data."]})
        return CleanSpec(spec={"ingest_id": ingest_row.pk}, data_version=ingest_row.base_version)

    def run(self, ctx) -> dict:
        # pyarrow parses and writes with a thread per core of the node (not OpenMP: no oversubscription).
        cores = max(1, min(os.cpu_count() or 1, ctx.job.target.node_size.cores if ctx.job.target else 1))
        pyarrow.set_cpu_count(cores)
        # Arrow's buffers from malloc, which gives freed memory back (trimmed as the engine lets columns
        # go): mimalloc, the default, kept ~100 MB of freed parser pages, which counts in the node's peak.
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        row = Ingest.objects.select_related("base_version", "base_version__asset", "datastore").get(
            pk=ctx.spec["ingest_id"]
        )
        data_services.ingest_mark_running(ingest=row)
        folder = data_services.workspace_artifact_dir(row.workspace_id) / "data"
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".ingest-{row.pk}-{secrets.token_hex(4)}.parquet"
        started = time.perf_counter()
        last_report = [0.0]

        def progress(rows: int, bytes_done: int) -> None:
            ctx.check_canceled()
            now = time.perf_counter()
            if now - last_report[0] > 0.5:
                last_report[0] = now
                data_services.ingest_progress(ingest_id=row.pk, rows=rows, bytes_done=bytes_done)

        streamed = False  # an upload read as it arrives
        try:
            if row.base_version_id:
                ctx.log(
                    f"Re-typing {row.base_version}: {row.schema_changes.get('types') or {}}; "
                    f"excluding {row.schema_changes.get('exclude') or []}"
                )
                source = data_services.data_version_path(row.base_version)
                result = apply_schema(
                    source,
                    staging,
                    Schema.from_json(row.schema_changes["schema"]),
                    limits=data_services.ingest_limits(),
                    progress=progress,
                )
                source_format = "parquet"
            else:
                upload = data_services.ingest_upload_path(row)
                if row.source_kind != IngestSource.UPLOAD:
                    fetch_source(ctx, row, upload, progress)
                else:
                    upload = objectstore.ensure_local(upload, sha256=row.source_sha256)  # staged on the web host
                streamed = row.source_kind == IngestSource.UPLOAD and arriving(upload) is not None
                if streamed:
                    sniffed = _sniff_arriving(upload, row.source_name)
                else:
                    sniffed = sniff(upload, row.source_name, limits=data_services.ingest_limits())
                ctx.log(
                    f"Reading {row.source_name} "
                    + (f"(about {sniffed.size:,} bytes, as it arrives)" if streamed else f"({sniffed.size:,} bytes)")
                    + f" as {sniffed.format}"
                    + (
                        f", {sniffed.encoding}, delimiter {sniffed.delimiter!r}, "
                        f"{'with' if sniffed.has_header else 'without'} a header row"
                        if sniffed.format != "parquet"
                        else ""
                    )
                )
                limits = data_services.ingest_limits()
                if sniffed.size >= limits.own_process_from_bytes:
                    # A fresh process with the engine alone: the node's own carries Django and its heap.
                    result, peak = ingest_in_own_process(
                        upload, sniffed, staging, limits=limits, cores=cores, progress=progress, with_sha256=True
                    )
                    ctx.log(f"Parsed in a process of its own: peak memory {peak / 1e6:,.0f} MB")
                else:
                    result = ingest(upload, sniffed, staging, limits=limits, progress=progress, with_sha256=True)
                source_format = sniffed.format
            if streamed:
                wait_for_verdict(upload)  # the web's checks of the whole file
                row.refresh_from_db()  # with the form's name and the file's checksum
            parsed = time.perf_counter()
            ctx.log(
                f"Parsed, typed and profiled {result.rows:,} rows × {len(result.schema.columns)} columns "
                f"in {parsed - started:.2f} s"
            )
            for warning in result.warnings:
                ctx.log(f"Warning: {warning.get('message')}")
            ctx.check_canceled()
            stats = result.profile if result.profile else profile(staging, result.schema)
            version = data_services.ingest_complete(
                ingest=row,
                parquet=staging,
                schema=result.schema,
                rows=result.rows,
                profile=stats,
                sha256=result.sha256 or sha256_file(staging),  # ingest hashes while it profiles
                source_format=source_format,
                warnings=list(result.warnings),
            )
        except DataError as exc:
            data_services.ingest_fail(ingest=row, error=exc.to_json())
            raise JobError(exc.message) from None
        except IngestProcessDied as exc:
            message = f"{exc} Try the upload again; if it fails again, the file may need a node with more memory."
            error = {"code": "ingest_process_died", "message": message, "row": None, "column": None}
            data_services.ingest_fail(ingest=row, error=error)
            raise JobError(message) from None
        except objectstore.ObjectMissing as exc:
            error = {"code": "missing_file", "message": str(exc), "row": None, "column": None}
            data_services.ingest_fail(ingest=row, error=error)
            raise JobError(str(exc)) from None
        finally:
            staging.unlink(missing_ok=True)
        ctx.log(f"Created {version} in {time.perf_counter() - started:.2f} s")
        return {
            "data_version_id": version.pk,
            "asset": version.asset.name,
            "version": version.version,
            "rows": result.rows,
            "columns": len(result.schema.included),
        }

    def on_finished(self, *, job_id: int, status: str) -> None:
        """A job that ended without a version (canceled, lost, timed out) fails its ingest."""
        if status == JobStatus.COMPLETED:
            return

        job = Job.objects.filter(pk=job_id).first()
        row = Ingest.objects.filter(job_id=job_id).exclude(status=IngestStatus.READY).first()
        if job is None or row is None or row.status == IngestStatus.FAILED:
            return
        message = job.error or job.status_reason or "The ingest job did not finish."
        data_services.ingest_fail(
            ingest=row, error={"code": "job_" + status, "message": message, "row": None, "column": None}
        )


def _sniff_arriving(upload, source_name: str):
    """Sniff an upload that may still be arriving, once its sample is in. Text is read as it comes,
    with the size announced; a Parquet file is waited for whole (its footer is at the end)."""
    limits = data_services.ingest_limits()
    wait_for(upload, SAMPLE_BYTES + 1)
    sniffed = sniff(upload, source_name, limits=limits)
    if sniffed.format == "parquet":
        wait_for(upload)
        return sniff(upload, source_name, limits=limits)
    return replace(sniffed, size=expected_size(upload))


def fetch_source(ctx, row: Ingest, destination, progress) -> None:
    """Stage an import's file where an upload's would be, then the job goes on as for an upload."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if row.source_kind == IngestSource.URL:
        ctx.log(f"Downloading {row.source_url}")
        fetched = fetch_url(row.source_url, destination, progress=progress)
        name = fetched.name
    elif row.datastore is None:
        raise DataError("The datastore of this import was deleted.", code="datastore_deleted")
    elif row.source_kind == IngestSource.S3:
        ctx.log(f"Downloading {row.source_url} from the datastore {row.datastore.name}")
        try:
            location = data_services.datastore_s3_location(row.datastore)
        except ValueError as exc:
            raise DataError(str(exc), code="sealed") from None
        fetched = fetch_s3(location, row.object_key, destination, progress=progress)
        name = fetched.name
    else:
        ctx.log(f"Running the query on the datastore {row.datastore.name} ({row.datastore.display}), read-only")
        try:
            connection_url = data_services.datastore_connection_url(row.datastore)
        except ValueError as exc:
            raise DataError(str(exc), code="sealed") from None
        fetched = fetch_query(connection_url, row.query, destination, progress=progress)
        name = row.source_name
    data_services.ingest_source_fetched(ingest=row, name=name, size=fetched.size, sha256=fetched.sha256)
    ctx.log(f"Fetched {fetched.size:,} bytes")
