"""Command jobs: what the node records while one runs, its outputs, and registering a model output."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from django.db import transaction

from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.recovery import job_artifact_dir
from compute.sandbox import protections_available
from data.models import DataVersion
from data.services import data_version_path
from environments.models import EnvironmentVersion
from modelformat.modelio import ModelFileError, is_pickle, load_model
from modelformat.signature import build_signature
from studio.hashing import sha256_file
from training import registry_services
from training.models import ModelVersion
from workspaces.policy import Action, require

from .models import COMMAND, CodeSnapshot

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".pt", ".pth")
MAX_OUTPUT_FILES = 10_000
SIGNATURE_SAMPLE_ROWS = 10_000
PICKLE_MESSAGE = (
    "{name} is a pickle file: loading one runs whatever code it holds, so the studio does not register "
    "it. Save the model with skops (skops.io.dump(model, 'model.skops')) or export it to ONNX."
)


def command_result_record(*, job: Job, **fields) -> None:
    """Merge `fields` into the job's result while it runs (the resolved command, the exit code):
    the job page shows them even when the job fails."""
    with transaction.atomic():
        row = Job.objects.select_for_update().only("result").get(pk=job.pk)
        Job.objects.filter(pk=job.pk).update(result={**(row.result or {}), **fields})


def _artifact_name(output: str, relative: Path) -> str:
    """outputs/<output>/<path>, each part made of the characters artifact names allow."""
    safe = [
        "".join(c if c.isascii() and (c.isalnum() or c in "._ ()+,=@-") else "_" for c in p) for p in relative.parts
    ]
    safe = [p if p[:1].isalnum() else f"x{p}" for p in safe]
    return "/".join(["outputs", output, *safe])


def command_outputs_collect(*, ctx, scratch: Path, outputs: dict) -> dict:
    """Each output folder's regular files become the job's artifacts. Links are skipped, never
    followed: the user's code could point one at any file the node can read."""
    summary = {}
    for name in outputs:
        root = scratch / "outputs" / name
        files = size = 0
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                ctx.log(f"Output {name}: skipped the link {path.relative_to(root)}")
                continue
            if not path.is_file():
                continue
            files += 1
            if files > MAX_OUTPUT_FILES:
                raise ValidationError(f"The output {name} has more than {MAX_OUTPUT_FILES:,} files.")
            artifact = _artifact_name(name, path.relative_to(root))
            shutil.copyfile(path, ctx.artifact_path(artifact), follow_symlinks=False)
            size += ctx.artifact_saved(artifact, kind=outputs[name]["type"]).size
        summary[name] = {"files": files, "bytes": size}
        ctx.log(f"Output {name}: {files} file(s), {size:,} bytes")
    return summary


def command_page_context(job: Job) -> dict:
    spec = job.spec
    snapshot = CodeSnapshot.objects.filter(workspace_id=job.workspace_id, pk=spec.get("code_snapshot_id")).first()
    artifacts = {}
    for artifact in Artifact.objects.filter(job=job, name__startswith="outputs/").order_by("name"):
        artifacts.setdefault(artifact.name.split("/")[1], []).append(artifact)
    versions = DataVersion.objects.select_related("asset").in_bulk(
        [i["data_version_id"] for i in spec.get("inputs", {}).values() if i.get("type") == "data"]
    )
    inputs = [
        (name, item, versions.get(item.get("data_version_id")) if item.get("type") == "data" else None)
        for name, item in spec.get("inputs", {}).items()
    ]
    outputs = [(name, item, artifacts.get(name, [])) for name, item in spec.get("outputs", {}).items()]
    result = job.result or {}
    return {
        "command_snapshot": snapshot,
        "command_inputs": inputs,
        "command_outputs": outputs,
        "command_result": result,
        "command_protections": result.get("protections")
        or protections_available(spec.get("network", False)).describe(),
        "command_registered": ModelVersion.objects.filter(job=job).select_related("model"),
        # None once deleted: the page then shows the name the node recorded.
        "command_environment": EnvironmentVersion.objects.select_related("environment")
        .filter(environment__workspace_id=job.workspace_id, pk=spec.get("environment_version_id"))
        .first(),
    }


def _head(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(2)


def _model_file(job: Job, output: str) -> Artifact:
    artifacts = list(Artifact.objects.filter(job=job, name__startswith=f"outputs/{output}/"))
    models = [a for a in artifacts if a.name.endswith(".skops")]
    if not models:
        pickles = [a for a in artifacts if a.name.lower().endswith(PICKLE_SUFFIXES)]
        for artifact in artifacts:
            if artifact in pickles or is_pickle(_head(job_artifact_dir(job) / artifact.name)):
                raise ValidationError(PICKLE_MESSAGE.format(name=artifact.name.split("/", 2)[-1]))
        if any(a.name.endswith(".onnx") for a in artifacts):
            raise ValidationError(
                "This output holds an ONNX file only: the registry serves skops models (with an ONNX twin). "
                "Save the model with skops too."
            )
        raise ValidationError(f"The output {output} holds no model file: write a .skops file into it.")
    if len(models) > 1:
        named = [a for a in models if a.name.endswith("/model.skops")]
        if len(named) != 1:
            raise ValidationError(f"The output {output} holds several .skops files: keep one, or name it model.skops.")
        models = named
    return models[0]


def _signature(job: Job, model) -> dict:
    """The model's inputs: the columns it was fitted on (a DataFrame's), typed as the job's data
    input has them."""
    columns = getattr(model, "feature_names_in_", None)
    if columns is None:
        raise ValidationError(
            "The model does not record the columns it takes: fit it on a pandas DataFrame "
            "(its feature_names_in_) so the endpoint knows its inputs."
        )
    columns = [str(c) for c in columns]
    for item in job.spec.get("inputs", {}).values():
        if item.get("type") != "data":
            continue
        version = DataVersion.objects.filter(pk=item["data_version_id"]).first()
        if version is None:
            continue
        path = data_version_path(version)
        if not set(columns) <= set(pq.ParquetFile(path).schema_arrow.names):
            continue
        frame = pq.ParquetFile(path).read(columns=columns).slice(0, SIGNATURE_SAMPLE_ROWS).to_pandas()
        types = {c["name"]: c["semantic_type"] for c in version.schema.get("columns", [])}
        return build_signature(
            frame, column_types={c: types[c] for c in columns if c in types}, classes=_classes(model)
        )
    # No data input has these columns: numbers, since nothing says otherwise.
    frame = pd.DataFrame({c: pd.Series([0.0]) for c in columns})
    return build_signature(frame, column_types={c: "numeric" for c in columns}, classes=_classes(model))


def _classes(model):
    classes = getattr(model, "classes_", None)
    return list(classes) if classes is not None else None


def command_model_register(
    *, actor, job: Job, output: str, name: str, description: str = "", tags=None, aliases=None
) -> ModelVersion:
    """Register the skops model a command job wrote into its model output `output`."""
    require(actor, job.workspace, Action.WRITE)
    if job.kind != COMMAND:
        raise ValidationError(f"{job.name} is not a command job.")
    if job.status != JobStatus.COMPLETED:
        raise ValidationError(f"{job.name} is {job.get_status_display().lower()}: only completed jobs have outputs.")
    if job.spec.get("outputs", {}).get(output, {}).get("type") != "model":
        raise ValidationError(f"{job.name} has no model output named {output!r}.")
    artifact = _model_file(job, output)
    folder = job_artifact_dir(job)
    try:
        model = load_model(folder / artifact.name, artifact.sha256)
    except ModelFileError as exc:
        raise ValidationError(f"{artifact.name.split('/', 2)[-1]} cannot be served: {exc}") from None
    prefix = f"registered/{output}/"
    (folder / prefix).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / artifact.name, folder / f"{prefix}model.skops")
    (folder / f"{prefix}signature.json").write_text(json.dumps(_signature(job, model), default=str))
    for file_name, kind in (("model.skops", "model"), ("signature.json", "signature")):
        path = folder / f"{prefix}{file_name}"
        Artifact.objects.update_or_create(
            job=job,
            name=f"{prefix}{file_name}",
            defaults={"kind": kind, "size": path.stat().st_size, "sha256": sha256_file(path)},
        )
    return registry_services.model_register(
        actor=actor,
        job=job,
        name=name,
        description=description,
        tags=tags,
        aliases=aliases,
        prefix=prefix,
        metrics={},
        algorithm=type(model).__name__,
        lineage={"output": output, "code_snapshot": job.spec.get("code_snapshot_id")},
    )
