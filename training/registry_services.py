"""The model registry: register a job's model as version N+1 of a named model, aliases, deletion.

Registering copies the files the training job packaged (the skops model, its verified ONNX twin
if any, the input signature and the drift reference) into the registry's own folder, checking
the SHA-256 recorded when the job wrote them (R2). The registered copy does not depend on the job.
"""

import json
import platform
import re
import shutil
from importlib import metadata
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.recovery import job_artifact_dir
from studio import objectstore
from studio.hashing import sha256_file
from studio.references import References
from studio.validation import model_validate
from training.models import TrainingJobKind
from workspaces.policy import Action, require
from workspaces.services import activity_record, workspace_artifact_dir

from .ml.tasks import CLASSIFICATION, FORECASTING, REGRESSION
from .models import ALIAS_MESSAGE, ALIAS_PATTERN, ModelAlias, ModelVersion, RegisteredModel

LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas", "scipy", "lightgbm", "onnxruntime", "skl2onnx")
SERVED_FILES = ("model.skops", "model.onnx", "signature.json", "reference_profile.json", "onnx_report.json")


def model_version_location(version: ModelVersion) -> Path:
    """Where a registered version's files live on every host, computed from its rows (R1)."""
    return workspace_artifact_dir(version.model.workspace_id) / "models" / str(int(version.pk))


def model_version_checksums(version: ModelVersion) -> dict[str, str]:
    return {"model.skops": version.sha256, "model.onnx": version.onnx_sha256}


def model_version_dir(version: ModelVersion) -> Path:
    """A registered version's files, ready to read on this host: with object storage, fetched (the
    model files checked against the version's SHA-256s) when this host lacks them."""
    return objectstore.ensure_local_folder(model_version_location(version), sha256s=model_version_checksums(version))


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _clean_model_name(name) -> str:
    name = name.strip() if isinstance(name, str) else ""
    model_validate(RegisteredModel(name=name), fields=["name"])
    return name


def _clean_aliases(aliases) -> list[str]:
    if aliases in (None, ""):
        return []
    if isinstance(aliases, str):
        aliases = [a.strip() for a in aliases.split(",") if a.strip()]
    if not isinstance(aliases, list) or not all(isinstance(a, str) and re.match(ALIAS_PATTERN, a) for a in aliases):
        raise ValidationError({"aliases": [ALIAS_MESSAGE]})
    return sorted(set(aliases))


def registration_source(job: Job) -> Job:
    """The job whose files make the model: an Automated ML run's model is its final job's (a
    forecasting run's is its own: one job searches and packages)."""

    if job.kind == TrainingJobKind.AUTOML and (job.spec or {}).get("task") != FORECASTING:
        final = job.children.filter(kind=TrainingJobKind.AUTOML_FINAL, status=JobStatus.COMPLETED).first()
        if final is None:
            raise ValidationError(f"{job.name} has no final model yet.")
        return final
    return job


def registrable_prefix(job: Job, prefix: str = "", *, in_own_run: bool = False) -> str:
    """Check that `job` finished and packaged a model under `prefix`; return the prefix.
    `in_own_run`: the job registers its own model as its last step (a forecasting run), still running."""
    if job.status != JobStatus.COMPLETED and not (in_own_run and job.status == JobStatus.RUNNING):
        raise ValidationError(f"{job.name} is {job.get_status_display().lower()}: only completed jobs have a model.")
    names = set(Artifact.objects.filter(job=job).values_list("name", flat=True))
    if f"{prefix}model.skops" not in names or f"{prefix}signature.json" not in names:
        raise ValidationError(f"{job.name} did not produce a model to register.")
    return prefix


def model_register(
    *,
    actor,
    job: Job,
    name: str,
    description: str = "",
    tags=None,
    aliases=None,
    prefix: str = "",
    metrics: dict | None = None,
    algorithm: str = "",
    lineage: dict | None = None,
    in_own_run: bool = False,
) -> ModelVersion:
    """Register the model a completed job packaged as the next version of the model `name`."""
    require(actor, job.workspace, Action.WRITE)
    name = _clean_model_name(name)
    aliases = _clean_aliases(aliases)
    registrable_prefix(job, prefix, in_own_run=in_own_run)
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ValidationError({"tags": ["Tags are a list of words."]})
    source = job_artifact_dir(job)
    artifacts = {a.name: a for a in Artifact.objects.filter(job=job, name__startswith=prefix)}
    model_artifact = artifacts[f"{prefix}model.skops"]
    for artifact in artifacts.values():  # the job may have run on another host
        if artifact.name.removeprefix(prefix) in SERVED_FILES:
            objectstore.ensure_local(source / artifact.name, sha256=artifact.sha256)
    if sha256_file(source / model_artifact.name) != model_artifact.sha256:
        raise ValidationError("The job's model file does not match the hash recorded when it was written.")
    signature = json.loads((source / f"{prefix}signature.json").read_text())
    onnx = artifacts.get(f"{prefix}model.onnx")
    onnx_report = {}
    if f"{prefix}onnx_report.json" in artifacts:
        onnx_report = json.loads((source / f"{prefix}onnx_report.json").read_text())
    spec, result = job.spec, job.result or {}
    with transaction.atomic():
        model, _ = RegisteredModel.objects.select_for_update().get_or_create(
            workspace=job.workspace, name=name, defaults={"created_by": actor, "description": description}
        )
        number = (model.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        version = ModelVersion.objects.create(
            model=model,
            version=number,
            description=description or "",
            tags=tags or [],
            job=job,
            data_version=job.data_version or (job.parent.data_version if job.parent_id else None),
            algorithm=algorithm or result.get("algorithm", ""),
            target_column=signature.get("target") or spec.get("target_column", ""),
            signature=signature,
            task=signature.get("task") or CLASSIFICATION,
            classes=signature.get("classes")
            or ([] if signature.get("task") in (REGRESSION, FORECASTING) else result.get("classes", [])),
            metrics=metrics if metrics is not None else (result.get("metrics") or {}),
            lineage={
                "job": job.pk,
                "job_kind": job.kind,
                "run": job.parent_id,
                "libraries": library_versions(),
                **(lineage or {}),
            },
            file_size=model_artifact.size,
            sha256=model_artifact.sha256,
            onnx_sha256=onnx.sha256 if onnx else "",
            onnx_max_abs_diff=onnx_report.get("max_abs_diff"),
            scoring_latency_ms=result.get("latency_ms"),
            created_by=actor,
        )
        folder = model_version_location(version)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for file_name in SERVED_FILES:
                if f"{prefix}{file_name}" in artifacts:
                    shutil.copyfile(source / f"{prefix}{file_name}", folder / file_name)
            if sha256_file(folder / "model.skops") != version.sha256:
                raise ValidationError("The model file changed while it was copied; try again.")
            objectstore.publish_folder(folder, sha256s=model_version_checksums(version))
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)  # the version row rolls back with this
            raise
        for alias in aliases:
            _alias_set(model, alias, version)
        RegisteredModel.objects.filter(pk=model.pk).update(updated_at=version.created_at)
        activity_record(
            workspace=job.workspace,
            actor=actor,
            verb="model_registered",
            summary=f"{actor} registered {version} from {job.name}",
        )
    return version


def _alias_set(model: RegisteredModel, alias: str, version: ModelVersion) -> None:
    ModelAlias.objects.update_or_create(model=model, name=alias, defaults={"version": version})


def model_alias_set(*, actor, version: ModelVersion, alias: str) -> ModelVersion:
    """Point `alias` (e.g. champion) at this version; it moves away from any other."""
    require(actor, version.model.workspace, Action.WRITE)
    (alias,) = _clean_aliases([alias]) or [""]
    with transaction.atomic():
        _alias_set(version.model, alias, version)
        activity_record(
            workspace=version.model.workspace,
            actor=actor,
            verb="model_alias",
            summary=f"{actor} pointed {version.model.name}@{alias} at version {version.version}",
        )
    return version


def model_alias_remove(*, actor, model: RegisteredModel, alias: str) -> None:
    require(actor, model.workspace, Action.WRITE)
    ModelAlias.objects.filter(model=model, name=alias).delete()


# Apps above training that refer to model versions add their checks here (endpoints: deployments).
MODEL_VERSION_REFERENCES = References()


def model_version_delete(*, actor, version: ModelVersion) -> int:
    """Delete a version and its files; refused while an endpoint serves it. Returns bytes freed."""
    require(actor, version.model.workspace, Action.WRITE)
    refs = MODEL_VERSION_REFERENCES.of([version])
    if refs:
        raise ValidationError(f"{version} is {'; '.join(refs)}. Remove those deployments first.", code="conflict")
    folder = model_version_location(version)
    freed = sum(p.stat().st_size for p in folder.glob("*")) if folder.exists() else 0
    with transaction.atomic():
        model = version.model
        version.delete()
        activity_record(
            workspace=model.workspace,
            actor=actor,
            verb="model_deleted",
            summary=f"{actor} deleted {model.name} version {version.version}",
        )
        if not model.versions.exists():
            model.delete()
        transaction.on_commit(lambda: _remove_folder(folder))
    return freed


def _remove_folder(folder: Path) -> None:
    """A deleted version's files go here and from object storage (an unreachable store keeps a stray copy)."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        objectstore.discard_folder(folder)
    except objectstore.ObjectStoreError:
        pass  # the rows are gone; a stray object costs storage, not correctness


def model_update(*, actor, model: RegisteredModel, description: str) -> RegisteredModel:
    require(actor, model.workspace, Action.WRITE)
    if not isinstance(description, str):
        raise ValidationError({"description": ["Use at most 2,000 characters."]})
    model_validate(RegisteredModel(description=description), fields=["description"])
    model.description = description
    model.save(update_fields=["description", "updated_at"])
    return model
