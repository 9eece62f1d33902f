"""Models made "elsewhere" for the import tests: a pipeline fitted on messy data (names with spaces
and symbols, unicode labels, missing values), saved as skops, ONNX (skl2onnx) and MLflow folders."""

import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TARGET = "churned?"


def messy_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    radius = rng.normal(10, 3, n).astype("float32")
    radius[rng.random(n) < 0.1] = np.nan
    plan = rng.choice(["basic", "pro", "größe plan", "équipe/β"], n).astype(object)
    plan[rng.random(n) < 0.1] = None
    frame = pd.DataFrame(
        {
            "customer id": [f"c-{i:04d}" for i in range(n)],
            "mean radius (mm)": radius,
            "plan type": plan,
            "n visits": rng.integers(0, 20, n),
        }
    )
    score = np.nan_to_num(radius, nan=10) / 3 + (frame["n visits"] > 10) + (plan == "pro")
    frame[TARGET] = np.where(score + rng.normal(0, 0.5, n) > 4.5, "yes", "no")
    return frame


FEATURES = ["mean radius (mm)", "plan type", "n visits"]


def fitted_pipeline(frame: pd.DataFrame) -> Pipeline:
    features = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                ["mean radius (mm)", "n visits"],
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan type"]),
        ]
    )
    X = frame[FEATURES].copy()
    X["plan type"] = X["plan type"].fillna("nan").astype(str)
    return Pipeline([("features", features), ("model", LogisticRegression(max_iter=200))]).fit(X, frame[TARGET])


def onnx_bytes(pipeline: Pipeline, frame: pd.DataFrame) -> bytes:
    from skl2onnx import to_onnx

    X = frame[FEATURES].head(1).copy()
    X["plan type"] = X["plan type"].fillna("nan").astype(str)
    return to_onnx(pipeline, X).SerializeToString()


def mlflow_onnx_folder(pipeline: Pipeline, frame: pd.DataFrame, dest: Path) -> Path:
    """An MLflow model folder with the onnx flavour and a column signature, saved by MLflow itself."""
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    shutil.rmtree(dest, ignore_errors=True)
    X = frame[FEATURES].copy()
    X["plan type"] = X["plan type"].fillna("nan").astype(str)
    X["mean radius (mm)"] = X["mean radius (mm)"].astype("float64")
    model = onnx.ModelProto.FromString(onnx_bytes(pipeline, frame))
    mlflow.onnx.save_model(model, dest, signature=infer_signature(X, frame[TARGET]))
    return dest


def mlflow_pickle_folder(pipeline: Pipeline, dest: Path) -> Path:
    import mlflow.sklearn

    shutil.rmtree(dest, ignore_errors=True)
    mlflow.sklearn.save_model(pipeline, dest, serialization_format="cloudpickle")
    return dest


def zipped(folder: Path, top: str = "model") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}/{path.relative_to(folder)}")
    return buffer.getvalue()


def tarred(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.add(path, str(path.relative_to(folder)))
    return buffer.getvalue()
