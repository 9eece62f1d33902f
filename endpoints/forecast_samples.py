"""Example request bodies for a forecasting deployment (the Test tab prefills them, the Consume tab's
snippets send them): serving's sample request forecasts from the stored history (`{}`, or the
known-ahead "future" a model needs); a body with "history" forecasts a series from the recent
values the caller gives."""

import math
from datetime import UTC, datetime

import pandas as pd

from .serving import sample_forecast_request

# An example history as long as the local models need (2 seasons), but never a wall of rows.
MAX_EXAMPLE_ROWS = 28


def _typical(profile: dict, default):
    """A column's most common label, or its median (the reference profile's middle bin edge)."""
    if profile.get("categories"):
        return profile["categories"][0]
    edges = profile.get("edges") or []
    return edges[len(edges) // 2] if edges else default


def _last_time(forecast: dict, profile: dict) -> pd.Timestamp:
    """The end of the training history (the signature's, else the reference profile's), else a fixed date."""
    last = (forecast.get("last_times") or [None])[0]
    if last is not None:
        return pd.Timestamp(last)
    edges = profile.get("edges") or []
    if profile.get("kind") == "numeric" and edges:
        return pd.Timestamp(datetime.fromtimestamp(edges[-1], tz=UTC)).tz_localize(None).normalize()
    return pd.Timestamp("2024-01-01")


def forecast_examples(signature: dict, reference: dict | None) -> dict:
    """{"stored": {...}, "history": {...}}: request bodies valid for this model's signature."""
    forecast = signature.get("forecast") or {}
    columns = (reference or {}).get("columns", {})
    time_column, target = forecast.get("time_column", "time"), forecast.get("target_column", "value")
    frequency = forecast.get("frequency") or "D"
    season = forecast.get("season_length") or 1
    rows = min(MAX_EXAMPLE_ROWS, max(2 * season, 6))
    key = (forecast.get("series") or [{}])[0] if forecast.get("series_columns") else {}
    try:
        times = pd.date_range(end=_last_time(forecast, columns.get(time_column, {})), periods=rows, freq=frequency)
        ahead = pd.date_range(
            times[-1], periods=forecast.get("gap", 0) + (forecast.get("horizon") or 1) + 1, freq=frequency
        )
    except ValueError:  # an alias this pandas does not know: daily steps, still a valid shape
        times = pd.date_range(end="2024-01-01", periods=rows, freq="D")
        ahead = pd.date_range(times[-1], periods=(forecast.get("horizon") or 1) + 1, freq="D")
    level = float(_typical(columns.get(target, {}), 0.0))
    known = {name: _typical(columns.get(name, {}), 0) for name in forecast.get("known_ahead") or []}
    # a season around the target's median (a flat example would be a poor one for ETS or ARIMA)
    swing = max(abs(level) * 0.1, 1.0)
    history = [
        {
            time_column: t.isoformat(),
            **key,
            target: round(level + swing * math.sin(2 * math.pi * i / max(season, 2)), 4),
        }
        | known
        for i, t in enumerate(times)
    ]
    body: dict = {"history": history}
    if known:
        future = ahead[1 + forecast.get("gap", 0) :]
        body["future"] = [{time_column: t.isoformat(), **key, **known} for t in future]
    body["level"] = 0.9
    return {"stored": sample_forecast_request(signature), "history": body}
