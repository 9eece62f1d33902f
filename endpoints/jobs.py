"""The batch scoring job: score a whole data version with a registered model on a compute cluster;
the predictions (beside the input columns) become a new version of a data asset.

With a forecasting model it is batch forecasting: the data version (optional) holds each series'
history rows — rows without a target after a series' last known value are its known-ahead future —
and without one the model's stored history is forecast; the forecasts (series columns, time,
forecast, lower, upper) become the new version."""

import contextlib
import secrets
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError

from compute.jobs.kinds import CleanSpec, JobHandler
from compute.jobs.runner import JobError
from data import services as data_services
from data.dataio import DataError, ingest, sniff
from data.models import DataVersion, Ingest, IngestStatus
from data.selectors import data_version_get_by_id
from endpoints.models import BATCH_SCORE  # noqa: F401 - the kind this module runs, named from here too
from endpoints.scoring.batch import score_table
from endpoints.scoring.predictor import load_predictor
from modelformat.signature import FORECASTING, ForecastRequest, PayloadError
from studio.hashing import sha256_file
from training.models import ModelVersion
from training.registry_selectors import model_version_get_by_id
from training.registry_services import model_version_dir

from .selectors import endpoint_get


class BatchScoreJob(JobHandler):
    submittable = True

    """Spec: ``{model_version_id | endpoint_id, data_version_id, output_asset?}``. An endpoint stands
    for the model version its live deployment serves (the one taking the most traffic), resolved
    at submit time so the job scores with what the endpoint served then."""

    def validate(self, *, workspace, spec) -> CleanSpec:
        if not isinstance(spec, dict):
            raise ValidationError({"spec": ["The spec must be a JSON object."]})
        model_version, endpoint = self._model_version(workspace, spec)
        if model_version.task == FORECASTING:
            return self._validate_forecast(workspace, spec, model_version, endpoint)
        if not _is_id(spec.get("data_version_id")):
            raise ValidationError({"data_version_id": ["Give the id of a data version of this workspace."]})
        # Ids of another workspace answer 404, like every other id (R4).
        data_version = data_version_get_by_id(workspace=workspace, version_id=spec["data_version_id"])
        columns = {c["name"] for c in data_version.schema.get("columns", []) if not c.get("excluded")}
        missing = [
            c["name"]
            for c in model_version.signature.get("columns", [])
            if c.get("required", True) and c["name"] not in columns
        ]
        if missing:
            raise ValidationError(
                {"data_version_id": [f"{data_version} lacks column(s) the model needs: {', '.join(missing[:10])}."]}
            )
        output = spec.get("output_asset") or f"{data_version.asset.name}-scored"
        if not isinstance(output, str) or not data_services.asset_name_valid(output):
            raise ValidationError(
                {"output_asset": ["Use 1–100 letters, digits, spaces, dots, hyphens or underscores."]}
            )
        clean = {"model_version_id": model_version.pk, "data_version_id": data_version.pk, "output_asset": output}
        if endpoint is not None:
            clean["endpoint_id"] = endpoint.pk
        return CleanSpec(spec=clean, data_version=data_version)

    @staticmethod
    def _validate_forecast(workspace, spec, model_version, endpoint) -> CleanSpec:
        """Batch forecasting: history rows from a data version (with the time, series and target
        columns), or none: the model's stored history."""
        data_version = None
        if spec.get("data_version_id") is not None:
            if not _is_id(spec["data_version_id"]):
                raise ValidationError({"data_version_id": ["Give the id of a data version of this workspace."]})
            data_version = data_version_get_by_id(workspace=workspace, version_id=spec["data_version_id"])
            columns = {c["name"] for c in data_version.schema.get("columns", []) if not c.get("excluded")}
            info = model_version.signature["forecast"]
            needed = [info["time_column"], *info["series_columns"], info["target_column"]]
            missing = [name for name in needed if name not in columns]
            if missing:
                raise ValidationError(
                    {"data_version_id": [f"{data_version} lacks the history column(s) {', '.join(missing)}."]}
                )
        default = f"{data_version.asset.name}-forecasts" if data_version else f"{model_version.model.name}-forecasts"
        output = spec.get("output_asset") or default
        if not isinstance(output, str) or not data_services.asset_name_valid(output):
            raise ValidationError(
                {"output_asset": ["Use 1–100 letters, digits, spaces, dots, hyphens or underscores."]}
            )
        clean = {
            "model_version_id": model_version.pk,
            "data_version_id": data_version.pk if data_version else None,
            "output_asset": output,
        }
        if endpoint is not None:
            clean["endpoint_id"] = endpoint.pk
        return CleanSpec(spec=clean, data_version=data_version)

    @staticmethod
    def _model_version(workspace, spec) -> tuple[ModelVersion, object | None]:
        has_model, has_endpoint = spec.get("model_version_id") is not None, spec.get("endpoint_id") is not None
        if has_model == has_endpoint:
            message = "Give a model_version_id or an endpoint_id (one of them)."
            raise ValidationError({"model_version_id": [message], "endpoint_id": [message]})
        if has_model:
            if not _is_id(spec["model_version_id"]):
                raise ValidationError({"model_version_id": ["Give the id of a registered model version."]})
            return model_version_get_by_id(workspace=workspace, version_id=spec["model_version_id"]), None
        if not _is_id(spec["endpoint_id"]):
            raise ValidationError({"endpoint_id": ["Give the id of an endpoint of this workspace."]})

        endpoint = endpoint_get(workspace=workspace, endpoint_id=spec["endpoint_id"])
        deployments = {d.name: d for d in endpoint.deployments.all()}
        live = sorted((share, name) for name, share in endpoint.traffic.items() if share > 0 and name in deployments)
        if not live:
            raise ValidationError({"endpoint_id": [f"{endpoint.name} has no deployment taking traffic."]})
        return deployments[live[-1][1]].model_version, endpoint

    def run(self, ctx) -> dict:
        spec = ctx.spec
        model_version = ModelVersion.objects.select_related("model").get(pk=spec["model_version_id"])
        if model_version.task == FORECASTING:
            return _forecast_job(ctx, model_version)
        data_version = DataVersion.objects.select_related("asset").get(pk=spec["data_version_id"])
        folder = model_version_dir(model_version)
        predictor = load_predictor(
            model_path=None if model_version.onnx_only else folder / "model.skops",
            model_sha256=model_version.sha256,
            signature=model_version.signature,
            onnx_path=(folder / "model.onnx") if model_version.onnx_sha256 else None,
            onnx_sha256=model_version.onnx_sha256 or None,
        )
        ctx.log(f"Scoring {data_version} ({data_version.rows:,} rows) with {model_version} ({predictor.backend})")
        staging_dir = data_services.workspace_artifact_dir(ctx.job.workspace_id) / "data"
        staging_dir.mkdir(parents=True, exist_ok=True)
        scored = staging_dir / f".scored-{ctx.job.pk}-{secrets.token_hex(4)}.parquet"
        final = staging_dir / f".scored-{ctx.job.pk}-{secrets.token_hex(4)}.final.parquet"
        started = time.perf_counter()
        row = Ingest.objects.create(
            workspace_id=ctx.job.workspace_id,
            asset_name=spec["output_asset"],
            status=IngestStatus.RUNNING,
            description=f"Predictions of {model_version} on {data_version}",
            tags=["predictions"],
            source_name=f"batch scoring job #{ctx.job.pk}",
            source_size=data_version.parquet_size,
            job=ctx.job,
            created_by=ctx.job.submitted_by,
        )
        with _writing_output(row, scored, final):
            summary = _score(predictor, data_services.data_version_path(data_version), scored, ctx)
            ctx.log(f"Scored {summary['rows_scored']:,} rows in {time.perf_counter() - started:.1f} s")
            ctx.check_canceled()
            types = _output_types(data_version, scored, summary["prediction_column"], regression=predictor.regression)
            version = _save_output(row, scored, final, types)
        ctx.log(f"Wrote {version} with the predictions")
        return {
            "output_data_version_id": version.pk,
            "output": str(version),
            "rows": summary["rows_scored"],
            "backend": predictor.backend,
        }


def _forecast_job(ctx, model_version) -> dict:
    spec = ctx.spec
    data_version = (
        DataVersion.objects.select_related("asset").get(pk=spec["data_version_id"])
        if spec.get("data_version_id")
        else None
    )
    folder = model_version_dir(model_version)
    predictor = load_predictor(
        model_path=folder / "model.skops", model_sha256=model_version.sha256, signature=model_version.signature
    )
    info = predictor.signature.forecast
    staging_dir = data_services.workspace_artifact_dir(ctx.job.workspace_id) / "data"
    staging_dir.mkdir(parents=True, exist_ok=True)
    written = staging_dir / f".forecasts-{ctx.job.pk}-{secrets.token_hex(4)}.parquet"
    final = staging_dir / f".forecasts-{ctx.job.pk}-{secrets.token_hex(4)}.final.parquet"
    source = f"{data_version} ({data_version.rows:,} rows)" if data_version else "its stored history"
    ctx.log(f"Forecasting {info['horizon']} steps ({info['frequency']}) with {model_version} from {source}")
    row = Ingest.objects.create(
        workspace_id=ctx.job.workspace_id,
        asset_name=spec["output_asset"],
        status=IngestStatus.RUNNING,
        description=f"Forecasts of {model_version}" + (f" from {data_version}" if data_version else ""),
        tags=["forecasts"],
        source_name=f"batch forecasting job #{ctx.job.pk}",
        source_size=data_version.parquet_size if data_version else 0,
        job=ctx.job,
        created_by=ctx.job.submitted_by,
    )
    started = time.perf_counter()
    with _writing_output(row, written, final):
        request = _forecast_request(predictor, data_version)
        forecasts = pd.DataFrame(predictor.forecast(request)["forecasts"])
        forecasts[info["time_column"]] = pd.to_datetime(forecasts[info["time_column"]])
        forecasts.to_parquet(written, index=False)
        ctx.log(f"{len(forecasts):,} forecasts in {time.perf_counter() - started:.1f} s")
        ctx.check_canceled()
        types = {
            c["name"]: c["type"] for c in model_version.signature["columns"] if c["name"] in info["series_columns"]
        }
        types |= {info["time_column"]: "datetime", "forecast": "numeric", "lower": "numeric", "upper": "numeric"}
        version = _save_output(row, written, final, types)
    ctx.log(f"Wrote {version} with the forecasts")
    return {
        "output_data_version_id": version.pk,
        "output": str(version),
        "rows": len(forecasts),
        "series": int(forecasts[info["series_columns"]].drop_duplicates().shape[0]) if info["series_columns"] else 1,
        "backend": predictor.backend,
        "task": FORECASTING,
    }


@contextlib.contextmanager
def _writing_output(row: Ingest, *staging: Path):
    """Input the model cannot take fails the job with its message kept on the output's ingest row;
    the staging files go either way."""
    try:
        yield
    except (PayloadError, DataError) as exc:
        message = str(exc)
        data_services.ingest_fail(
            ingest=row, error={"code": "batch_score", "message": message, "row": None, "column": None}
        )
        raise JobError(message) from None
    finally:
        for path in staging:
            path.unlink(missing_ok=True)


def _save_output(row: Ingest, written: Path, final: Path, column_types: dict) -> DataVersion:
    """The job's output file as the ingest row's new data version, parsed and profiled as an upload."""
    result = ingest(
        written, sniff(written, written.name), final, limits=data_services.ingest_limits(), column_types=column_types
    )
    return data_services.ingest_complete(
        ingest=row,
        parquet=final,
        schema=result.schema,
        rows=result.rows,
        profile=result.profile,
        sha256=sha256_file(final),
        source_format="parquet",
        warnings=list(result.warnings),
    )


def _forecast_request(predictor, data_version) -> ForecastRequest:
    """The request for a batch: the version's rows as history, except rows without a target after
    their series' last known value, which carry the known-ahead future."""
    if data_version is None:
        return ForecastRequest()
    signature = predictor.signature
    info = signature.forecast
    names = list(signature.history_signature.names)
    present = set(pq.ParquetFile(data_services.data_version_path(data_version)).schema_arrow.names)
    table = pq.read_table(data_services.data_version_path(data_version), columns=[n for n in names if n in present])
    frame = table.to_pandas(date_as_object=False)
    history = signature.history_signature.validate_frame(frame).to_frame(signature.history_signature)
    if not info["known_ahead"]:
        return ForecastRequest(history=history, rows=len(history))
    keys, time_column, target = info["series_columns"], info["time_column"], info["target_column"]
    known_times = history[time_column].where(history[target].notna())
    if keys:
        ends = known_times.groupby([history[k] for k in keys], dropna=False).transform("max")
    else:
        ends = pd.Series(known_times.max(), index=history.index)
    is_future = (history[target].isna() & (history[time_column] > ends)).to_numpy()
    future = history.loc[is_future, [*keys, time_column, *info["known_ahead"]]].reset_index(drop=True)
    return ForecastRequest(
        history=history.loc[~is_future].reset_index(drop=True),
        future=future if len(future) else None,
        rows=len(history),
    )


def _output_types(data_version, scored, prediction_column: str, *, regression: bool = False) -> dict[str, str]:
    """The scored table keeps the input's column types, and predictions are labels: text such as
    "true"/"false" or "10" must not be read again as booleans or numbers; a regression's are numbers."""
    names = set(pq.ParquetFile(scored).schema_arrow.names)
    types = {c["name"]: c["semantic_type"] for c in data_version.schema["columns"] if c["name"] in names}
    return types | {prediction_column: "numeric" if regression else "categorical"}


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _score(predictor, source, out, ctx):
    def progress(done: int, total: int) -> None:
        ctx.log(f"Scored {done:,} of {total:,} rows")
        ctx.metric("rows_scored", done, step=done)
        ctx.check_canceled()

    return score_table(predictor, source, out, on_chunk=progress)
