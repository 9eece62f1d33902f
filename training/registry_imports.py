"""Models from elsewhere: register a skops file, an ONNX file or an MLflow model folder.

One entry point for every way in (the upload page, the REST API, MLflow's `register_model`):
`model_import` takes a file on disk (an upload already staged) or a model folder (an archive's
members, or a run's logged artifacts), and registers it as the next version of the model `name`.

* skops files load only through `modelformat.modelio` (the reviewed allow-list); ONNX files are
  rewritten by `modelformat.model_import.onnx_prepare` into the shape the scorer feeds, and served
  by onnxruntime alone (an ONNX-only version has no model.skops; its `sha256` is the ONNX file's).
* Pickle files and pickle-based MLflow flavours are refused, saying how to save as skops or ONNX.
* The signature is, first found: the one given (a list of {name, type}), the chosen data version's
  columns and types minus the target column, MLflow's column signature, or (skops) the columns the
  model was fitted on as numbers. The model is run on sample rows before it is registered, so a
  signature that does not fit the model is refused here, not at deploy time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from data.models import DataVersion
from data.services import data_version_path
from modelformat.drift import prediction_profile, reference_profile
from modelformat.model_import import (
    MAX_MEMBERS,
    ArchiveFolder,
    ImportRefused,
    is_pickle_name,
    mlflow_model_file,
    mlflow_signature_columns,
    onnx_input_columns,
    onnx_prepare,
    parse_signature_text,
    read_mlmodel,
    sample_payload,
    signature_from_columns,
)
from modelformat.modelio import PICKLE_ADVICE, ModelFileError, is_pickle, load_model
from modelformat.onnx_export import make_session, onnx_feed, session_io
from modelformat.onnx_model import is_regressor
from modelformat.signature import CLASSIFICATION, REGRESSION, Signature, build_signature, json_labels
from studio import objectstore
from workspaces.policy import Action, require
from workspaces.services import StorageQuotaExceeded, activity_record, workspace_storage_check

from .datasets import check_target, included_columns
from .models import ModelVersion, RegisteredModel
from .registry_services import (
    _alias_set,
    _clean_aliases,
    _clean_model_name,
    library_versions,
    model_version_checksums,
    model_version_location,
)

SAMPLE_ROWS = 10_000  # rows of the data version read for the signature's types and the drift reference
CHECK_ROWS = 200  # of which the model is run on this many before it is registered


def _refused(exc: ImportRefused) -> ValidationError:
    return ValidationError({exc.field: [str(exc)]})


def _file_kind(path: Path, filename: str) -> str:
    """skops, onnx or folder (an MLflow model archive), from the name and the first bytes."""
    with path.open("rb") as file:
        head = file.read(512)
    lower = filename.lower()
    if is_pickle_name(lower) or (not head.startswith(b"PK") and is_pickle(head)):
        raise ImportRefused(f"{filename} is a pickle file. {PICKLE_ADVICE}")
    if head.startswith(b"PK\x03\x04"):
        if lower.endswith(".skops"):
            return "skops"
        try:  # a skops file under another name: its schema at the top, no MLmodel
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist()[:MAX_MEMBERS])
        except zipfile.BadZipFile:
            raise ImportRefused(f"{filename} is a damaged zip archive.") from None
        return "skops" if "schema.json" in names and not any(n.endswith("MLmodel") for n in names) else "folder"
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return "folder"
    if lower.endswith(".skops"):
        raise ImportRefused(f"{filename} is not a skops file (a skops file is a zip archive).")
    return "onnx"


def _data_sample(data_version: DataVersion, target_column: str):
    names = [c["name"] for c in included_columns(data_version) if c["name"] != target_column]
    table = pq.ParquetFile(data_version_path(data_version)).read(columns=names)
    frame = table.slice(0, SAMPLE_ROWS).to_pandas(date_as_object=False)
    types = {c["name"]: c["semantic_type"] for c in included_columns(data_version)}
    return frame, {n: types[n] for n in names if n in types}


def _target_sample(data_version: DataVersion, target_column: str):
    table = pq.ParquetFile(data_version_path(data_version)).read(columns=[target_column])
    return table.slice(0, SAMPLE_ROWS).column(0).to_pandas()


def _signature(*, given, data_version, target_column, mlflow_columns, model_columns, classes, task=CLASSIFICATION):
    """(signature, sample frame or None) from the first source there is (module docstring)."""
    target = target_column or None
    if given not in (None, "", []):
        columns = parse_signature_text(given)
        return signature_from_columns(columns, classes=classes, target=target, task=task), None
    if data_version is not None:
        if target_column:
            check_target(data_version, target_column)
        frame, types = _data_sample(data_version, target_column)
        if frame.shape[1] == 0:
            raise ValidationError({"data_version": [f"{data_version} has no columns besides the target."]})
        signature = build_signature(frame, column_types=types, target=target, classes=classes, task=task)
        return signature, frame
    if mlflow_columns:
        return signature_from_columns(mlflow_columns, classes=classes, target=target, task=task), None
    if model_columns:
        return signature_from_columns(model_columns, classes=classes, target=target, task=task), None
    raise ValidationError(
        {
            "data_version": [
                "Choose the data version the model was trained on, or give its signature, so the "
                "endpoint knows the model's inputs."
            ]
        }
    )


def _check_rows(signature: dict, frame):
    """Rows to run the model on: the data version's first rows, else made-up ones."""
    sig = Signature(signature)
    if frame is not None and len(frame):
        return sig.validate_frame(frame.head(CHECK_ROWS))
    return sig.validate_columns(sample_payload(signature))


def _prepare_skops(data: bytes, options: dict):
    """(files, fields) for a skops model: loaded with the allow-list, run on sample rows."""
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        path.write_bytes(data)
        try:
            model = load_model(path, digest)
        except ModelFileError as exc:
            raise ValidationError({"file": [f"The skops file cannot be served: {exc}"]}) from None
    # a regressor has neither predict_proba nor classes_: it predicts numbers
    regression = is_regressor(model)
    if not regression and (not hasattr(model, "predict_proba") or getattr(model, "classes_", None) is None):
        raise ValidationError(
            {"file": ["The model is neither a fitted classifier (predict_proba and classes_) nor a regressor."]}
        )
    classes = [] if regression else json_labels(model.classes_)
    fitted = getattr(model, "feature_names_in_", None)
    columns = None if fitted is None else [{"name": str(c), "type": "numeric"} for c in fitted]
    task = REGRESSION if regression else CLASSIFICATION
    signature, frame = _signature(**options, model_columns=columns, classes=classes, task=task)
    if fitted is not None:
        names = {c["name"] for c in signature["columns"]}
        missing = [str(c) for c in fitted if str(c) not in names]
        if missing:
            raise ValidationError(
                {"signature": [f"The model was fitted on columns the signature lacks: {missing[:10]}"]}
            )
    try:
        batch = _check_rows(signature, frame)
        scored = (model.predict if regression else model.predict_proba)(batch.to_frame(Signature(signature)))
        if regression:
            np.asarray(scored, dtype=np.float64).reshape(batch.n_rows)  # one number per row
    except Exception as exc:  # noqa: BLE001 - any failure: the model does not take these inputs
        raise ValidationError(
            {"signature": [f"The model does not score rows of this signature: {type(exc).__name__}: {str(exc)[:300]}"]}
        ) from None
    fields = {"algorithm": type(model).__name__[:100], "sha256": digest, "onnx_sha256": ""}
    return {"model.skops": data}, signature, frame, fields


def _prepare_onnx(data: bytes, options: dict):
    """(files, fields) for an ONNX model: rewritten for the scorer's feed, run on sample rows."""
    signature, frame = _signature(**options, model_columns=onnx_input_columns(data), classes=None)
    try:
        prepared, signature = onnx_prepare(data, signature)
    except ImportRefused as exc:
        raise _refused(exc) from None
    try:
        session = make_session(prepared)
        feed_inputs, output = session_io(session, Signature(signature))
        batch = _check_rows(signature, frame)
        result = session.run([output], onnx_feed(batch.columns, feed_inputs))[0]
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ValidationError(
            {"file": [f"The ONNX model does not run on rows of this signature: {type(exc).__name__}: {str(exc)[:300]}"]}
        ) from None
    if signature.get("task") == REGRESSION:
        if result.shape != (batch.n_rows, 1):
            raise ValidationError(
                {"file": [f"The ONNX model gives {result.shape[1:]} values per row, not one number."]}
            )
    elif result.shape != (batch.n_rows, len(signature["classes"])):
        message = f"The ONNX model gives {result.shape[1:]} values per row for {len(signature['classes'])} classes."
        raise ValidationError({"file": [message]})
    producer = session.get_modelmeta().producer_name or "ONNX"
    digest = hashlib.sha256(prepared).hexdigest()
    fields = {"algorithm": f"ONNX ({producer})"[:100], "sha256": digest, "onnx_sha256": digest}
    return {"model.onnx": prepared}, signature, frame, fields


def _from_folder(folder, options: dict, max_bytes: int):
    """Prepare the served file of an MLflow model folder (an archive or a run's artifacts)."""
    mlmodel = read_mlmodel(folder)
    kind, member = mlflow_model_file(mlmodel)
    data = folder.read(member, max_bytes)
    columns = mlflow_signature_columns(mlmodel)
    if kind == "skops":
        return _prepare_skops(data, {**options, "mlflow_columns": columns})
    return _prepare_onnx(data, {**options, "mlflow_columns": columns})


def model_import(
    *,
    actor,
    workspace,
    name: str,
    path: Path | None = None,
    filename: str = "",
    folder=None,
    description: str = "",
    data_version: DataVersion | None = None,
    signature=None,
    target_column: str = "",
    aliases=None,
    job=None,
    lineage: dict | None = None,
) -> ModelVersion:
    """Register a model made elsewhere as the next version of `name` (module docstring).

    Give `path` (a staged file: .skops, .onnx, or an MLflow model folder as .zip/.tar.gz) with its
    `filename`, or `folder` (an object with `names()` and `read(name, max_bytes)`, e.g. a run's
    logged files). `data_version` must be the workspace's (callers look it up with the workspace).
    """
    require(actor, workspace, Action.WRITE)
    name = _clean_model_name(name)
    aliases = _clean_aliases(aliases)
    if not isinstance(description, str) or len(description) > 2000:
        raise ValidationError({"description": ["Use at most 2,000 characters."]})
    if not isinstance(target_column, str):
        raise ValidationError({"target_column": ["Give the target column's name."]})
    target_column = target_column.strip()
    if data_version is not None and data_version.asset.workspace_id != workspace.pk:
        raise ValidationError({"data_version": ["Choose a data version of this workspace."]})
    max_bytes = settings.STUDIO_MODEL_UPLOAD_MAX_BYTES
    options = {"given": signature, "data_version": data_version, "target_column": target_column}
    try:
        if folder is not None:
            files, sig, frame, fields = _from_folder(folder, options, max_bytes)
            source = "mlflow"
        else:
            if path is None:
                raise ImportRefused("Choose a model file.")
            if path.stat().st_size > max_bytes:
                raise ImportRefused(f"The model file is larger than the limit of {max_bytes:,} bytes.")
            if path.stat().st_size == 0:
                raise ImportRefused("The model file is empty.")
            kind = _file_kind(path, filename)
            if kind == "folder":
                archive = ArchiveFolder(path)
                try:
                    files, sig, frame, fields = _from_folder(archive, options, max_bytes)
                finally:
                    archive.close()
            elif kind == "skops":
                files, sig, frame, fields = _prepare_skops(path.read_bytes(), {**options, "mlflow_columns": None})
            else:
                files, sig, frame, fields = _prepare_onnx(path.read_bytes(), {**options, "mlflow_columns": None})
            source = "upload"
    except ImportRefused as exc:
        raise _refused(exc) from None
    except ValueError as exc:  # a signature the studio cannot compile
        raise ValidationError({"signature": [str(exc)]}) from None
    files["signature.json"] = json.dumps(sig, default=str).encode()
    if frame is not None and len(frame):
        profile = reference_profile(frame, sig)
        if sig.get("task") == REGRESSION and target_column:  # served predictions vs the target
            profile["prediction"] = prediction_profile(_target_sample(data_version, target_column))
        files["reference_profile.json"] = json.dumps(profile, default=str).encode()
    return _version_create(
        actor=actor,
        workspace=workspace,
        name=name,
        description=description,
        aliases=aliases,
        files=files,
        signature=sig,
        data_version=data_version,
        job=job,
        lineage={"source": source, "file_name": filename[:200], **(lineage or {})},
        **fields,
    )


def _version_create(
    *,
    actor,
    workspace,
    name,
    description,
    aliases,
    files,
    signature,
    data_version,
    job,
    lineage,
    algorithm,
    sha256,
    onnx_sha256,
) -> ModelVersion:
    served = files.get("model.skops") or files["model.onnx"]
    try:
        workspace_storage_check(workspace=workspace, adding=sum(len(data) for data in files.values()))
    except StorageQuotaExceeded as exc:
        raise ValidationError({"file": exc.messages}) from None
    with transaction.atomic():
        model, _ = RegisteredModel.objects.select_for_update().get_or_create(
            workspace=workspace, name=name, defaults={"created_by": actor, "description": description}
        )
        number = (model.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        version = ModelVersion.objects.create(
            model=model,
            version=number,
            description=description,
            job=job,
            data_version=data_version,
            algorithm=algorithm,
            target_column=signature.get("target") or "",
            signature=signature,
            classes=signature.get("classes") or [],
            task=signature.get("task") or CLASSIFICATION,
            lineage={**lineage, "libraries": library_versions()},
            file_size=len(served),
            sha256=sha256,
            onnx_sha256=onnx_sha256,
            created_by=actor,
        )
        folder = model_version_location(version)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for file_name, data in files.items():
                (folder / file_name).write_bytes(data)
            objectstore.publish_folder(folder, sha256s=model_version_checksums(version))
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)  # the version row rolls back with this
            raise
        for alias in aliases:
            _alias_set(model, alias, version)
        RegisteredModel.objects.filter(pk=model.pk).update(updated_at=version.created_at)
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="model_registered",
            summary=f"{actor} registered {version} from a {lineage['source']} file",
        )
    return version
