"""In-process benchmark of the scoring engine (endpoints/scoring, modelformat): ONNX twin vs the skops pipeline.

    OMP_NUM_THREADS=1 .venv/bin/python bench/serving_engine.py                 # full run
    OMP_NUM_THREADS=1 .venv/bin/python bench/serving_engine.py --quick         # short, while developing
    OMP_NUM_THREADS=1 .venv/bin/python bench/serving_engine.py --export DIR    # also write the model for the HTTP bench

The benchmark model: a synthetic 20-column table (15 numeric, 5 categorical, 5 % missing in some
columns, 20,000 rows, binary target) and a scikit-learn Pipeline of a ColumnTransformer (median
impute + standard scaling for numbers, most-frequent impute + one-hot for labels) and a
HistGradientBoostingClassifier, saved with ``modelformat.modelio`` and converted with
``modelformat.onnx_export.try_convert`` (verified on the 4,000 held-out rows).

Measured, as p50 over many calls (single thread):

  sklearn predict_proba (the pipeline itself) on a 1-row and a 100-row DataFrame
  Predictor on the ONNX twin, 1 and 100 rows (validated columns in, JSON-ready dict out)
  Predictor on the skops pipeline (the fallback), 1 and 100 rows
  Signature.validate_columns on 1 and 100 JSON records (the hot path: no DataFrame)
  validate_payload (returns a DataFrame) on 1 and 100 records
  Predictor.score(payload): validation + ONNX + output, 1 record

The last line is

  BENCH serving_engine onnx_1row_ms=.. skops_1row_ms=.. validate_1row_ms=.. onnx_100row_ms=.. goals=met|missed

with the goal: ONNX 1 row + validation of 1 record ≤ 1 ms (so that the HTTP p50 can stay within
1/5 of ``mlflow models serve``).

``--export DIR`` writes, for the end-to-end HTTP benchmark (and a later MLflow comparison):
  model.skops, model.onnx        the model (load the skops file with modelio.load_model and the
                                 SHA-256 in manifest.json; to serve it with MLflow, save that
                                 object with mlflow.sklearn.save_model in the HTTP harness)
  signature.json                 the input signature
  payload_1.json, payload_100.json   {"dataframe_records": [...]}: accepted by both MLflow's
                                 /invocations and the studio's scoring route
  manifest.json                  hashes, classes, the conversion report and these figures
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from endpoints.scoring.predictor import load_predictor  # noqa: E402
from modelformat import modelio  # noqa: E402
from modelformat.onnx_export import try_convert  # noqa: E402
from modelformat.signature import Signature, build_signature, validate_payload  # noqa: E402

N_NUMERIC = 15
N_CATEGORICAL = 5
GOAL_MS = 1.0


def make_table(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {f"num_{i}": rng.normal(loc=i, scale=1 + i / 5, size=rows) for i in range(N_NUMERIC)}
    levels = [3, 5, 8, 12, 20]
    for j in range(N_CATEGORICAL):
        data[f"cat_{j}"] = rng.choice([f"level_{k}" for k in range(levels[j])], size=rows)
    X = pd.DataFrame(data)
    for name in ("num_0", "num_3", "num_7", "cat_1", "cat_4"):
        X.loc[rng.random(rows) < 0.05, name] = np.nan
    signal = (
        0.8 * X["num_1"].fillna(0)
        - 0.5 * np.sin(X["num_2"])
        + 0.3 * (X["num_4"] - 4) ** 2 / 4
        + (X["cat_0"] == "level_1") * 1.2
        - (X["cat_2"].isin(["level_3", "level_5"])) * 0.9
    )
    logit = (signal - signal.mean()) / signal.std() * 1.5 + rng.normal(scale=0.7, size=rows)
    y = np.where(logit > 0, "yes", "no")
    return X, y


def build_pipeline() -> Pipeline:
    numeric = [f"num_{i}" for i in range(N_NUMERIC)]
    categorical = [f"cat_{j}" for j in range(N_CATEGORICAL)]
    featurizer = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )
    estimator = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    return Pipeline([("featurizer", featurizer), ("estimator", estimator)])


def p50_ms(fn, *, calls: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(calls):
            start = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - start)
    finally:
        if gc_was:
            gc.enable()
    return statistics.median(times) / 1e6


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON records as a client would send them (null for missing)."""
    out = json.loads(frame.to_json(orient="records"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2_000, help="timed calls per 1-row figure")
    parser.add_argument("--quick", action="store_true", help="fewer rows and calls (development)")
    parser.add_argument("--export", type=Path, default=None, help="write the model and sample payloads here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.calls = min(args.rows, 5_000), min(args.calls, 300)
    calls_1, calls_100 = args.calls, max(args.calls // 10, 30)

    X, y = make_table(args.rows)
    split = int(len(X) * 0.8)
    X_train, X_val, y_train = X.iloc[:split], X.iloc[split:], y[:split]
    started = time.perf_counter()
    pipeline = build_pipeline().fit(X_train, y_train)
    fit_s = time.perf_counter() - started

    folder = args.export or Path(tempfile.mkdtemp(prefix="serving-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.skops"
    model_sha = modelio.save_model(pipeline, model_path)
    signature = build_signature(X_train, target="label", classes=pipeline.classes_)
    onnx_bytes, report = try_convert(pipeline, signature, X_val)
    if onnx_bytes is None:
        print(f"ONNX conversion refused: {report['reason']}", file=sys.stderr)
        return 1
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(onnx_bytes)

    sig = Signature(signature)
    onnx_predictor = load_predictor(
        model_path=model_path, model_sha256=model_sha, signature=sig, onnx_path=onnx_path, onnx_sha256=report["sha256"]
    )
    skops_predictor = load_predictor(model_path=model_path, model_sha256=model_sha, signature=sig)
    assert onnx_predictor.backend == "onnx" and skops_predictor.backend == "skops"

    one_frame, hundred_frame = X_val.iloc[:1], X_val.iloc[:100]
    one_records, hundred_records = records(one_frame), records(hundred_frame)
    one_record = one_records[0]
    one_batch, hundred_batch = sig.validate_columns(one_record), sig.validate_columns(hundred_records)
    one_feed = _feed(onnx_predictor, one_batch)  # the bare runtime, for reference

    # the two predictors agree with the pipeline on these rows
    expected = pipeline.predict_proba(hundred_frame)
    got = np.array(
        [
            [p[str(c)] for c in onnx_predictor.classes]
            for p in onnx_predictor.predict_batch(hundred_batch)["probabilities"]
        ]
    )
    assert np.abs(expected - got).max() <= 1e-5, np.abs(expected - got).max()

    figures = {
        "sklearn_1row_ms": p50_ms(lambda: pipeline.predict_proba(one_frame), calls=max(calls_1 // 10, 50)),
        "sklearn_100row_ms": p50_ms(lambda: pipeline.predict_proba(hundred_frame), calls=max(calls_100 // 3, 30)),
        "onnx_1row_ms": p50_ms(lambda: onnx_predictor.predict_batch(one_batch), calls=calls_1),
        "onnx_100row_ms": p50_ms(lambda: onnx_predictor.predict_batch(hundred_batch), calls=calls_100),
        "skops_1row_ms": p50_ms(lambda: skops_predictor.predict_batch(one_batch), calls=max(calls_1 // 10, 50)),
        "skops_100row_ms": p50_ms(lambda: skops_predictor.predict_batch(hundred_batch), calls=max(calls_100 // 3, 30)),
        "validate_1row_ms": p50_ms(lambda: sig.validate_columns(one_record), calls=calls_1),
        "validate_100row_ms": p50_ms(lambda: sig.validate_columns(hundred_records), calls=calls_100),
        "validate_frame_1row_ms": p50_ms(lambda: validate_payload(sig, one_record), calls=calls_1),
        "validate_frame_100row_ms": p50_ms(lambda: validate_payload(sig, hundred_records), calls=calls_100),
        "score_1row_ms": p50_ms(lambda: onnx_predictor.score(one_record), calls=calls_1),
        "onnx_session_1row_ms": p50_ms(lambda: onnx_predictor.session.run(None, one_feed), calls=calls_1),
    }
    goal_met = figures["onnx_1row_ms"] + figures["validate_1row_ms"] <= GOAL_MS

    rows = [
        ("sklearn Pipeline.predict_proba", "sklearn_1row_ms", "sklearn_100row_ms"),
        ("Predictor, ONNX twin", "onnx_1row_ms", "onnx_100row_ms"),
        ("Predictor, skops fallback", "skops_1row_ms", "skops_100row_ms"),
        ("validate_columns (JSON records)", "validate_1row_ms", "validate_100row_ms"),
        ("validate_payload (→ DataFrame)", "validate_frame_1row_ms", "validate_frame_100row_ms"),
        ("Predictor.score (validate + ONNX)", "score_1row_ms", None),
        ("onnxruntime session.run alone", "onnx_session_1row_ms", None),
    ]
    print(
        f"model: {args.rows} rows, 20 columns, fit {fit_s:.1f} s; ONNX verified on {report['rows_checked']} rows "
        f"(max |Δp| = {report['max_abs_diff']:.2g}), {report['size_bytes'] / 1024:.0f} KiB; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'p50, single thread':<38} {'1 row':>10} {'100 rows':>10}")
    for label, one, hundred in rows:
        second = f"{figures[hundred]:>8.3f} ms" if hundred else f"{'':>11}"
        print(f"{label:<38} {figures[one]:>7.3f} ms {second}")
    speedup = figures["sklearn_1row_ms"] / figures["onnx_1row_ms"]
    print(f"ONNX vs the pipeline, 1 row: {speedup:.0f}x faster")

    if args.export:
        (folder / "signature.json").write_text(json.dumps(signature, indent=1))
        (folder / "payload_1.json").write_text(json.dumps({"dataframe_records": one_records}))
        (folder / "payload_100.json").write_text(json.dumps({"dataframe_records": hundred_records}))
        manifest = {
            "model": "model.skops",
            "model_sha256": model_sha,
            "onnx": "model.onnx",
            "onnx_sha256": report["sha256"],
            "classes": signature["classes"],
            "columns": [c["name"] for c in signature["columns"]],
            "conversion": report,
            "figures_ms": {k: round(v, 4) for k, v in figures.items()},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        print(f"exported to {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)

    line = " ".join(
        f"{k}={figures[k]:.3f}" for k in ("onnx_1row_ms", "skops_1row_ms", "validate_1row_ms", "onnx_100row_ms")
    )
    print(
        f"BENCH serving_engine {line} sklearn_1row_ms={figures['sklearn_1row_ms']:.3f} "
        f"score_1row_ms={figures['score_1row_ms']:.3f} goals={'met' if goal_met else 'missed'}"
    )
    return 0


def _feed(predictor, batch):
    from modelformat.onnx_export import onnx_feed

    return onnx_feed(batch.columns, predictor._inputs)  # noqa: SLF001


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
