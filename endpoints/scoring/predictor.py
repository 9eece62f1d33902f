"""Score with one model version: the verified ONNX twin when there is one, else the skops pipeline.

A ``Predictor`` is built once per process per model version and kept in a ``PredictorCache`` keyed
by (model version id, model SHA-256), so that a request never loads a file. Everything that can be
worked out once is (the compiled signature, ONNX input names and kinds, the output name, JSON class
labels). The ONNX session runs on one thread, sequentially: a web server has one process per core.

Output of ``predict`` / ``predict_batch`` / ``score`` (JSON)::

    {"predictions": ["yes", "no"],
     "probabilities": [{"no": 0.12, "yes": 0.88}, {"no": 0.7, "yes": 0.3}]}

A regression (the signature's ``"task": "regression"``) answers numbers, no probabilities::

    {"predictions": [231500.0, 187250.5]}

A forecasting model (``"task": "forecasting"``, served from skops) takes a forecasting request
(``Signature.validate_forecast``) and answers the horizon's forecasts per series::

    {"forecasts": [{"Store ID": "A", "Date": "2024-02-01T00:00:00", "forecast": 13.1,
                    "lower": 9.0, "upper": 17.2}, ...], "horizon": 12, "frequency": "MS", "level": 0.9}

Served, a forecast is bounded before any work: series × horizon within the scoring row limit and
at most ``MAX_FORECAST_SERIES`` series in a history (413), refits within a deadline (503 ``timeout``).

The prediction is the most probable class (for every model: one ``predict_proba`` call gives both,
and the label always agrees with the probabilities shown). Probability keys are the class labels as
strings (JSON object keys); predictions keep the labels' own JSON type. Probabilities are rounded
to ``PROBABILITY_DECIMALS`` decimals.

Model files are read only through ``modelformat.modelio.load_model`` (skops with the reviewed
allow-list, SHA-256 checked). An ONNX file is data too: its SHA-256 is checked before it is parsed,
and a model that refers to external files is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from modelformat.onnx_feed import make_session, onnx_feed, session_io
from modelformat.onnx_members import member_regressors
from modelformat.signature import (
    FORECASTING,
    MAX_FORECAST_SERIES,
    MAX_ROWS,
    REGRESSION,
    ForecastRequest,
    PayloadError,
    Signature,
    ValidatedBatch,
    json_labels,
)

logger = logging.getLogger(__name__)

PROBABILITY_DECIMALS = 6


class PredictorError(Exception):
    """A model version that cannot be served (bad file, classes that do not match the signature)."""


class Predictor:
    """Scores one model version. Build with ``load_predictor`` (files) or directly (objects)."""

    def __init__(
        self,
        *,
        signature: Signature | Mapping,
        model=None,
        onnx_bytes: bytes | None = None,
        model_loader: Callable[[], object] | None = None,
    ):
        self.signature = signature if isinstance(signature, Signature) else Signature(signature)
        self._model = model
        self._model_loader = model_loader
        self._lock = threading.Lock()
        self.session = None
        self.onnx_error: str | None = None
        self.regression = self.signature.task == REGRESSION
        self.forecasting = self.signature.task == FORECASTING
        # a forecasting model's ONNX file holds its boosting members' twins: the engine stays skops
        self._member_twins, self.member_twins_error = None, None
        if self.forecasting and onnx_bytes is not None:
            if model is None and model_loader is None:
                raise PredictorError("a forecasting model is served from its skops file (the ONNX file: its members)")
            self._member_twins, onnx_bytes = onnx_bytes, None
            if model is not None:
                self._model = self._with_twins(model)
        if self.regression or self.forecasting:
            if model is not None and hasattr(model, "classes_"):
                raise PredictorError("the signature is a regression's but the model is a classifier")
            classes = []
        elif model is not None and hasattr(model, "classes_"):
            classes = json_labels(model.classes_)
            if self.signature.classes is not None and classes != self.signature.classes:
                raise PredictorError(
                    f"the model's classes {classes} differ from the signature's {self.signature.classes}"
                )
        elif self.signature.classes is not None:
            classes = list(self.signature.classes)
        elif model is None and model_loader is not None:
            classes = json_labels(self.model.classes_)
        else:
            raise PredictorError("the classes are unknown: give a fitted model or a signature with classes")
        self.classes = classes
        self._keys = [str(c) for c in classes]
        self._class_array = np.array(classes, dtype=object)
        if onnx_bytes is not None:
            self.session = make_session(onnx_bytes)
            self._inputs, self._output = session_io(self.session, self.signature)
            self._output_names = [self._output]
        if self.session is None and model is None and model_loader is None:
            raise PredictorError("a Predictor needs a model, a model loader or ONNX bytes")

    @property
    def backend(self) -> str:
        if self._member_twins is not None:
            return "skops+onnx"  # the engine from skops, its boosting members through ONNX
        return "onnx" if self.session is not None else "skops"

    @property
    def model(self):
        """The scikit-learn model (loaded on first use when the predictor was built from ONNX)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    if self._model_loader is None:
                        raise PredictorError("no skops model to fall back on")
                    self._model = self._with_twins(self._model_loader())
        return self._model

    def _with_twins(self, model):
        """A forecasting model with its members' ONNX twins attached (without them if they fail to load)."""
        if self._member_twins is not None:
            try:
                model.use_regressors(member_regressors(self._member_twins))
            except Exception as exc:  # noqa: BLE001 - the members' own estimators serve all the same
                self._member_twins, self.member_twins_error = None, f"{type(exc).__name__}: {exc}"
                logger.warning("forecasting members' ONNX twins not loaded (%s); serving the estimators", exc)
        return model

    # -- scoring
    def score(self, payload, *, max_rows: int = MAX_ROWS, unknown_columns: str = "ignore") -> dict:
        """Validate a JSON payload and score it (raises ``PayloadError`` for bad input); a
        forecasting model takes a forecasting request."""
        if self.forecasting:
            return self.forecast(self.signature.validate_forecast(payload, max_rows=max_rows), max_rows=max_rows)
        batch = self.signature.validate_columns(payload, max_rows=max_rows, unknown_columns=unknown_columns)
        return self.predict_batch(batch)

    def forecast(self, request: ForecastRequest, *, max_rows: int | None = None, deadline: float | None = None) -> dict:
        """A forecasting model's answer to a checked request; a request the model cannot forecast
        from (too short a history, an unknown origin or series, missing known-ahead values) is a
        ``PayloadError`` naming the field. ``max_rows`` bounds the answer (series × horizon) and
        the series a history may hold; ``deadline`` (``time.monotonic()``) bounds the refits — a
        request past it is a 503 ``timeout``. A batch job passes neither."""
        if not self.forecasting:
            raise PayloadError("This model does not forecast: send rows to score.", code="invalid_payload")
        if max_rows is not None:
            self._check_forecast_size(request, max_rows)
        limits = {} if deadline is None else {"deadline": deadline}
        try:
            columns = self.model.forecast_columns(
                request.history,
                future=request.future,
                origin=request.origin,
                level=request.level,
                series=request.series,
                **limits,
            )
        except TimeoutError as exc:  # the engine's ForecastTimeout
            raise PayloadError(
                f"The forecast did not finish within the request's time. {exc} "
                "A batch forecasting job has no such limit.",
                field=getattr(exc, "field", "history"),
                code="timeout",
            ) from None
        except (ValueError, OverflowError) as exc:  # the engine's errors name the field at fault
            field = getattr(exc, "field", None) or ("history" if request.history is not None else None)
            raise PayloadError(
                f"The model cannot forecast from this request: {exc}" if field is None else str(exc),
                field=field,
                code="invalid_value" if getattr(exc, "field", None) else "invalid_payload",
            ) from None
        return self.format_forecasts(columns, level=request.level)

    def _check_forecast_size(self, request: ForecastRequest, max_rows: int) -> None:
        """Refuse, before any work, a request whose answer (series × horizon rows) is over the
        scoring limit, or a history of more series than a request may refit."""
        info = self.signature.forecast
        columns = list(info["series_columns"])
        if request.history is not None:
            given = _distinct_rows(request.history, columns) if columns else 1
            if given > MAX_FORECAST_SERIES:
                raise PayloadError(
                    f"The history holds {given:,} series; a request forecasts at most {MAX_FORECAST_SERIES:,} "
                    "(each is refitted): split it, or use a batch forecasting job.",
                    field="history",
                    code="too_many_series",
                )
        else:
            given = len(self.model.series)
        n_series = min(given, len({tuple(s.values()) for s in request.series})) if request.series else given
        answer = n_series * int(info["horizon"])
        if answer > max_rows:
            raise PayloadError(
                f"{n_series:,} series × a horizon of {info['horizon']} is {answer:,} forecasts, over the "
                f'{max_rows:,} a request may return: name fewer series ("series": [...]) or use a batch '
                "forecasting job.",
                field="series",
                code="too_many_series",
            )

    def format_forecasts(self, columns: dict[str, np.ndarray], *, level: float) -> dict:
        """The engine's forecast columns as JSON rows: times as ISO 8601 text, bounds that overflowed
        as null (strict JSON has no infinity)."""
        info = self.signature.forecast
        time_column = info["time_column"]
        values = {name: _json_values(name, column, time_column) for name, column in columns.items()}
        names = list(values)
        rows = [dict(zip(names, row, strict=True)) for row in zip(*values.values(), strict=True)]
        return {"forecasts": rows, "horizon": info["horizon"], "frequency": info["frequency"], "level": level}

    def predict(self, frame: pd.DataFrame) -> dict:
        """Score a DataFrame (cast with the signature's rules first)."""
        return self.predict_batch(self.signature.validate_frame(frame))

    def predict_batch(self, batch: ValidatedBatch) -> dict:
        if self.regression:
            return self.format_numbers(self.predict_numbers_batch(batch))
        return self.format(self.predict_proba_batch(batch))

    def predict_numbers_batch(self, batch: ValidatedBatch) -> np.ndarray:
        """A regression's predictions (float64, one per row) for validated columns."""
        return np.asarray(self._run(batch, lambda frame: self.model.predict(frame)), dtype=np.float64).reshape(-1)

    def format_numbers(self, values: np.ndarray) -> dict:
        """Floats; an overflow (an input far outside the training range) is null, as strict JSON wants."""
        return {"predictions": finite_floats(values)}

    def predict_proba_batch(self, batch: ValidatedBatch) -> np.ndarray:
        """Probabilities (rows × classes, in ``self.classes`` order) for validated columns."""
        return self._run(batch, lambda frame: np.asarray(self.model.predict_proba(frame)))

    def _run(self, batch: ValidatedBatch, skops_scores) -> np.ndarray:
        """The ONNX output for the batch, else (no twin, or onnxruntime failed) ``skops_scores``
        of the pipeline on the cast frame."""
        if self.session is not None:
            try:
                return self.session.run(self._output_names, onnx_feed(batch.columns, self._inputs))[0]
            except Exception as exc:  # noqa: BLE001 - an onnxruntime failure falls back to the pipeline
                if self._model is None and self._model_loader is None:
                    raise
                logger.warning("ONNX scoring failed (%s: %s); using the skops model", type(exc).__name__, exc)
                self.onnx_error = f"{type(exc).__name__}: {exc}"
        return skops_scores(batch.to_frame(self.signature))

    def format(self, proba: np.ndarray) -> dict:
        rounded = np.round(proba.astype(np.float64), PROBABILITY_DECIMALS)
        labels = self._class_array[np.asarray(proba).argmax(axis=1)].tolist()
        keys = self._keys
        return {
            "predictions": labels,
            "probabilities": [dict(zip(keys, row, strict=True)) for row in rounded.tolist()],
        }


def _read_checked(path: str | Path, expected_sha256: str) -> bytes:
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if not expected_sha256 or not hmac.compare_digest(actual, expected_sha256.lower()):
        raise PredictorError(f"ONNX file SHA-256 mismatch: expected {expected_sha256}, got {actual}")
    return data


def load_predictor(
    *,
    model_path: str | Path | None,
    model_sha256: str,
    signature: Signature | Mapping,
    onnx_path: str | Path | None = None,
    onnx_sha256: str | None = None,
) -> Predictor:
    """A Predictor for a model version's files (paths computed by the server, never by a client).

    Without a skops file (``model_path`` None: a model registered from an ONNX file) the ONNX model
    is served alone. With a verified ONNX twin, the skops file is loaded only if onnxruntime ever fails (lazily);
    an ONNX file that does not load is logged and the skops pipeline is served instead.
    """

    def load_skops():
        # deferred: skops and scikit-learn (~1.6 s, ~130 MB) only for a model without a working ONNX twin
        from modelformat.modelio import load_model

        return load_model(model_path, model_sha256)

    if model_path is None:  # a model registered from an ONNX file: onnxruntime alone, no fallback
        if onnx_path is None:
            raise PredictorError("a model version needs a skops or an ONNX file")
        return Predictor(signature=signature, onnx_bytes=_read_checked(onnx_path, onnx_sha256 or ""))
    if onnx_path is not None:
        try:
            onnx_bytes = _read_checked(onnx_path, onnx_sha256 or "")
            return Predictor(signature=signature, onnx_bytes=onnx_bytes, model_loader=load_skops)
        except Exception as exc:  # noqa: BLE001 - serve the skops model rather than nothing
            logger.warning("ONNX twin not loaded (%s: %s); serving the skops model", type(exc).__name__, exc)
    return Predictor(signature=signature, model=load_skops())


class PredictorCache:
    """An in-process LRU of Predictors keyed by (model version id, model SHA-256).

    ``get`` loads on a miss (once, even with concurrent requests for the same key); ``invalidate``
    drops one version (every SHA-256 of it) or everything. Counters are for tests and metrics.
    """

    def __init__(self, maxsize: int = 16):
        self.maxsize = maxsize
        self._items: OrderedDict[tuple, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}
        self.hits = 0
        self.loads = 0

    def get(self, version_id, sha256: str, load: Callable[[], Predictor]) -> Predictor:
        key = (version_id, sha256)
        with self._lock:
            predictor = self._items.get(key)
            if predictor is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return predictor
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                predictor = self._items.get(key)
                if predictor is not None:
                    self.hits += 1
                    return predictor
            try:
                predictor = load()
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:  # stored and unlocked at once: a late request finds it, never reloads
                self.loads += 1
                self._items[key] = predictor
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._loading.pop(key, None)
        return predictor

    def invalidate(self, version_id=None) -> int:
        """Forget one model version (or all, with None); returns how many entries were dropped."""
        with self._lock:
            keys = [k for k in self._items if version_id is None or k[0] == version_id]
            for key in keys:
                del self._items[key]
            return len(keys)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, version_id) -> bool:
        return any(k[0] == version_id for k in self._items)


predictor_cache = PredictorCache()


def get_predictor(
    version_id,
    *,
    model_path: str | Path | None,
    model_sha256: str,
    signature: Signature | Mapping,
    onnx_path: str | Path | None = None,
    onnx_sha256: str | None = None,
    cache: PredictorCache | None = None,
) -> Predictor:
    """The process-wide Predictor of a model version, loaded on first use."""
    cache = cache if cache is not None else predictor_cache
    return cache.get(
        version_id,
        model_sha256,
        lambda: load_predictor(
            model_path=model_path,
            model_sha256=model_sha256,
            signature=signature,
            onnx_path=onnx_path,
            onnx_sha256=onnx_sha256,
        ),
    )


def invalidate(version_id=None) -> int:
    """Drop a model version's Predictor from this process's cache (call when a deployment changes)."""
    return predictor_cache.invalidate(version_id)


def _distinct_rows(history: pd.DataFrame | Mapping, columns: list[str]) -> int:
    """How many distinct combinations of ``columns`` a history (a frame or cast columns) holds
    (missing is a value)."""
    if len(columns) == 1:
        return len(pd.unique(np.asarray(history[columns[0]], dtype=object)))
    return len(pd.DataFrame({c: np.asarray(history[c], dtype=object) for c in columns}).drop_duplicates())


def finite_floats(values) -> list:
    """Python floats, with null where a value is not finite (an overflow, a NaN): strict JSON."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    return [v if ok else None for v, ok in zip(values.tolist(), finite.tolist(), strict=True)]


def _json_values(name: str, column: np.ndarray, time_column: str) -> list:
    if name == time_column:
        return _iso_times(np.asarray(column, dtype="datetime64[ns]"))
    if name in ("forecast", "lower", "upper"):
        return finite_floats(column)
    return [v.item() if hasattr(v, "item") else v for v in column]


def _iso_times(times: np.ndarray) -> list[str]:
    """``Timestamp.isoformat`` of each time ("2024-05-01T00:00:00"), at once when none has a fraction of a second."""
    if (times.astype("int64") % 1_000_000_000 == 0).all():
        return np.datetime_as_string(times, unit="s").tolist()
    return [pd.Timestamp(t).isoformat() for t in times]
