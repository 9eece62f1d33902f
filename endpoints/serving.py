"""The scoring hot path: key check, throttle, routing, validation, prediction, monitoring.

No database query per request: each process keeps its endpoints' configuration (keys, traffic
split, deployments and their compiled signatures) and checks the endpoint's config version at
most once a second; models load once per process per version (scoring.predictor's cache).
Monitoring goes to an in-memory buffer that a background thread flushes in batches — never one
row per request.
"""

import atexit
import bisect
import importlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

import pandas as pd
from django.conf import settings

from endpoints.scoring.predictor import Predictor, get_predictor
from modelformat.drift import concat_columns, count_batch, count_predictions, count_refusal, merge_counts
from modelformat.signature import FORECASTING, REGRESSION, PayloadError, Signature
from modelformat.trusted_types import TRUSTED_TYPES
from studio.api.errors import error_body
from studio.db import close_broken_connections
from studio.json_limits import JsonLimitError, json_loads_checked
from studio.ratelimit import rate_limit
from training.registry_services import model_version_dir

from .models import Endpoint, MonitoringBucket

log = logging.getLogger("studio.serving")

CONFIG_TTL_SECONDS = 1.0
# Upper edges (ms) of the latency buckets, 10 per decade from 50 µs to 60 s, so a reported
# percentile is at most 1.34× the true latency. They include every edge of the first, coarse
# layout, so its stored histograms re-bin exactly (migration endpoints 0003). Recording a request
# is one bisect on this tuple.
_PER_DECADE = ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "7.5")
LATENCY_BUCKETS_MS = (0.05, 0.06, 0.075) + tuple(
    edge for exponent in range(-1, 5) for m in _PER_DECADE if (edge := float(f"{m}e{exponent}")) <= 60_000
)
QUALITY_ROWS_PER_MINUTE = 5_000  # inputs sampled for drift and quality per deployment-minute


# --- Configuration, cached per process ---------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentRuntime:
    id: int
    name: str
    model_version_id: int
    model_label: str
    sha256: str
    onnx_sha256: str
    folder: str
    signature: Signature
    reference: dict | None
    onnx_only: bool = False  # registered from an ONNX file: no skops model to fall back on

    def predictor(self) -> Predictor:
        onnx = os.path.join(self.folder, "model.onnx") if self.onnx_sha256 else None
        return get_predictor(
            self.model_version_id,
            model_path=None if self.onnx_only else os.path.join(self.folder, "model.skops"),
            model_sha256=self.sha256,
            signature=self.signature,
            onnx_path=onnx,
            onnx_sha256=self.onnx_sha256 or None,
        )


@dataclass(frozen=True)
class EndpointRuntime:
    id: int
    name: str
    config_version: int
    key1: tuple[str, str]
    key2: tuple[str, str]
    requests_per_minute: int
    deployments: dict[str, DeploymentRuntime]
    cumulative: tuple[int, ...]  # traffic split as cumulative percents, for bisect
    routes: tuple[str, ...]
    mirror: tuple[str, int] | None

    def route(self, pinned: str | None) -> DeploymentRuntime | None:
        if pinned:
            return self.deployments.get(pinned)
        if not self.routes:
            return None
        return self.deployments[self.routes[bisect.bisect_right(self.cumulative, random.random() * 100)]]


def _load_runtime(name: str) -> EndpointRuntime | None:
    endpoint = Endpoint.objects.filter(name=name).first()
    if endpoint is None:
        return None
    deployments = {}
    for deployment in endpoint.deployments.select_related("model_version", "model_version__model"):
        version = deployment.model_version
        folder = model_version_dir(version)
        reference = None
        profile_path = folder / "reference_profile.json"
        if profile_path.exists():
            reference = json.loads(profile_path.read_text())
        deployments[deployment.name] = DeploymentRuntime(
            id=deployment.pk,
            name=deployment.name,
            model_version_id=version.pk,
            model_label=str(version),
            sha256=version.sha256,
            onnx_sha256=version.onnx_sha256,
            folder=str(folder),
            signature=Signature(version.signature),
            reference=reference,
            onnx_only=version.onnx_only,
        )
    routes, cumulative, total = [], [], 0
    for deployment_name, share in sorted(endpoint.traffic.items()):
        if share > 0 and deployment_name in deployments:
            total += share
            routes.append(deployment_name)
            cumulative.append(total)
    mirror = None
    if endpoint.mirror_deployment in deployments and endpoint.mirror_percent:
        mirror = (endpoint.mirror_deployment, endpoint.mirror_percent)
    return EndpointRuntime(
        id=endpoint.pk,
        name=endpoint.name,
        config_version=endpoint.config_version,
        key1=(endpoint.key1_prefix, endpoint.key1_hash),
        key2=(endpoint.key2_prefix, endpoint.key2_hash),
        requests_per_minute=endpoint.requests_per_minute,
        deployments=deployments,
        cumulative=tuple(cumulative),
        routes=tuple(routes),
        mirror=mirror,
    )


class ConfigCache:
    """Endpoint runtimes by name, re-checked against the database at most once a second."""

    def __init__(self, ttl: float = CONFIG_TTL_SECONDS):
        self.ttl = ttl
        self._entries: dict[str, tuple[EndpointRuntime | None, float]] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, name: str) -> EndpointRuntime | None:
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None and now - entry[1] < self.ttl:
            return entry[0]
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and time.monotonic() - entry[1] < self.ttl:
                return entry[0]
            runtime = entry[0] if entry else None
            # the id too: an endpoint deleted and made again under its name starts its versions anew
            current = Endpoint.objects.filter(name=name).values_list("pk", "config_version").first()
            if current is None:
                runtime = None
            elif runtime is None or (runtime.id, runtime.config_version) != current:
                runtime = _load_runtime(name)
                self.loads += 1
            self._entries[name] = (runtime, time.monotonic())
            return runtime

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


configs = ConfigCache()


# --- Throttling, per key, exact across processes -------------------------------------------------
def throttle(prefix: str, limit: int) -> int | None:
    """None if this request of key `prefix` is within its per-minute limit; else the Retry-After seconds."""
    return rate_limit(f"score:{prefix}", limit=limit, window_seconds=60)


# --- Monitoring buffer ----------------------------------------------------------------------------
@dataclass(kw_only=True)
class RequestCounts:
    """The additive counters of monitoring, named as MonitoringBucket's columns: the buffer counts
    them, the flush writes them, the monitoring selector adds buckets of them up."""

    requests: int = 0
    errors_4xx: int = 0  # refused requests (429s are counted as throttled instead)
    errors_5xx: int = 0
    throttled: int = 0
    rows: int = 0
    latency_ms_sum: float = 0.0

    def add(self, other) -> None:
        """Add another set of counts (or a MonitoringBucket) to these."""
        for counter in fields(RequestCounts):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def counter_values(self) -> dict:
        return {counter.name: getattr(self, counter.name) for counter in fields(RequestCounts)}


@dataclass(kw_only=True)
class _Counts(RequestCounts):
    histogram: list = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    predicted: Counter = field(default_factory=Counter)
    quality: dict = field(default_factory=dict)
    quality_rows: int = 0
    # Sampled inputs and numeric outputs, counted into `quality` at the flush, many requests at once:
    # binning a 79-column row on the request thread cost more than scoring it.
    samples: list = field(default_factory=list)
    sampled_outputs: list = field(default_factory=list)
    deployment: DeploymentRuntime | None = None


class MonitorBuffer:
    """Counts per (endpoint, deployment, minute) in memory; `flush` writes them as rows."""

    def __init__(self):
        self._lock = threading.Lock()
        self._data: dict[tuple, _Counts] = {}
        self._thread: threading.Thread | None = None
        self.source = f"{settings.STUDIO_HOSTNAME}:{os.getpid()}"[:100]

    def record(
        self,
        *,
        endpoint_id: int,
        deployment: DeploymentRuntime | None,
        status: int,
        latency_ms: float,
        rows: int = 0,
        predictions=None,
        batch=None,
        refusal: PayloadError | None = None,
        mirrored: bool = False,
    ) -> None:
        minute = int(time.time() // 60)
        key = (
            endpoint_id,
            deployment.id if deployment else None,
            deployment.name if deployment else "",
            minute,
            mirrored,
        )
        with self._lock:
            counts = self._data.get(key)
            if counts is None:
                counts = self._data[key] = _Counts()
            counts.requests += 1
            if status == 429:
                counts.throttled += 1
            elif 400 <= status < 500:
                counts.errors_4xx += 1
            elif status >= 500:
                counts.errors_5xx += 1
            counts.rows += rows
            counts.latency_ms_sum += latency_ms
            counts.histogram[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
            # numbers (a regression's predictions, forecasts) go to the prediction drift bins; classes are counted
            numbers = deployment is not None and deployment.signature.task in (REGRESSION, FORECASTING)
            if predictions and not numbers:
                counts.predicted.update(map(str, predictions))
            reference = deployment.reference if deployment else None
            if reference is not None and refusal is not None:
                counts.quality = merge_counts(counts.quality, count_refusal(refusal))
            if (
                (batch is not None or (numbers and predictions))  # a forecast from the stored history has no inputs
                and reference is not None
                and counts.quality_rows < QUALITY_ROWS_PER_MINUTE
            ):
                counts.deployment = deployment
                counts.quality_rows += rows
                if batch is not None:
                    counts.samples.append(batch.columns)
                if numbers and predictions and reference.get("prediction"):
                    counts.sampled_outputs.append(predictions)
        self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        if settings.STUDIO_MONITOR_FLUSH_SECONDS <= 0:
            return  # flushed by hand (tests)
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="monitor-flush", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while settings.STUDIO_MONITOR_FLUSH_SECONDS > 0:
            time.sleep(settings.STUDIO_MONITOR_FLUSH_SECONDS)
            try:
                close_broken_connections()
                self.flush()
            except Exception:  # noqa: BLE001 - monitoring must never take serving down
                log.exception("monitoring flush failed")

    def flush(self) -> int:
        with self._lock:
            data, self._data = self._data, {}
        if not data:
            return 0
        for c in data.values():
            try:
                _count_samples(c)
            except Exception:  # noqa: BLE001 - a sample that will not bin costs its drift counts, not the requests'
                log.exception("drift counting failed")
        rows = [
            MonitoringBucket(
                endpoint_id=endpoint_id,
                deployment_id=deployment_id,
                deployment_name=name,
                minute=datetime.fromtimestamp(minute * 60, tz=UTC),
                source=self.source,
                mirrored=mirrored,
                **c.counter_values(),
                latency_histogram=c.histogram,
                predicted=dict(c.predicted),
                quality=c.quality,
            )
            for (endpoint_id, deployment_id, name, minute, mirrored), c in data.items()
        ]
        existing = set(Endpoint.objects.filter(pk__in={r.endpoint_id for r in rows}).values_list("pk", flat=True))
        MonitoringBucket.objects.bulk_create([r for r in rows if r.endpoint_id in existing])
        return len(rows)


def _count_samples(counts: _Counts) -> None:
    """Bin a bucket's sampled inputs and outputs into its drift counts, all requests at once."""
    deployment, reference = counts.deployment, counts.deployment and counts.deployment.reference
    if reference is None:
        return
    more = {}
    if counts.samples:
        more = count_batch(reference, concat_columns(counts.samples), deployment.signature)
    if counts.sampled_outputs:
        outputs = [value for predictions in counts.sampled_outputs for value in predictions]
        more.update(count_predictions(reference["prediction"], outputs))
    counts.quality = merge_counts(counts.quality, more)
    counts.samples, counts.sampled_outputs = [], []


monitor = MonitorBuffer()
atexit.register(lambda: monitor.flush() if monitor._data else None)


# --- The scoring sequence ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreOutcome:
    """What one scoring request came to: the status and JSON body to answer, and the deployment
    that took it (None when none could be routed)."""

    status: int
    body: dict
    deployment: DeploymentRuntime | None = None


def score_request(
    runtime: EndpointRuntime,
    *,
    body: bytes | str,
    started: float,
    pinned: str | None = None,
    pinned_field: str = "X-Studio-Deployment",
    record: bool = True,
    mirrored: bool = False,
    model_slot: AbstractContextManager | None = None,
) -> ScoreOutcome:
    """Route, validate, predict and record one request: the scoring URL and the Test tab both score
    through here. `pinned` names a deployment (given by `pinned_field`); `record=False` (the Test
    tab) leaves monitoring alone; `mirrored` records a mirrored copy apart. The model runs inside
    `model_slot` (a replica's bound on models running at once); parsing and validating the request
    come before it. An error inside the model is recorded as a 500 and raised."""

    def _record(status: int, deployment: DeploymentRuntime, **details) -> None:
        if record:
            latency_ms = (time.perf_counter() - started) * 1000
            monitor.record(
                mirrored=mirrored,
                endpoint_id=runtime.id,
                deployment=deployment,
                status=status,
                latency_ms=latency_ms,
                **details,
            )

    deployment = runtime.route(pinned)
    if deployment is None:
        if pinned:
            message = f"{runtime.name} has no deployment {pinned!r}."
            return ScoreOutcome(400, error_body("unknown_deployment", message, {pinned_field: [message]}))
        return ScoreOutcome(503, error_body("no_deployment", f"{runtime.name} has no deployment taking traffic yet."))
    try:
        payload = json_loads_checked(body or b"null", max_depth=settings.STUDIO_JSON_MAX_DEPTH)
    except JsonLimitError as exc:  # too deep or not Unicode: refused before parsing
        _record(400, deployment)  # the caller's error
        return ScoreOutcome(400, error_body(exc.code, exc.message), deployment)
    except ValueError as exc:
        _record(400, deployment)
        return ScoreOutcome(400, error_body("parse_error", f"The body is not valid JSON: {exc}"), deployment)
    try:
        predictor = deployment.predictor()
        if predictor.forecasting:
            max_rows = settings.STUDIO_SCORING_MAX_ROWS
            request = predictor.signature.validate_forecast(payload, max_rows=max_rows)
            with model_slot or nullcontext():
                # a history is refitted in this process: bounded in series, answer rows and time
                # (from when the model is free: the wait for it is not the refits')
                deadline = time.monotonic() + settings.STUDIO_FORECAST_REQUEST_SECONDS
                result = predictor.forecast(request, max_rows=max_rows, deadline=deadline)
            # every forecast value is a prediction; the known-ahead values are the monitored inputs
            predictions = [row["forecast"] for row in result["forecasts"] if row["forecast"] is not None]
            batch, rows = request.future_batch, len(result["forecasts"])
        else:
            batch = predictor.signature.validate_columns(payload, max_rows=settings.STUDIO_SCORING_MAX_ROWS)
            with model_slot or nullcontext():
                result = predictor.predict_batch(batch)
            predictions, rows = result["predictions"], batch.n_rows
    except PayloadError as exc:
        # a timeout is the server's (503), not a refusal of the caller's data
        _record(exc.status, deployment, refusal=exc if exc.status < 500 else None)
        fields_at_fault = {exc.field: [str(exc)]} if exc.field else None
        return ScoreOutcome(exc.status, error_body(exc.code, str(exc), fields_at_fault, row=exc.row), deployment)
    except Exception:
        _record(500, deployment)
        raise
    _record(200, deployment, rows=rows, predictions=predictions, batch=batch)
    answer = {**result, "deployment": deployment.name, "model": deployment.model_label}
    return ScoreOutcome(200, answer, deployment)


# --- Warm-up at deploy time -------------------------------------------------------------------------
def sample_row(signature: dict, reference: dict | None) -> dict:
    """A plausible input row: training medians and most common labels (for the Test tab too)."""
    columns = (reference or {}).get("columns", {})
    row = {}
    for column in signature.get("columns", []):
        name, kind = column["name"], column["type"]
        profile = columns.get(name, {})
        if profile.get("kind") == "numeric" and profile.get("edges"):
            edges = profile["edges"]
            value = edges[len(edges) // 2]
            if kind == "datetime":
                value = datetime.fromtimestamp(value, tz=UTC).isoformat()
            elif kind in ("integer",):
                value = round(value)
            elif kind == "boolean":
                value = bool(round(value))
            row[name] = value
        elif profile.get("categories"):
            row[name] = profile["categories"][0]
        elif column.get("categories"):
            row[name] = column["categories"][0]
        elif kind in ("numeric", "integer") or column.get("dtype", "").startswith(("float", "int")):
            row[name] = 0  # a number, whatever its type says: an identifier made of digits is cast to numbers
        elif kind == "boolean":
            row[name] = False
        elif kind == "datetime":
            row[name] = "2024-01-01T00:00:00"
        elif kind == "identifier":
            row[name] = "id-1"  # (an id's values are not profiled: every one is different)
        else:
            row[name] = "text"
    return row


def sample_forecast_request(signature: dict) -> dict:
    """A valid forecasting request from the end of the stored history: ``{}``, or the first known
    series (``{"series": [key]}``) for a model of several, with — for a model that needs known-ahead
    values — a neutral value per column for each forecast step (for the Test tab and the deploy
    warm-up)."""
    info = signature.get("forecast") or {}
    key = (info.get("series") or [{}])[0]
    if not info.get("known_ahead"):
        # the first series only: ``{}`` forecasts every stored series, over a request's rows for a model of many
        return {"series": [key]} if info.get("series_columns") and key else {}
    columns = {c["name"]: c for c in signature.get("columns", [])}
    last = (info.get("last_times") or [None])[0]
    if last is None:
        return {}
    steps = info["gap"] + info["horizon"]
    times = pd.date_range(pd.Timestamp(last), periods=steps + 1, freq=info["frequency"])[1 + info["gap"] :]
    neutral = {name: _neutral_value(columns.get(name, {})) for name in info["known_ahead"]}
    future = [{**key, info["time_column"]: t.isoformat(), **neutral} for t in times]
    return {"series": [key], "future": future}


def _neutral_value(column: dict):
    if column.get("categories"):
        return column["categories"][0]
    if column.get("type") == "boolean":
        return False
    if column.get("type") == "datetime":
        return "2024-01-01T00:00:00"
    return 0


def preload() -> None:
    """Import what loading any allowed model and scoring it takes: skops, the modules of the model
    format's trusted types, and the ONNX runtime (a standby replica's work before its node)."""
    for module in sorted({name.rpartition(".")[0] for name in TRUSTED_TYPES} | {"skops.io", "onnx", "onnxruntime"}):
        try:
            importlib.import_module(module)
        except ImportError:  # a nested name (module.Class.Inner), or an optional library not installed
            continue


def warm_up(model_version) -> tuple[str, str | None]:
    """Load a model version in this process and score one sample row: (backend, error or None)."""
    folder = model_version_dir(model_version)
    try:
        reference = None
        if (folder / "reference_profile.json").exists():
            reference = json.loads((folder / "reference_profile.json").read_text())
        signature = Signature(model_version.signature)
        predictor = get_predictor(
            model_version.pk,
            model_path=None if model_version.onnx_only else folder / "model.skops",
            model_sha256=model_version.sha256,
            signature=signature,
            onnx_path=(folder / "model.onnx") if model_version.onnx_sha256 else None,
            onnx_sha256=model_version.onnx_sha256 or None,
        )
        if predictor.forecasting:
            predictor.forecast(signature.validate_forecast(sample_forecast_request(model_version.signature)))
        else:
            predictor.score([sample_row(model_version.signature, reference)])
        return predictor.backend, None
    except Exception as exc:  # noqa: BLE001 - any failure means the version must not take traffic
        return "", f"{type(exc).__name__}: {exc}"
