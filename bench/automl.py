"""Quality and time benchmark of the studio's Automated ML against FLAML and two simple baselines.

For every data set of ``automl_public_suite`` (fixed 75/25 split; the test part is only used to
score the finished models) and every system:

* ``studio``  - the product path, as a user runs it: the training part becomes a data version,
                and an Automated ML run is submitted through the services to a real 2-node
                compute cluster (Celery workers started by the local agent, embedded broker,
                SQLite); trials are jobs, the final job ensembles and packages the model (skops,
                signature, ONNX attempt, drift reference). Its wall time is submit -> the run
                completed with its final model ready.
* ``flaml``   - FLAML AutoML, roc_auc / roc_auc_ovr, the same budget, n_jobs=2.
* ``logreg``  - impute + scale + one-hot + LogisticRegression.
* ``hgb``     - default HistGradientBoostingClassifier with native categorical support.

Prints one table per data set (test ROC AUC weighted one-vs-rest, balanced accuracy, log loss,
wall time), every system's mean rank by AUC, the studio's time from submit to a ready model on
every data set, and a final line::

    BENCH automl mean_rank_studio=<a> mean_rank_flaml=<b> worst_gap_vs_best_baseline=<c>
        worst_ready_over_budget_s=<d> budget_held=yes|no onnx_coverage=<e> goals=met|missed

Goals: the studio's mean rank is lower than FLAML's; on no data set is its AUC more than 0.005
below the better simple baseline; on every data set the run is ready within budget + 5 s
(``budget_held``). ``onnx_coverage`` is the share of the final models that got a verified ONNX
twin (from the final job's packaging summary; reported, the issue's goal is >= 90 %). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/automl.py [--datasets penguins,titanic] [--budget 60]
        [--systems studio,flaml,logreg,hgb] [--seed 0]

``--task regression`` runs the same product path with ``"task": "regression"`` (primary metric
normalized_rmse) on every data set of ``regression_public_suite`` against FLAML (rmse), ``ridge``
(impute + one-hot + scale + RidgeCV) and ``hgb`` (HistGradientBoostingRegressor, native
categoricals); it ranks by test RMSE and ends with::

    BENCH automl_regression mean_rank_studio=<a> mean_rank_flaml=<b> worst_r2_gap_pct=<c>
        budget_held=yes|no onnx_coverage=<d> goals=met|missed

``worst_r2_gap_pct`` is the largest 100 x (R2 of the better of ridge/hgb - the studio's R2) over
the data sets (R2 points in percent; negative when the studio is ahead everywhere). Goals: mean
rank ahead of FLAML's, gap <= 1 %, budget held.

``--task forecasting`` runs every series of ``forecast_public_suite`` (the history is everything
but the last ``horizon`` points): ``studio`` - the product path, the history as a data version
("Date", "Value") and an Automated ML run with task "forecasting" ({time_column, horizon,
season_length, timeout_s = the budget, 30 s by default}), then the run's packaged model forecasts
from the end of the history; ``ets`` - statsmodels' automatic ETS (ETSModel of lowest AIC over the
same configurations, on the whole history); ``snaive`` - seasonal naive; ``engine`` (on request) -
the studio's engine called directly. It ranks by test MASE per series and ends with::

    BENCH automl_forecasting mean_rank_studio=<a> mean_rank_ets=<b> mean_rank_snaive=<c>
        worst_vs_snaive_pct=<d> series=<n> goals=met|missed

Goals: the studio's mean rank below both, and on no series a MASE more than 10 % above seasonal
naive's (``worst_vs_snaive_pct``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("PYTHONWARNINGS", "ignore")  # FLAML's libraries warn thousands of times
warnings.simplefilter("ignore")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from automl_public_suite import DATASETS, train_test  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score  # noqa: E402

SYSTEMS = ("studio", "flaml", "logreg", "hgb")
BASELINES = ("logreg", "hgb")
MAX_GAP = 0.005
BUDGET_SLACK_S = 5.0  # submit -> final model ready within budget + 5 s


def fit_flaml(X, y, budget: float, seed: int, verbose: bool):
    from flaml import AutoML

    automl = AutoML()
    metric = "roc_auc" if y.nunique() == 2 else "roc_auc_ovr"
    automl.fit(X, y, task="classification", time_budget=budget, metric=metric, seed=seed, n_jobs=2, verbose=0)
    return automl, f"best {automl.best_estimator}", {}


def fit_logreg(X, y, budget: float, seed: int, verbose: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in X.columns if c not in cats]
    features = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), nums),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                cats,
            ),
        ]
    )
    model = Pipeline([("features", features), ("model", LogisticRegression(max_iter=2000))])
    return model.fit(X, y), "", {}


def fit_hgb(X, y, budget: float, seed: int, verbose: bool):
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    return model.fit(X, y), "", {}


class _Studio:
    """A throwaway studio (data directory, database, a warm 2-node cluster) for the ``studio`` system."""

    instance = None

    def __init__(self, data_dir: Path | None = None, with_cluster: bool = True):
        import tempfile
        import threading

        data_dir = data_dir or Path(tempfile.mkdtemp(prefix="studio-bench-automl-"))
        data_dir.mkdir(parents=True, exist_ok=True)
        os.environ.update({"STUDIO_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "studio.settings"})
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        from compute.agent import LocalAgent
        from compute.models import Node, NodeStatus, TargetKind
        from compute.services import target_create
        from workspaces.services import workspace_create

        self.user = get_user_model().objects.create_user("bench")
        self.workspace = workspace_create(actor=self.user, name="bench")
        self.data_dir = data_dir
        self.cluster = self.agent = None
        if not with_cluster:
            return
        self.cluster = target_create(
            actor=self.user,
            workspace=self.workspace,
            kind=TargetKind.CLUSTER,
            name="cpu",
            size="medium",
            min_nodes=2,
            max_nodes=2,
        ).target
        self.agent = LocalAgent(log_dir=str(data_dir))
        self.stop = threading.Event()

        def loop():
            from django.db import close_old_connections

            while not self.stop.wait(0.1):
                close_old_connections()
                self.agent.tick()

        threading.Thread(target=loop, daemon=True).start()
        import atexit

        atexit.register(self.close)
        deadline = time.monotonic() + 120
        while Node.objects.filter(target=self.cluster, status=NodeStatus.IDLE).count() < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the bench cluster's nodes did not start")
            time.sleep(0.2)

    def close(self):
        """Stop the cluster's node processes (before serving is measured, and at exit)."""
        if self.agent is not None:
            self.stop.set()
            self.agent.stop_all(kill=True)

    @classmethod
    def get(cls):
        if cls.instance is None:
            cls.instance = cls()
        return cls.instance

    def data_version(self, X, y, name: str, target_type: str = "categorical"):
        """The training part as a data version, through the studio's own ingest engine."""
        from data.services import data_version_from_file

        frame = X.copy()
        frame["target"] = y.to_numpy()
        source = self.data_dir / f"{name}.parquet"
        frame.to_parquet(source, index=False)
        # A label stays text ("yes"/"no" would be inferred boolean), as a user sets it on the Schema tab;
        # a regression target is numeric (a price in whole dollars would otherwise be an integer column).
        return data_version_from_file(
            actor=self.user, workspace=self.workspace, path=source, name=name, column_types={"target": target_type}
        )


def studio_automl(
    studio: _Studio, X, y, *, budget: float, seed: int, register_as: str = "", task: str = "classification"
) -> dict:
    """One Automated ML run through the services on the studio's cluster, waited for: the run,
    its final job, the packaged model and the figures (``ready_s``: submit -> the run completed
    with its final model ready)."""
    from compute.jobs.models import Artifact, Job, JobStatus
    from compute.jobs.recovery import job_artifact_dir
    from modelformat.modelio import load_model
    from training.automl_services import first_trial_seconds
    from training.models import TrainingJobKind  # Django models: only after _Studio's django.setup()

    regression = task == "regression"
    version = studio.data_version(
        X, y, f"bench-{time.monotonic_ns()}", target_type="numeric" if regression else "categorical"
    )
    settings = {
        "primary_metric": "normalized_rmse" if regression else "auc_weighted",
        "max_trials": 10_000,
        "max_concurrent_trials": 2,
        "timeout_s": budget,
        "trial_timeout_s": max(budget / 3, 10.0),
    }
    submitted = time.monotonic()
    run = _automl_submit(
        studio, version, settings=settings, seed=seed, register_as=register_as, task=task if regression else None
    )
    while not Job.objects.filter(pk=run.pk, status__in=JobStatus.finished()).exists():
        time.sleep(0.05)
    ready_s = time.monotonic() - submitted
    run.refresh_from_db()
    if run.status != JobStatus.COMPLETED:
        raise RuntimeError(f"the run ended {run.status}: {run.status_reason} {run.error}")
    final = Job.objects.get(parent=run, kind=TrainingJobKind.AUTOML_FINAL)
    artifact = Artifact.objects.get(job=final, name="model.skops")
    model = load_model(job_artifact_dir(final) / artifact.name, artifact.sha256)
    trials = Job.objects.filter(parent=run, kind=TrainingJobKind.AUTOML_TRIAL)
    report_path = job_artifact_dir(final) / "onnx_report.json"
    onnx_report = json.loads(report_path.read_text()) if report_path.exists() else {"reason": "no onnx_report.json"}
    final_s = (final.finished_at - final.created_at).total_seconds()
    note = (
        f"{trials.count()} trials ({trials.filter(status=JobStatus.COMPLETED).count()} ok) as jobs on 2 nodes, "
        f"{final.result.get('final_kind')} ({len(final.result.get('members') or [])} members), "
        f"first trial {first_trial_seconds(run):.1f}s after submit; final job {final_s:.1f}s "
        f"(packaging {final.result.get('packaging_seconds') or float('nan'):.1f}s, "
        f"ONNX {onnx_report.get('seconds') or 0:.1f}s: "
        + ("verified" if final.result.get("onnx") else f"none - {str(onnx_report.get('reason'))[:160]}")
        + ")"
    )
    facts = {
        "ready_s": round(ready_s, 2),
        "final_job_s": round(final_s, 2),
        "onnx": bool(final.result.get("onnx")),
        "onnx_reason": onnx_report.get("reason"),
        "onnx_seconds": onnx_report.get("seconds"),
        "model_bytes": artifact.size,
    }
    return {"run": run, "final": final, "model": model, "note": note, "facts": facts}


def _automl_submit(studio: _Studio, version, *, settings: dict, seed: int, register_as: str, task: str | None):
    """``automl_submit`` as a user's form calls it; with a task, the run's spec carries ``"task"`` (the
    contract) - through ``automl_submit`` when it takes one, else the same spec through ``job_submit``."""
    import inspect

    from compute.jobs.services import job_submit
    from training.automl_services import automl_submit
    from training.models import TrainingJobKind

    common = {
        "actor": studio.user,
        "workspace": studio.workspace,
        "target": studio.cluster,
    }
    if task is None or "task" in inspect.signature(automl_submit).parameters:
        extra = {"task": task} if task is not None else {}
        return automl_submit(
            **common,
            data_version=version,
            target_column="target",
            test_fraction=0,
            seed=seed,
            register_as=register_as,
            settings=settings,
            **extra,
        )
    return job_submit(
        **common,
        kind=TrainingJobKind.AUTOML,
        spec={
            "task": task,
            "data_version_id": version.pk,
            "target_column": "target",
            "automl": settings,
            "test_fraction": 0,
            "seed": seed,
            "register_as": register_as,
            "validation_data_version_id": None,
        },
        experiment_name="Automated ML",
        time_limit_seconds=int(settings["timeout_s"]) + 600,
    )


def fit_studio(X, y, budget: float, seed: int, verbose: bool):
    out = studio_automl(_Studio.get(), X, y, budget=budget, seed=seed)
    return _RawColumns(out["model"]), out["note"], out["facts"]


class _RawColumns:
    """The registered model scores raw columns as a data version holds them (labels as text)."""

    def __init__(self, model):
        self.model, self.classes_ = model, model.classes_

    def predict_proba(self, X):
        frame = X.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(object)
        return self.model.predict_proba(frame)


FITTERS = {"studio": fit_studio, "flaml": fit_flaml, "logreg": fit_logreg, "hgb": fit_hgb}


# --- regression (--task regression)

REGRESSION_SYSTEMS = ("studio", "flaml", "ridge", "hgb")
REGRESSION_BASELINES = ("ridge", "hgb")
MAX_R2_GAP_PCT = 1.0


def fit_flaml_regression(X, y, budget: float, seed: int, verbose: bool):
    from flaml import AutoML

    automl = AutoML()
    automl.fit(X, y, task="regression", time_budget=budget, metric="rmse", seed=seed, n_jobs=2, verbose=0)
    return automl, f"best {automl.best_estimator}", {}


def fit_ridge(X, y, budget: float, seed: int, verbose: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in X.columns if c not in cats]
    features = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), nums),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                cats,
            ),
        ]
    )
    model = Pipeline([("features", features), ("model", RidgeCV(alphas=np.logspace(-3, 3, 13)))])
    model.fit(X, y)
    return model, f"alpha {model.named_steps['model'].alpha_:g}", {}


def fit_hgb_regression(X, y, budget: float, seed: int, verbose: bool):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
    return model.fit(X, y), "", {}


def fit_studio_regression(X, y, budget: float, seed: int, verbose: bool):
    out = studio_automl(_Studio.get(), X, y, budget=budget, seed=seed, task="regression")
    return _RawColumnsRegressor(out["model"]), out["note"], out["facts"]


class _RawColumnsRegressor:
    """The registered regressor scores raw columns as a data version holds them (categories as text)."""

    def __init__(self, model):
        self.model = model

    def predict(self, X):
        frame = X.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(object)
        return self.model.predict(frame)


REGRESSION_FITTERS = {
    "studio": fit_studio_regression,
    "flaml": fit_flaml_regression,
    "ridge": fit_ridge,
    "hgb": fit_hgb_regression,
}


def regression_scores(model, X_test, y_test) -> dict:
    """Test RMSE, MAE, R2, normalised RMSE (RMSE / the test target's range) and Spearman correlation."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = np.asarray(model.predict(X_test), dtype=float).ravel()
    y = np.asarray(y_test, dtype=float)
    if len(pred) != len(y) or not np.isfinite(pred).all():
        raise RuntimeError(f"{len(pred)} predictions for {len(y)} rows, {int((~np.isfinite(pred)).sum())} not finite")
    rmse = float(np.sqrt(mean_squared_error(y, pred)))
    return {
        "rmse": rmse,
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)),
        "normalized_rmse": rmse / float(y.max() - y.min()),
        "spearman": float(spearmanr(y, pred).statistic),
    }


def main_regression(args, datasets: list[str], systems: list[str]) -> int:
    from regression_public_suite import train_test as regression_train_test

    print(
        f"task=regression budget={args.budget:g}s seed={args.seed} load={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}",
        flush=True,
    )
    results: dict[str, dict[str, dict]] = {}
    for name in datasets:
        X_train, X_test, y_train, y_test = regression_train_test(name)
        print(
            f"\n== {name}: {len(X_train)} train / {len(X_test)} test rows, {X_train.shape[1]} columns, "
            f"target {y_train.min():g}..{y_train.max():g} (median {y_train.median():g})",
            flush=True,
        )
        results[name] = {}
        for system in systems:
            started = time.monotonic()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model, note, facts = REGRESSION_FITTERS[system](
                        X_train, y_train, args.budget, args.seed, args.verbose
                    )
                scores = regression_scores(model, X_test, y_test)
            except Exception as exc:  # noqa: BLE001 - a system that fails loses this data set, the bench goes on
                wall = time.monotonic() - started
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                results[name][system] = {"error": error, "wall_s": round(wall, 1), "rmse": float("inf")}
                print(f"  {system:7s} FAILED after {wall:.1f}s: {error}", flush=True)
                continue
            wall = time.monotonic() - started
            results[name][system] = {**scores, "wall_s": round(wall, 1), "note": note, **facts}
            print(
                f"  {system:7s} rmse={scores['rmse']:.5g} mae={scores['mae']:.5g} r2={scores['r2']:.4f} "
                f"nrmse={scores['normalized_rmse']:.4f} spearman={scores['spearman']:.4f} wall={wall:6.1f}s  {note}",
                flush=True,
            )

    # --- summary
    print("\n" + "=" * 100)
    print("test RMSE / R2; wall seconds (a failed system: inf / -)")
    print(f"{'data set':18s}" + "".join(f"{s:>22s}" for s in systems))

    def cell(row) -> str:
        return "FAILED" if "error" in row else f"{row['rmse']:.5g} / {row['r2']:.4f}"

    rank_rows = []
    for name in datasets:
        row = results[name]
        print(f"{name:18s}" + "".join(cell(row[s]).rjust(22) for s in systems))
        print(f"{'':18s}" + "".join(f"{row[s]['wall_s']:>21.1f}s" for s in systems))
        # Rank 1 = lowest RMSE; ties share the average rank; a failed system ranks last.
        rank_rows.append(pd.Series({s: row[s]["rmse"] for s in systems}).rank(method="average").to_dict())
    mean_rank = {s: float(np.mean([r[s] for r in rank_rows])) for s in systems}
    print("mean rank by RMSE: " + ", ".join(f"{s}={mean_rank[s]:.2f}" for s in systems))

    gaps = {}
    baselines = [b for b in REGRESSION_BASELINES if b in systems]
    if "studio" in systems and baselines:
        for name in datasets:
            best = max(results[name][b].get("r2", float("-inf")) for b in baselines)
            studio_r2 = results[name]["studio"].get("r2", float("-inf"))
            gaps[name] = 100 * (best - studio_r2) if np.isfinite(studio_r2) else float("inf")
        print(
            "studio R2 below the better of ridge/hgb, points in %: "
            + ", ".join(f"{k}={v:+.2f}" for k, v in gaps.items())
        )
    worst_gap = max(gaps.values()) if gaps else float("nan")
    rank_studio = mean_rank.get("studio", float("nan"))
    rank_flaml = mean_rank.get("flaml", float("nan"))
    studio_rows = {name: results[name]["studio"] for name in datasets if "studio" in systems}
    ready = {name: row.get("ready_s", float("inf")) for name, row in studio_rows.items()}
    budget_held = bool(ready) and all(v <= args.budget + BUDGET_SLACK_S for v in ready.values())
    onnx = [bool(row.get("onnx")) for row in studio_rows.values()]
    onnx_coverage = sum(onnx) / len(onnx) if onnx else float("nan")
    if ready:
        print(
            f"studio submit -> final model ready (budget {args.budget:g} s, goal <= budget + {BUDGET_SLACK_S:g} s): "
            + ", ".join(f"{k}={v:.1f}s" for k, v in ready.items())
        )
        print(
            "final model's ONNX twin: "
            + ", ".join(
                f"{k}=" + ("yes" if row.get("onnx") else f"no ({row.get('onnx_reason') or row.get('error')})")
                for k, row in studio_rows.items()
            )
        )
    met = rank_studio < rank_flaml and worst_gap <= MAX_R2_GAP_PCT and budget_held  # nan: missed
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "task": "regression",
                    "budget": args.budget,
                    "results": results,
                    "mean_rank": mean_rank,
                    "r2_gaps_pct": gaps,
                    "ready_s": ready,
                },
                indent=2,
                default=str,
            )
        )
    print(
        f"BENCH automl_regression mean_rank_studio={rank_studio:.2f} mean_rank_flaml={rank_flaml:.2f} "
        f"worst_r2_gap_pct={worst_gap:.2f} budget_held={'yes' if budget_held else 'no'} "
        f"onnx_coverage={onnx_coverage:.2f} goals={'met' if met else 'missed'}"
    )
    return 0


# --- forecasting (--task forecasting)

FORECAST_SYSTEMS = ("studio", "ets", "snaive")  # and "engine": the studio's engine called directly
FORECAST_BUDGET_S = 30.0
MAX_WORSE_THAN_SNAIVE_PCT = 10.0


def forecast_run(studio: _Studio, version, settings: dict, *, seed: int, register_as: str = "") -> tuple:
    """An Automated ML run with task "forecasting" of ``version`` ("Value" the target) submitted as
    a user's form does and waited for: (the completed run, seconds from submit to completion)."""
    from compute.jobs.models import Job, JobStatus
    from compute.jobs.services import job_submit
    from training.models import TrainingJobKind

    submitted = time.monotonic()
    run = job_submit(
        actor=studio.user,
        workspace=studio.workspace,
        target=studio.cluster,
        kind=TrainingJobKind.AUTOML,
        spec={
            "task": "forecasting",
            "data_version_id": version.pk,
            "target_column": "Value",
            "automl": settings,
            "test_fraction": 0,
            "seed": seed,
            "register_as": register_as,
            "validation_data_version_id": None,
        },
        experiment_name="Automated ML",
        time_limit_seconds=int(settings["timeout_s"]) + 600,
    )
    while not Job.objects.filter(pk=run.pk, status__in=JobStatus.finished()).exists():
        time.sleep(0.05)
    ready_s = time.monotonic() - submitted
    run.refresh_from_db()
    if run.status != JobStatus.COMPLETED:
        raise RuntimeError(f"the forecasting run ended {run.status}: {run.status_reason} {run.error}")
    return run, ready_s


def _forecast_studio(name: str, hist_ts, hist_y, spec: dict, budget: float, seed: int) -> tuple[np.ndarray, str, dict]:
    """The product path: the history as a data version ("Date", "Value"), an Automated ML run with
    task "forecasting" on the studio's cluster, then the run's packaged model forecasting from the
    end of the stored history."""
    studio = _Studio.get()
    from compute.jobs.models import Artifact
    from compute.jobs.recovery import job_artifact_dir
    from data.services import data_version_from_file
    from modelformat.modelio import load_model

    frame = pd.DataFrame({"Date": hist_ts, "Value": hist_y})
    source = studio.data_dir / f"forecast-{name}-{time.monotonic_ns()}.parquet"
    frame.to_parquet(source, index=False)
    version = data_version_from_file(
        actor=studio.user,
        workspace=studio.workspace,
        path=source,
        name=f"bench-{name}",
        column_types={"Value": "numeric"},
    )
    settings = {
        "time_column": "Date",
        "horizon": spec["horizon"],
        "season_length": spec["season_length"],
        "timeout_s": budget,
    }
    run, ready_s = forecast_run(studio, version, settings, seed=seed)
    artifact = Artifact.objects.get(job=run, name="model.skops")
    model = load_model(job_artifact_dir(run) / artifact.name, artifact.sha256)
    forecast = model.forecast()
    result = run.result or {}
    members = "+".join(m["algorithm"] for m in result.get("members") or []) or result.get("algorithm")
    note = f"{members}, backtest {result.get('primary_metric')}={result.get('validation_score')}, ready {ready_s:.1f}s"
    return forecast["forecast"].to_numpy(dtype=float), note, {"ready_s": round(ready_s, 2)}


def _forecast_engine(name: str, hist_ts, hist_y, spec: dict, budget: float, seed: int) -> tuple[np.ndarray, str, dict]:
    """The studio's forecasting engine called directly (prepare, search, the refit forecaster)."""
    from training.ml.forecast import ForecastSettings, prepare, search

    settings = ForecastSettings.from_dict(
        {
            "time_column": "Date",
            "target_column": "Value",
            "horizon": spec["horizon"],
            "season_length": spec["season_length"],
            "timeout_s": max(budget, 30),
        }
    )
    started = time.monotonic()
    prepared = prepare(pd.DataFrame({"Date": hist_ts, "Value": hist_y}), settings)
    result = search(prepared, settings, seed=seed, deadline=started + budget)
    forecast = result.forecaster.forecast()
    best = result.best
    label = "+".join(m["algorithm"] for m in best.get("members", [])) or best["algorithm"]
    failed = [r["algorithm"] for r in result.leaderboard if r["status"] != "succeeded"]
    note = f"{label} backtest nrmse={best['score']:.4g}" + (f" (not run: {','.join(failed)})" if failed else "")
    return forecast["forecast"].to_numpy(dtype=float), note, {"ready_s": round(time.monotonic() - started, 2)}


def _forecast_ets(name: str, hist_ts, hist_y, spec: dict, budget: float, seed: int) -> tuple[np.ndarray, str, dict]:
    """statsmodels' automatic ETS: ETSModel of lowest AIC over the engine's configuration set, on the whole history."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    from training.ml.forecast_models import ets_configurations

    best = None
    for config in ets_configurations(hist_y, spec["season_length"]):
        try:
            result = ETSModel(
                hist_y,
                error=config["error"],
                trend=config["trend"],
                damped_trend=config["damped_trend"] if config["trend"] else False,
                seasonal=config["seasonal"],
                seasonal_periods=config["seasonal_periods"],
            ).fit(disp=False)
        except Exception:  # noqa: BLE001, S112 - a configuration that does not fit is not chosen
            continue
        if np.isfinite(result.aic) and (best is None or result.aic < best[0]):
            best = (result.aic, config, result)
    if best is None:
        raise RuntimeError("no ETS configuration fitted")
    config = best[1]
    label = f"ETS({config['error'][0].upper()},{(config['trend'] or 'n')[0].upper()}{'d' if config['damped_trend'] else ''},{(config['seasonal'] or 'n')[0].upper()})"
    return np.asarray(best[2].forecast(spec["horizon"]), dtype=float), label, {}


def _forecast_snaive(name: str, hist_ts, hist_y, spec: dict, budget: float, seed: int) -> tuple[np.ndarray, str, dict]:
    from training.ml.forecast_models import seasonal_naive

    return seasonal_naive(hist_y, spec["season_length"], spec["horizon"]), "", {}


FORECASTERS = {"studio": _forecast_studio, "ets": _forecast_ets, "snaive": _forecast_snaive, "engine": _forecast_engine}


def test_mase(history: np.ndarray, actual: np.ndarray, forecast: np.ndarray, m: int) -> float:
    """MAE on the test window over the in-sample MAE of the seasonal naive forecast on the whole history."""
    m = m if len(history) > m else 1
    scale = float(np.mean(np.abs(history[m:] - history[:-m])))
    return float(np.mean(np.abs(actual - forecast)) / scale)


def main_forecasting(args, datasets: list[str], systems: list[str]) -> int:
    from forecast_public_suite import SERIES
    from forecast_public_suite import train_test as forecast_train_test

    print(
        f"task=forecasting budget={args.budget:g}s per series seed={args.seed} "
        f"load={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}",
        flush=True,
    )
    results: dict[str, dict[str, dict]] = {}
    for name in datasets:
        spec = SERIES[name]
        hist_ts, hist_y, test_ts, test_y = forecast_train_test(name)
        print(
            f"\n== {name}: {len(hist_y)} points ({spec['freq']}, m={spec['season_length']}), horizon {spec['horizon']}",
            flush=True,
        )
        results[name] = {}
        for system in systems:
            started = time.monotonic()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    forecast, note, facts = FORECASTERS[system](name, hist_ts, hist_y, spec, args.budget, args.seed)
                if len(forecast) != len(test_y) or not np.isfinite(forecast).all():
                    raise RuntimeError(f"{len(forecast)} forecasts for {len(test_y)} test points (or not finite)")
            except Exception as exc:  # noqa: BLE001 - a system that fails loses this series, the bench goes on
                wall = time.monotonic() - started
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                results[name][system] = {"error": error, "wall_s": round(wall, 1), "mase": float("inf")}
                print(f"  {system:7s} FAILED after {wall:.1f}s: {error}", flush=True)
                continue
            wall = time.monotonic() - started
            mase = test_mase(hist_y, test_y, forecast, spec["season_length"])
            results[name][system] = {"mase": mase, "wall_s": round(wall, 1), "note": note, **facts}
            print(f"  {system:7s} mase={mase:.4f} wall={wall:6.1f}s  {note}", flush=True)

    print("\n" + "=" * 100)
    print("test MASE (scale: the in-sample seasonal naive MAE of the history); a failed system: inf")
    print(f"{'series':24s}" + "".join(f"{s:>10s}" for s in systems))
    rank_rows = []
    for name in datasets:
        row = results[name]
        print(f"{name:24s}" + "".join(f"{row[s]['mase']:>10.4f}" for s in systems))
        rank_rows.append(pd.Series({s: row[s]["mase"] for s in systems}).rank(method="average").to_dict())
    mean_rank = {s: float(np.mean([r[s] for r in rank_rows])) for s in systems}
    print("mean rank by MASE: " + ", ".join(f"{s}={mean_rank[s]:.2f}" for s in systems))
    # the studio's figure: the product path, or the engine alone when the product path was not run
    studio = "studio" if "studio" in systems else ("engine" if "engine" in systems else None)
    worse = {}
    if studio and "snaive" in systems:
        for name in datasets:
            worse[name] = 100 * (results[name][studio]["mase"] / results[name]["snaive"]["mase"] - 1)
        print(f"{studio} MASE vs seasonal naive, %: " + ", ".join(f"{k}={v:+.1f}" for k, v in worse.items()))
    worst = max(worse.values()) if worse else float("nan")
    rank_studio = mean_rank.get(studio, float("nan")) if studio else float("nan")
    rank_ets, rank_snaive = mean_rank.get("ets", float("nan")), mean_rank.get("snaive", float("nan"))
    met = rank_studio < rank_ets and rank_studio < rank_snaive and worst <= MAX_WORSE_THAN_SNAIVE_PCT
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "task": "forecasting",
                    "budget": args.budget,
                    "results": results,
                    "mean_rank": mean_rank,
                    "studio": studio,
                },
                indent=2,
                default=str,
            )
        )
    if studio == "engine":
        print("(mean_rank_studio is the engine called directly: the product path was not run)")
    print(
        f"BENCH automl_forecasting mean_rank_studio={rank_studio:.2f} mean_rank_ets={rank_ets:.2f} "
        f"mean_rank_snaive={rank_snaive:.2f} worst_vs_snaive_pct={worst:.1f} series={len(datasets)} "
        f"goals={'met' if met else 'missed'}"
    )
    return 0


def test_scores(model, X_test, y_test) -> dict:
    classes = sorted(pd.unique(y_test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = np.asarray(model.predict_proba(X_test), dtype=float)
    labels = [str(c) for c in model.classes_]  # a data version's labels may be text for numeric classes
    order = [labels.index(str(c)) for c in classes]
    proba = proba[:, order]
    proba = proba / proba.sum(axis=1, keepdims=True)
    y = np.asarray(y_test)
    if len(classes) == 2:
        auc = roc_auc_score(y == classes[1], proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="weighted", labels=classes)
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return {
        "auc": float(auc),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1), labels=classes)),
    }


def ranks(values: dict[str, float]) -> dict[str, float]:
    """Rank 1 = highest AUC; ties share the average rank."""
    names = list(values)
    series = pd.Series([values[n] for n in names], index=names)
    return series.rank(ascending=False, method="average").to_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("classification", "regression", "forecasting"), default="classification")
    parser.add_argument("--datasets", help="comma-separated (default: every data set of the task's suite)")
    parser.add_argument("--budget", type=float, help="seconds per data set (60; forecasting: 30 per series)")
    parser.add_argument("--systems", help="comma-separated (default: every system of the task)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every studio trial")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = FORECAST_BUDGET_S if args.task == "forecasting" else 60.0
    if args.task == "regression":
        from regression_public_suite import DATASETS as suite

        fitters = REGRESSION_FITTERS
    elif args.task == "forecasting":
        from forecast_public_suite import SERIES as suite

        fitters = FORECASTERS
    else:
        suite, fitters = DATASETS, FITTERS
    datasets = [d for d in (args.datasets or ",".join(suite)).split(",") if d]
    default_systems = FORECAST_SYSTEMS if args.task == "forecasting" else fitters
    systems = [s for s in (args.systems or ",".join(default_systems)).split(",") if s]
    for name in datasets:
        if name not in suite:
            parser.error(f"unknown data set {name!r}; known: {', '.join(suite)}")
    for name in systems:
        if name not in fitters:
            parser.error(f"unknown system {name!r}; known: {', '.join(fitters)}")
    if args.task == "regression":
        return main_regression(args, datasets, systems)
    if args.task == "forecasting":
        return main_forecasting(args, datasets, systems)

    print(f"budget={args.budget:g}s seed={args.seed} load={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}", flush=True)
    results: dict[str, dict[str, dict]] = {}
    for name in datasets:
        X_train, X_test, y_train, y_test = train_test(name)
        print(f"\n== {name}: {len(X_train)} train / {len(X_test)} test rows, {y_train.nunique()} classes", flush=True)
        results[name] = {}
        for system in systems:
            started = time.monotonic()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model, note, facts = FITTERS[system](X_train, y_train, args.budget, args.seed, args.verbose)
            wall = time.monotonic() - started
            scores = test_scores(model, X_test, y_test)
            results[name][system] = {**scores, "wall_s": round(wall, 1), "note": note, **facts}
            print(
                f"  {system:7s} auc={scores['auc']:.4f} bal_acc={scores['balanced_accuracy']:.4f} "
                f"log_loss={scores['log_loss']:.4f} wall={wall:6.1f}s  {note}",
                flush=True,
            )

    # --- summary
    print("\n" + "=" * 100)
    header = f"{'data set':14s}" + "".join(f"{s:>22s}" for s in systems)
    print("test ROC AUC (weighted OvR) / balanced accuracy / log loss; wall seconds")
    print(header)
    rank_rows = []
    for name in datasets:
        row = results[name]
        cells = "".join(
            f"{row[s]['auc']:.4f}/{row[s]['balanced_accuracy']:.3f}/{row[s]['log_loss']:.3f}".rjust(22) for s in systems
        )
        print(f"{name:14s}{cells}")
        print(f"{'':14s}" + "".join(f"{row[s]['wall_s']:>21.1f}s" for s in systems))
        rank_rows.append(ranks({s: row[s]["auc"] for s in systems}))
    mean_rank = {s: float(np.mean([r[s] for r in rank_rows])) for s in systems}
    print("mean rank by AUC: " + ", ".join(f"{s}={mean_rank[s]:.2f}" for s in systems))

    gaps = {}
    if "studio" in systems and any(b in systems for b in BASELINES):
        for name in datasets:
            best_baseline = max(results[name][b]["auc"] for b in BASELINES if b in systems)
            gaps[name] = best_baseline - results[name]["studio"]["auc"]
        print("studio AUC below the better baseline: " + ", ".join(f"{k}={v:+.4f}" for k, v in gaps.items()))
    worst_gap = max(gaps.values()) if gaps else float("nan")
    rank_studio = mean_rank.get("studio", float("nan"))
    rank_flaml = mean_rank.get("flaml", float("nan"))
    ready = {name: results[name]["studio"]["ready_s"] for name in datasets if "studio" in systems}
    over = {name: seconds - args.budget for name, seconds in ready.items()}
    budget_held = bool(ready) and all(v <= BUDGET_SLACK_S for v in over.values())
    onnx = [results[name]["studio"]["onnx"] for name in datasets if "studio" in systems]
    onnx_coverage = sum(onnx) / len(onnx) if onnx else float("nan")
    if ready:
        print(
            f"studio submit -> final model ready (budget {args.budget:g} s, goal <= budget + {BUDGET_SLACK_S:g} s): "
            + ", ".join(f"{k}={v:.1f}s" for k, v in ready.items())
        )
        print(
            "final model's ONNX twin: "
            + ", ".join(
                f"{k}=" + ("yes" if results[k]["studio"]["onnx"] else f"no ({results[k]['studio']['onnx_reason']})")
                for k in ready
            )
        )
    met = rank_studio < rank_flaml and worst_gap <= MAX_GAP and budget_held  # nan (a system left out): missed
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"budget": args.budget, "results": results, "mean_rank": mean_rank, "gaps": gaps, "ready_s": ready},
                indent=2,
                default=str,
            )
        )
    print(
        f"BENCH automl mean_rank_studio={rank_studio:.2f} mean_rank_flaml={rank_flaml:.2f} "
        f"worst_gap_vs_best_baseline={worst_gap:.4f} "
        f"worst_ready_over_budget_s={max(over.values(), default=float('nan')):.1f} "
        f"budget_held={'yes' if budget_held else 'no'} onnx_coverage={onnx_coverage:.2f} "
        f"goals={'met' if met else 'missed'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
