import json
import time

import numpy as np
import pandas as pd
import pytest
from django.conf import settings as django_settings
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from compute.models import Node, NodeStatus, TargetKind
from compute.services import target_create
from modelformat.drift import reference_profile
from modelformat.modelio import save_model
from modelformat.onnx_export import try_convert
from modelformat.signature import build_signature
from tests.conftest import BackgroundLoop, _database_url
from training.models import ModelVersion, RegisteredModel
from training.registry_services import model_version_dir


def churn_frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype(float),
            "charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    y = np.where((X["tenure"] < 12) & (X["plan"] == "basic") | (rng.random(n) < 0.1), "yes", "no")
    return X, pd.Series(y, name="churn")


def train_pipeline(X, y, max_iter=50):
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["tenure", "charges"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["plan", "region"],
            ),
        ]
    )
    return Pipeline(
        [("features", features), ("model", HistGradientBoostingClassifier(max_iter=max_iter, random_state=0))]
    ).fit(X, y)


_BUILT: dict = {}


def _built(max_iter: int, with_onnx: bool, tmp_dir):
    """Train, save and convert once per test session (the files are copied for each test)."""
    key = (max_iter, with_onnx)
    if key not in _BUILT:
        X, y = churn_frame()
        model = train_pipeline(X, y, max_iter=max_iter)
        types = {"tenure": "numeric", "charges": "numeric", "plan": "categorical", "region": "categorical"}
        signature = build_signature(X, column_types=types, target="churn", classes=sorted(y.unique()))
        path = tmp_dir / f"model-{max_iter}.skops"
        sha = save_model(model, path)
        onnx = try_convert(model, signature, X.head(200)) if with_onnx else (None, {})
        if with_onnx:
            assert onnx[0], onnx[1]
        _BUILT[key] = (path.read_bytes(), sha, onnx, signature, reference_profile(X, signature))
    return _BUILT[key]


def register(workspace, owner, name="churn", max_iter=50, with_onnx=True):
    """A registered model version with the files the studio serves (no training job needed)."""
    import tempfile
    from pathlib import Path

    skops_bytes, sha, (onnx_bytes, report), signature, reference = _built(
        max_iter, with_onnx, Path(tempfile.gettempdir())
    )
    registered, _ = RegisteredModel.objects.get_or_create(workspace=workspace, name=name)
    number = registered.versions.count() + 1
    version = ModelVersion.objects.create(
        model=registered,
        version=number,
        algorithm="hist_gradient_boosting",
        target_column="churn",
        signature=signature,
        classes=signature["classes"],
        metrics={"accuracy": 0.9},
        sha256="pending",
        created_by=owner,
    )
    folder = model_version_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.skops").write_bytes(skops_bytes)
    version.sha256 = sha
    if onnx_bytes:
        (folder / "model.onnx").write_bytes(onnx_bytes)
        version.onnx_sha256 = report["sha256"]
    (folder / "reference_profile.json").write_text(json.dumps(reference))
    version.save()
    return version


@pytest.fixture
def model_version(workspace, owner):
    return register(workspace, owner)


@pytest.fixture
def inference(workspace, owner):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target


@pytest.fixture(autouse=True)
def _fresh_serving_caches():
    from endpoints import routing, serving
    from endpoints.scoring.predictor import invalidate

    serving.configs.clear()
    routing.directory.clear()
    invalidate()
    serving.monitor._data.clear()
    yield
    serving.configs.clear()
    routing.directory.clear()
    routing.pool.close_all()
    serving.monitor._data.clear()


# --- Serving replicas: real processes started by the local agent ----------------------------------
BOOT_SECONDS = 120  # a replica imports the ML stack and warms its model: seconds, on a busy machine far more


@pytest.fixture
def replica_agent(settings, studio_data_dir, transactional_db):
    """The local provisioner in a thread, starting real replica processes on the test database."""
    from compute.agent import LocalAgent

    settings.STUDIO_HEARTBEAT_TIMEOUT = 4
    log_dir = studio_data_dir / "node-logs"
    log_dir.mkdir(exist_ok=True)
    env = {
        "DATABASE_URL": _database_url(),
        "STUDIO_DATA_DIR": str(studio_data_dir),
        "STUDIO_HEARTBEAT_SECONDS": "0.5",
        "STUDIO_HEARTBEAT_TIMEOUT": "4",
        "STUDIO_MONITOR_FLUSH_SECONDS": "0.5",
        "SECRET_KEY": django_settings.SECRET_KEY,
    }
    local = LocalAgent(log_dir=str(log_dir), extra_env=env)
    yield local
    if getattr(local, "loop", None):
        local.loop.stop()
        assert not local.loop.errors, local.loop.errors
    local.stop_all(kill=True)


def start(agent):
    agent.loop = BackgroundLoop(agent.tick, 0.1).start()


def ready_replicas(count, *, exclude=(), timeout=BOOT_SECONDS, studio_data_dir=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = list(
            Node.objects.filter(deployment_id__isnull=False, status__in=[NodeStatus.IDLE, NodeStatus.BUSY])
            .exclude(address="")
            .exclude(pk__in=exclude)
        )
        if len(ready) >= count:
            return ready
        time.sleep(0.2)
    logs = ""
    if studio_data_dir:
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (studio_data_dir / "node-logs").glob("*.log"))
    raise AssertionError(f"{count} replicas not ready in {timeout} s: {list(Node.objects.values())}\n{logs}")
