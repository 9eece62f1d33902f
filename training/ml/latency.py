"""How long a model takes to score one row, measured the way serving calls it.

Serving hands the model a one-row DataFrame of raw columns and asks for ``predict_proba``; what
that costs is fixed overhead (pandas, column selection, one Python call per ensemble member and
per tree batch), not arithmetic, so it is measured rather than estimated. The median of a few
calls after one warm-up keeps a single slow call from counting.

The clock is the process's CPU time, not the wall clock: on an idle core they agree (scoring
runs on one thread), but on a shared machine the wall clock also counts the time other
processes held the core, and a model would be judged slow for its neighbours' work.
"""

from __future__ import annotations

import statistics
import time
import warnings

import pandas as pd

LATENCY_CALLS = 7


def row_latency_ms(model, X_row: pd.DataFrame, *, calls: int = LATENCY_CALLS) -> float:
    """Median CPU milliseconds of ``model.predict_proba`` (a regressor's ``predict``) on the
    one-row frame ``X_row``."""
    if len(X_row) != 1:
        raise ValueError(f"measure on exactly one row, not {len(X_row)}")
    timings = []
    predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict(X_row)  # warm-up: first-call caches (column indices, thread pools)
        for _ in range(calls):
            started = time.process_time()
            predict(X_row)
            timings.append(time.process_time() - started)
    return round(statistics.median(timings) * 1000, 3)


def within_limit(latency_ms: float | None, limit_ms: float | None) -> bool:
    """Whether a candidate may be the final model: no limit, or measured at or under it.

    An unmeasured candidate (a trial from before latencies were recorded) counts as within: the
    final job measures the model it picks anyway.
    """
    return limit_ms is None or latency_ms is None or latency_ms <= limit_ms
