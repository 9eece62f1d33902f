"""Package a fitted model for the registry and for serving, inside the job that trained it.

Writes the job's artifacts: `model.skops` (the one model format, with its SHA-256), the input
`signature.json`, a verified ONNX twin `model.onnx` when the pipeline converts (probabilities
within 1e-5 of scikit-learn's on the validation rows, a regressor's predictions within 1e-5
relative; else no ONNX file and the reason in `onnx_report.json`), and the drift
`reference_profile.json` used by endpoint monitoring (for a regression, with the training target's
distribution: served predictions are compared with it).
Registering the model later only copies these files.
"""

import json
import time

import pandas as pd

from modelformat.drift import prediction_profile, reference_profile
from modelformat.modelio import save_model
from modelformat.onnx_export import try_convert
from modelformat.signature import build_signature, unused_columns

from .ml.latency import row_latency_ms
from .ml.tasks import REGRESSION

ONNX_CHECK_ROWS = 2_000
# Deep forests on tens of thousands of rows make files of hundreds of MB; converting one to ONNX
# took 50 s of a 60 s Automated ML budget in bench/automl.py, and big ensembles rarely verify.
ONNX_MAX_MODEL_BYTES = 64 * 1024**2
PROFILE_ROWS = 50_000
# Converting and verifying takes about this per MB of skops file (a 20 MB voting ensemble: 3 s,
# a 279 MB forest ensemble: 50 s); a conversion that would end after the deadline is not tried,
# unless it is short.
ONNX_SECONDS_PER_MB = 0.2
# A conversion this quick is tried even past the deadline: a model served without its twin scores
# several times slower for as long as it is deployed, which costs more than a run a second late
# (bench/serving.py: an AutoML ames_price run had 0 s left for its 1 MB model's 0.7 s conversion).
ONNX_ALWAYS_SECONDS = 2.0


def package_model(
    ctx,
    model,
    *,
    X: pd.DataFrame,
    X_check: pd.DataFrame,
    column_types: dict,
    target: str,
    classes: list,
    task: str = "classification",
    y: pd.Series | None = None,
    prefix: str = "",
    latency_ms: float | None = None,
    deadline: float | None = None,
) -> dict:
    """Save the model and what serving needs as artifacts `<prefix>model.skops` etc.; return a summary.

    The summary's ``latency_ms`` is the model's 1-row scoring time (the caller's measure, or
    measured here), which the registry shows on the model page. ``deadline``
    (``time.monotonic()``): the ONNX conversion is skipped, with its reason, when it would likely
    end after it (an Automated ML run's time budget) and take more than ONNX_ALWAYS_SECONDS.
    """
    started = time.perf_counter()
    regression = task == REGRESSION
    if latency_ms is None:
        timed = _PredictTimed(model) if regression else model
        latency_ms = row_latency_ms(timed, X_check.head(1) if len(X_check) else X.head(1))
    sha = save_model(model, ctx.artifact_path(f"{prefix}model.skops"))
    artifact = ctx.artifact_saved(f"{prefix}model.skops", kind="model")
    if artifact.sha256 != sha:
        raise RuntimeError("the model file changed while it was being recorded")
    types = {name: kind for name, kind in column_types.items() if name in X.columns}
    signature = build_signature(
        X,
        column_types=types,
        target=target,
        classes=[] if regression else classes,
        optional=unused_columns(model, X.columns),
        task=task,
    )
    write_json_artifact(ctx, f"{prefix}signature.json", signature, "signature")
    estimate = _onnx_seconds_estimate(artifact.size)
    if artifact.size > ONNX_MAX_MODEL_BYTES:
        onnx_bytes, report = (
            None,
            {
                "converted": False,
                "reason": f"the model file is {artifact.size / 1024**2:.0f} MB; models over "
                f"{ONNX_MAX_MODEL_BYTES // 1024**2} MB are served from skops (converting them takes minutes)",
            },
        )
    elif deadline is not None and estimate > max(deadline - time.monotonic(), ONNX_ALWAYS_SECONDS):
        onnx_bytes, report = (
            None,
            {
                "converted": False,
                "reason": f"not converted: converting a {artifact.size / 1024**2:.0f} MB model takes about "
                f"{estimate:.0f} s and the run's time budget had "
                f"{max(deadline - time.monotonic(), 0):.0f} s left; served from skops",
            },
        )
    else:
        onnx_bytes, report = try_convert(model, signature, X_check.head(ONNX_CHECK_ROWS))
    if onnx_bytes is not None:
        ctx.artifact_path(f"{prefix}model.onnx").write_bytes(onnx_bytes)
        ctx.artifact_saved(f"{prefix}model.onnx", kind="model")
    write_json_artifact(ctx, f"{prefix}onnx_report.json", report, "report")
    sample = X if len(X) <= PROFILE_ROWS else X.sample(PROFILE_ROWS, random_state=0)
    profile = reference_profile(sample, signature)
    if regression and y is not None:  # served predictions are compared with the training target
        profile["prediction"] = prediction_profile(y)
    write_json_artifact(ctx, f"{prefix}reference_profile.json", profile, "monitoring")
    ctx.log(
        f"Packaged {prefix}model.skops ({artifact.size:,} bytes)"
        + (
            f" and a verified ONNX twin (max difference {report['max_abs_diff']:.1e}"
            + (f", {report['max_rel_diff']:.1e} relative)" if report.get("max_rel_diff") is not None else ")")
            if onnx_bytes
            else f"; no ONNX twin ({report['reason']})"
        )
        + f" in {time.perf_counter() - started:.1f} s"
    )
    return {
        "model_artifact": artifact.pk,
        "model_sha256": sha,
        "onnx": bool(onnx_bytes),
        "onnx_reason": report.get("reason"),
        "onnx_max_abs_diff": report.get("max_abs_diff"),
        "onnx_max_rel_diff": report.get("max_rel_diff"),
        "task": task,
        "onnx_seconds": report.get("seconds"),
        "packaging_seconds": round(time.perf_counter() - started, 3),
        "latency_ms": latency_ms,
    }


class _PredictTimed:
    """A regressor as ``row_latency_ms`` times models: serving calls its ``predict``."""

    def __init__(self, model):
        self.predict_proba = model.predict


def _onnx_seconds_estimate(size_bytes: int) -> float:
    return 0.5 + ONNX_SECONDS_PER_MB * size_bytes / 1024**2


def write_json_artifact(ctx, name: str, data, kind: str) -> None:
    """Write ``data`` as the job's JSON artifact ``name``."""
    ctx.artifact_path(name).write_text(json.dumps(data, default=str))
    ctx.artifact_saved(name, kind=kind)
