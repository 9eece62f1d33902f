"""The forecasting engine on small messy data: settings, guardrails, backtest search, the Forecaster."""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from modelformat.modelio import load_model, save_model
from training.ml import forecast, forecast_models
from training.ml.forecast import (
    Backtest,
    ForecastInputError,
    ForecastSettings,
    ForecastSettingsError,
    _ensemble,
    _score,
    forecast_metrics,
    prepare,
    search,
    season_length_for,
    smape,
)
from training.ml.forecast_models import Series

from .forecast_data import messy_sales

SALES = {
    "time_column": "Date",
    "target_column": "Units Sold",
    "series_columns": ["Store ID"],
    "known_ahead": ["Promo?"],
    "horizon": 7,
    "timeout_s": 60,
}


def settings(**changes) -> ForecastSettings:
    return ForecastSettings.from_dict({**SALES, **changes})


def run(df, algorithms=("seasonal_naive",), seconds=30, **changes):
    chosen = settings(algorithms=list(algorithms), **changes)
    prepared = prepare(df, chosen)
    return prepared, search(prepared, chosen, deadline=time.monotonic() + seconds)


def guardrail(prepared, name):
    return next(g for g in prepared.guardrails if g["name"] == name)


def seasonal_series(periods=96, freq="MS", season_length=12, seed=0, noise=1.0) -> pd.DataFrame:
    """One clean seasonal series with a trend (what every algorithm should forecast well)."""
    rng = np.random.default_rng(seed)
    t = np.arange(periods)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / season_length) + rng.normal(0, noise, periods)
    return pd.DataFrame({"Month Start": pd.date_range("2015-01-01", periods=periods, freq=freq), "Sales ($)": y})


# ---- prepare: guardrails and inference ----------------------------------------------------------


def test_prepare_messy_sales_fills_and_reports():
    prepared = prepare(messy_sales(), settings())
    assert prepared.frequency == "D" and prepared.frequency_inferred and prepared.season_length == 7
    assert prepared.series == [{"Store ID": "A-1"}, {"Store ID": "B 2"}]
    assert [g["name"] for g in prepared.guardrails] == [
        "frequency",
        "missing_timestamps",
        "duplicate_timestamps",
        "history_length",
        "missing_target",
    ]
    assert guardrail(prepared, "missing_timestamps")["status"] == "fixed"
    assert "1 missing" in guardrail(prepared, "missing_timestamps")["message"]
    assert guardrail(prepared, "duplicate_timestamps")["status"] == "fixed"
    assert guardrail(prepared, "missing_target")["status"] == "fixed"
    frame = prepared.frame
    assert list(frame.columns) == ["Store ID", "Date", "Units Sold", "Promo?"]
    assert frame.groupby("Store ID").size().tolist() == [120, 120]
    assert frame["Units Sold"].notna().all()
    assert set(frame["Promo?"]) == {0.0, 1.0}  # yes/no known ahead as 1/0


@pytest.mark.parametrize(
    ("freq", "expected", "season"),
    [("MS", "MS", 12), ("D", "D", 7), ("W-MON", "W-MON", 52), ("QS", "QS", 4), ("h", "h", 24)],
)
def test_frequency_is_inferred(freq, expected, season):
    df = messy_sales(periods=130, freq=freq)
    prepared = prepare(df.assign(Date=pd.to_datetime(df["Date"]).astype(str)), settings(known_ahead=[]))
    assert prepared.frequency == expected
    assert prepared.season_length == season
    assert season_length_for("30min") == 48 and season_length_for("YS") == 1


def test_frequency_inferred_despite_missing_months():
    df = seasonal_series(60).drop(index=[5, 17, 30])
    prepared = prepare(
        df, ForecastSettings.from_dict({"time_column": "Month Start", "target_column": "Sales ($)", "horizon": 6})
    )
    assert prepared.frequency == "MS"
    assert guardrail(prepared, "missing_timestamps")["message"].startswith("3 missing")


def test_business_days_with_a_missing_day():
    df = messy_sales(periods=60, stores=("A-1",), freq="B")
    prepared = prepare(df, settings(known_ahead=[]))
    assert prepared.frequency == "B" and prepared.season_length == 5
    assert guardrail(prepared, "missing_timestamps")["message"].startswith("1 missing")


def test_irregular_timestamps_fail_unless_a_frequency_is_chosen():
    rng = np.random.default_rng(0)
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 200, 150)), unit="D")
    df = pd.DataFrame({"When": times.astype(str), "Level": rng.normal(size=150)})
    base = {"time_column": "When", "target_column": "Level", "horizon": 5}
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(df, ForecastSettings.from_dict(base))
    assert caught.value.field == "frequency" and "irregular" in str(caught.value)
    prepared = prepare(df, ForecastSettings.from_dict({**base, "frequency": "W-MON"}))
    frequency = guardrail(prepared, "frequency")
    assert frequency["status"] == "fixed" and "moved to the nearest step" in frequency["message"]
    assert prepared.frequency == "W-MON" and not prepared.frequency_inferred


def test_a_few_off_grid_times_are_moved():
    df = seasonal_series(48)
    df.loc[10, "Month Start"] = pd.Timestamp("2015-11-03")  # a few days late
    prepared = prepare(
        df, ForecastSettings.from_dict({"time_column": "Month Start", "target_column": "Sales ($)", "horizon": 6})
    )
    assert prepared.frequency == "MS"
    assert guardrail(prepared, "frequency")["status"] == "fixed"


# ---- bad settings --------------------------------------------------------------------------------


def test_time_column_that_does_not_parse_names_the_value():
    df = messy_sales()
    df.loc[5, "Date"] = "31/02/2024?"
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(df, settings())
    assert caught.value.field == "time_column"
    assert "'31/02/2024?'" in str(caught.value) and "row 6" in str(caught.value)


def test_numbers_are_not_a_time_column():
    df = messy_sales().assign(Date=lambda d: np.arange(len(d)))
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(df, settings())
    assert caught.value.field == "time_column" and "numbers" in str(caught.value)


def test_horizon_longer_than_history():
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(messy_sales(periods=40), settings(horizon=30))
    assert caught.value.field == "horizon"
    assert "Horizon 30 needs at least" in str(caught.value) and "has 40" in str(caught.value)


def test_short_history_drops_backtest_windows_with_a_warning():
    prepared = prepare(messy_sales(periods=40), settings(horizon=12, backtest_windows=3))
    assert prepared.backtest_windows == 2
    assert guardrail(prepared, "history_length")["status"] == "warning"


def test_non_numeric_target():
    df = messy_sales()
    df["Units Sold"] = df["Units Sold"].astype(object)
    df.loc[3, "Units Sold"] = "lots"
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(df, settings())
    assert caught.value.field == "target_column" and "'lots'" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"horizon": 0}, "horizon"),
        ({"horizon": "soon"}, "horizon"),
        ({"horizon": None}, "horizon"),
        ({"frequency": "fortnightly"}, "frequency"),
        ({"gap": -1}, "gap"),
        ({"backtest_windows": 11}, "backtest_windows"),
        ({"primary_metric": "r2"}, "primary_metric"),
        ({"series_columns": ["Date"]}, "series_columns"),
        ({"known_ahead": ["Units Sold"]}, "known_ahead"),
        ({"algorithms": ["prophet"]}, "algorithms"),
        ({"time_column": None}, "time_column"),
    ],
)
def test_bad_settings_name_their_field(changes, field):
    with pytest.raises(ForecastSettingsError) as caught:
        settings(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"time_column": "When"}, "time_column"),
        ({"target_column": "Revenue"}, "target_column"),
        ({"series_columns": ["Shop"]}, "series_columns"),
        ({"known_ahead": ["Holiday"]}, "known_ahead"),
    ],
)
def test_columns_that_do_not_exist(changes, field):
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(messy_sales(), settings(**changes))
    assert caught.value.field == field


def test_settings_round_trip():
    chosen = settings(frequency="w-mon", gap=2)
    assert chosen.frequency == "W-MON"
    assert ForecastSettings.from_dict(chosen.to_dict()) == chosen


# ---- metrics ---------------------------------------------------------------------------------------


def test_metrics():
    history = np.array([1.0, 2, 3, 1, 2, 3, 1, 2, 3])
    metrics = forecast_metrics([1, 2, 3], [1, 2, 4], history, season_length=3)
    assert np.isnan(metrics["mase"])  # a history its seasonal naive forecasts exactly: no scale
    metrics = forecast_metrics([1, 2, 3], [1, 2, 4], history, season_length=1)
    assert metrics["mae"] == pytest.approx(1 / 3)
    assert metrics["mase"] == pytest.approx((1 / 3) / np.mean(np.abs(np.diff(history))))
    assert metrics["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert metrics["normalized_rmse"] == pytest.approx(np.sqrt(1 / 3) / 2)
    assert smape(np.array([0.0, 1]), np.array([0.0, 1])) == 0.0
    assert smape(np.array([0.0]), np.array([2.0])) == 200.0


# ---- search and the forecaster -------------------------------------------------------------------


@pytest.fixture(scope="module")
def naive_run():
    return run(messy_sales())


def test_search_backtests_on_rolling_origins(naive_run):
    prepared, result = naive_run
    assert result.best["algorithm"] == "seasonal_naive"
    assert set(result.metrics) == {"mase", "smape", "rmse", "mae", "normalized_rmse"}
    assert result.best["score"] == result.metrics["normalized_rmse"]
    assert len(result.windows) == 3
    window = result.windows[-1]
    assert window["origin"] == "2024-04-22T00:00:00"
    assert [s["key"] for s in window["series"]] == prepared.series
    first = window["series"][0]
    assert len(first["time"]) == len(first["actual"]) == len(first["forecast"]) == 7
    assert all(lo <= f <= hi for lo, f, hi in zip(first["lower"], first["forecast"], first["upper"], strict=True))


def test_forecast_from_the_stored_history(naive_run):
    _, result = naive_run
    forecast = result.forecaster.forecast()
    assert list(forecast.columns) == ["Store ID", "Date", "forecast", "lower", "upper"]
    assert len(forecast) == 14
    first = forecast[forecast["Store ID"] == "A-1"]
    assert first["Date"].iloc[0] == pd.Timestamp("2024-04-30")
    assert (first["lower"] <= first["forecast"]).all() and (first["forecast"] <= first["upper"]).all()
    narrow = result.forecaster.forecast(level=0.5)
    assert ((narrow["upper"] - narrow["lower"]) < (forecast["upper"] - forecast["lower"])).all()


def test_forecast_from_an_origin(naive_run):
    _, result = naive_run
    forecast = result.forecaster.forecast(origin="2024-03-01", series=[{"Store ID": "B 2"}])
    assert forecast["Date"].iloc[0] == pd.Timestamp("2024-03-02") and set(forecast["Store ID"]) == {"B 2"}
    with pytest.raises(ForecastInputError) as caught:
        result.forecaster.forecast(origin="1999-01-01")
    assert caught.value.field == "origin"


def test_forecast_with_new_history_for_an_unseen_series(naive_run):
    _, result = naive_run
    history = messy_sales(periods=30, stores=("C 3",), seed=4)
    forecast = result.forecaster.forecast(history)
    assert set(forecast["Store ID"]) == {"C 3"} and len(forecast) == 7
    last = pd.to_datetime(history["Date"]).max()
    assert forecast["Date"].iloc[0] == last + pd.Timedelta(days=1)
    with pytest.raises(ForecastInputError) as caught:
        result.forecaster.forecast(history.head(2))
    assert caught.value.field == "history"
    bad = history.assign(Date="yesterday-ish")
    with pytest.raises(ForecastInputError) as caught:
        result.forecaster.forecast(bad)
    assert caught.value.field == "Date" and "yesterday-ish" in str(caught.value)
    with pytest.raises(ForecastInputError):
        result.forecaster.forecast(level=1.5)


def test_forecaster_round_trip_gives_identical_forecasts(naive_run, tmp_path):
    _, result = naive_run
    digest = save_model(result.forecaster, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops", digest)
    pd.testing.assert_frame_equal(loaded.forecast(), result.forecaster.forecast())
    pd.testing.assert_frame_equal(loaded.forecast(origin="2024-03-01"), result.forecaster.forecast(origin="2024-03-01"))


# ---- the members, the ensemble, intervals ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ets", "arima", "lightgbm_lags", "hgb_lags"])
def test_each_algorithm_matches_seasonal_naive_on_a_clean_seasonal_series(algorithm):
    chosen = ForecastSettings.from_dict(
        {"time_column": "Month Start", "target_column": "Sales ($)", "horizon": 12, "algorithms": [algorithm]}
    )
    result = search(
        prepare(seasonal_series(240 if algorithm.endswith("_lags") else 96), chosen),
        chosen,
        deadline=time.monotonic() + 30,
    )
    rows = {row["algorithm"]: row for row in result.leaderboard}
    assert rows[algorithm]["status"] == "succeeded", rows[algorithm]["error"]
    assert rows[algorithm]["score"] <= rows["seasonal_naive"]["score"] * 1.05
    assert rows[algorithm]["metrics"]["mase"] < 1.2


@pytest.mark.parametrize(
    "config",
    [
        {"order": (1, 1, 1), "seasonal_order": (0, 1, 1, 12), "trend": "n", "fourier": 0},
        {"order": (2, 1, 0), "seasonal_order": (0, 0, 0, 0), "trend": "t", "fourier": 0},
        {"order": (1, 0, 1), "seasonal_order": (0, 0, 0, 0), "trend": "c", "fourier": 3},
        {"order": (2, 1, 2), "seasonal_order": (0, 0, 0, 0), "trend": "t", "fourier": 3},
    ],
)
def test_the_arima_filter_forecasts_what_statsmodels_forecast_gives(config):
    rng = np.random.default_rng(3)
    exog = forecast_models._fourier(np.arange(132), 30, config["fourier"])
    for attempt in range(3):  # a model built for the first history is kept and bound to the next ones
        y = 50 + np.cumsum(rng.normal(0.2, 1, 120)) + 8 * np.sin(np.arange(120) * 2 * np.pi / 30)
        y[rng.choice(120, attempt * 4, replace=False)] = np.nan  # missing months, elsewhere each time
        past = None if exog is None else exog[:120]
        fitted = forecast_models._sarimax(y, config, past).fit(disp=False, maxiter=50)
        expected = fitted.forecast(12, exog=None if exog is None else exog[120:])
        got = forecast_models._arima_forecast(y, config, np.asarray(fitted.params), exog, 12)
        assert got.shape == (12,) and np.allclose(got, expected, rtol=1e-9, atol=1e-9)
    shape = (*config["order"], *config["seasonal_order"], config["trend"], 132)
    assert (forecast_models._BUILT_ARIMA.take(shape) is None) == (exog is not None)


def test_kept_arima_models_serve_threads_one_at_a_time():
    config = {"order": (1, 1, 1), "seasonal_order": (0, 1, 1, 12), "trend": "n", "fourier": 0}
    rng = np.random.default_rng(5)
    months = np.arange(48)
    histories = [20 + np.cumsum(rng.normal(0, 1, 48)) + 5 * np.sin(months * 2 * np.pi / 12) for _ in range(8)]
    params = np.asarray(forecast_models._sarimax(histories[0], config, None).fit(disp=False, maxiter=30).params)
    expected = [forecast_models._arima_forecast(y, config, params, None, 12) for y in histories]
    with ThreadPoolExecutor(4) as pool:  # as a replica's threads score at once
        got = list(pool.map(lambda i: forecast_models._arima_forecast(histories[i % 8], config, params, None, 12),
                            range(200)))  # fmt: skip
    assert all(np.array_equal(forecast, expected[i % 8]) for i, forecast in enumerate(got))


def test_ets_on_a_new_history_smooths_with_the_fitted_smoothing_parameters():
    rng = np.random.default_rng(4)
    y = 100 + np.cumsum(rng.normal(0.3, 1, 60)) + 10 * np.sin(np.arange(60) * 2 * np.pi / 12)
    config = {"error": "add", "trend": "add", "damped_trend": True, "seasonal": "mul", "seasonal_periods": 12}
    fitted = forecast_models._ets_model(y, config).fit(disp=False)
    values = dict(zip(fitted.model.param_names, fitted.params, strict=True))
    recent = y[-36:] + rng.normal(0, 1, 36)
    heuristic = forecast_models._ets_model(recent, config, initialization_method="heuristic")
    expected = heuristic.smooth([values[name] for name in heuristic.param_names]).forecast(12)
    got = forecast_models._ets_on_new_history({"config": config, "params": np.asarray(fitted.params)}, recent, 12)
    assert np.allclose(got, expected, rtol=1e-12)


@pytest.fixture(scope="module")
def full_run():
    chosen = settings()
    prepared = prepare(messy_sales(), chosen)
    return prepared, search(prepared, chosen, seed=0, deadline=time.monotonic() + 40)


def test_the_search_backtests_every_algorithm(full_run):
    _, result = full_run
    rows = {row["algorithm"]: row for row in result.leaderboard}
    assert {"seasonal_naive", "ets", "arima", "lightgbm_lags", "hgb_lags"} <= set(rows)
    assert all(row["status"] == "succeeded" for row in rows.values()), result.leaderboard
    assert [row["rank"] for row in result.leaderboard] == list(range(1, len(rows) + 1))
    assert rows["lightgbm_lags"]["score"] < rows["seasonal_naive"]["score"]
    if "ensemble" in rows:  # kept only when it beats the best single model
        singles = [row["score"] for row in result.leaderboard if row["algorithm"] != "ensemble"]
        assert rows["ensemble"]["score"] < min(singles) and result.best["algorithm"] == "ensemble"


def test_the_lowest_backtest_score_is_the_served_model(full_run):
    """No simplicity rule overrides the backtest (measured on the public suite: each one made more
    series worse than better); the served forecaster is exactly the leaderboard's first row."""
    _, result = full_run
    scores = [row["score"] for row in result.leaderboard if row["status"] == "succeeded"]
    assert result.best["score"] == min(scores)
    expected = [m["algorithm"] for m in result.best.get("members", [{"algorithm": result.best["algorithm"]}])]
    assert [m["algorithm"] for m in result.forecaster.members] == expected
    assert result.forecaster.algorithm == result.best["algorithm"]


def test_a_narrow_lead_over_seasonal_naive_is_still_served():
    """A seasonal random walk on which ETS leads seasonal naive by less than one standard error of
    the three windows' scores (a one-standard-error rule picks seasonal naive here): the lower
    backtest score is served all the same."""
    rng = np.random.default_rng(2)
    t = np.arange(72)
    y = 100 + 10 * np.sin(2 * np.pi * t / 12) + np.cumsum(rng.normal(0, 1.5, 72)) + rng.normal(0, 2, 72)
    df = pd.DataFrame({"Month": pd.date_range("2018-01-01", periods=72, freq="MS"), "Sales": y})
    chosen = ForecastSettings.from_dict(
        {"time_column": "Month", "target_column": "Sales", "horizon": 6, "season_length": 12,
         "algorithms": ["seasonal_naive", "ets"], "timeout_s": 60}
    )  # fmt: skip
    result = search(prepare(df, chosen), chosen, deadline=time.monotonic() + 60)
    rows = {row["algorithm"]: row for row in result.leaderboard}
    assert rows["ets"]["score"] < rows["seasonal_naive"]["score"] < 1.25 * rows["ets"]["score"]
    assert result.best["algorithm"] == "ets"
    assert [m["algorithm"] for m in result.forecaster.members] == ["ets"]


def test_the_ensemble_weights_its_members_by_inverse_error():
    """Two members wrong in opposite directions: their weighted mean beats both, and is kept."""
    panel, cuts, chosen = _one_series_backtest()
    over = Backtest(algorithm="ets", label="ETS", forecasts=[[np.full(7, 12.0)]])
    under = Backtest(algorithm="arima", label="ARIMA", forecasts=[[np.full(7, 9.5)]])
    worst = Backtest(algorithm="seasonal_naive", label="Seasonal naive", forecasts=[[np.full(7, 20.0)]])
    for candidate in (over, under, worst):
        _score(candidate, panel, cuts, chosen, 1)
    ensemble = _ensemble([over, under, worst], panel, cuts, chosen, 1)
    assert ensemble is not None and ensemble.label == "Ensemble of arima, ets"
    weights = dict(ensemble.members)
    assert weights["arima"] > weights["ets"] and sum(weights.values()) == pytest.approx(1)
    assert ensemble.score < under.score
    # members that agree: the mean is no better, so no ensemble is kept
    same = Backtest(algorithm="arima", label="ARIMA", forecasts=[[np.full(7, 12.0)]])
    _score(same, panel, cuts, chosen, 1)
    assert _ensemble([over, same], panel, cuts, chosen, 1) is None


def _one_series_backtest():
    y = np.full(30, 10.0) + np.arange(30) % 2
    series = Series(
        key="", code=0, times=pd.date_range("2024-01-01", periods=30).to_numpy(), y=y, known=np.zeros((30, 0))
    )
    chosen = ForecastSettings.from_dict({"time_column": "t", "target_column": "y", "horizon": 7, "backtest_windows": 1})
    return [series], [[23]], chosen


def test_intervals_contain_about_the_level_of_backtest_actuals(full_run):
    _, result = full_run
    inside = total = 0
    for window in result.windows:
        for series in window["series"]:
            for actual, lower, upper in zip(series["actual"], series["lower"], series["upper"], strict=True):
                inside += lower <= actual <= upper
                total += 1
    assert 0.75 <= inside / total <= 1.0


def test_known_ahead_values_are_required_for_the_horizon(full_run):
    prepared, result = full_run
    forecaster = result.forecaster
    assert forecaster.uses_known_ahead
    with pytest.raises(ForecastInputError) as caught:
        forecaster.forecast()
    assert caught.value.field == "future" and "'Promo?'" in str(caught.value)
    future = prepared.frame.assign(Date=lambda d: d["Date"] + pd.Timedelta(days=7), **{"Promo?": "yes"})
    with_promo = forecaster.forecast(future=future)
    without = forecaster.forecast(future=future.assign(**{"Promo?": "no"}))
    assert (with_promo["forecast"] > without["forecast"]).mean() > 0.8  # promotions sell


def test_the_full_forecaster_round_trip(full_run, tmp_path):
    prepared, result = full_run
    future = prepared.frame.assign(Date=lambda d: d["Date"] + pd.Timedelta(days=7))
    digest = save_model(result.forecaster, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops", digest)
    pd.testing.assert_frame_equal(loaded.forecast(future=future), result.forecaster.forecast(future=future))
    history = messy_sales(periods=30, stores=("C 3",), seed=4)
    ahead = history.assign(Date=(pd.to_datetime(history["Date"]) + pd.Timedelta(days=7)).dt.strftime("%Y-%m-%d"))
    new = loaded.forecast(history, future=ahead)
    assert set(new["Store ID"]) == {"C 3"} and new["forecast"].between(20, 120).all()


def test_a_deadline_that_passes_skips_models_but_not_the_run():
    chosen = settings()
    prepared = prepare(messy_sales(), chosen)
    result = search(prepared, chosen, deadline=time.monotonic() - 1)
    rows = {row["algorithm"]: row for row in result.leaderboard}
    assert rows["seasonal_naive"]["status"] == "succeeded"
    assert rows["ets"]["status"] == "failed" and rows["ets"]["error"].startswith("Skipped")
    assert result.best["algorithm"] == "seasonal_naive" and result.stop_reason == "the time budget ran out"


def test_boosting_needs_enough_rows():
    chosen = ForecastSettings.from_dict(
        {"time_column": "Month Start", "target_column": "Sales ($)", "horizon": 12, "algorithms": ["lightgbm_lags"]}
    )
    result = search(prepare(seasonal_series(96), chosen), chosen, deadline=time.monotonic() + 30)
    row = next(r for r in result.leaderboard if r["algorithm"] == "lightgbm_lags")
    assert row["status"] == "failed" and "at least 120 training rows" in row["error"]
    assert result.best["algorithm"] == "seasonal_naive"


def test_a_gap_skips_steps_after_the_history():
    _, result = run(messy_sales(periods=80), algorithms=["seasonal_naive", "ets"], gap=2, horizon=5)
    forecast = result.forecaster.forecast(future=None) if not result.forecaster.uses_known_ahead else None
    assert forecast is not None and len(forecast) == 10
    assert forecast["Date"].iloc[0] == pd.Timestamp("2024-03-20") + pd.Timedelta(days=3)  # last day + gap + 1
    window = result.windows[-1]["series"][0]
    assert window["time"][0] == "2024-03-16T00:00:00"  # the last 5 days, after a gap of 2 from the origin
    assert result.windows[-1]["origin"] == "2024-03-13T00:00:00"


def test_constant_and_zero_series_and_two_id_columns():
    frame = messy_sales(periods=60, stores=("A-1", "B 2", "C 3"), seed=2)
    frame["Region"] = np.where(frame["Store ID"] == "A-1", "North", "South ")
    frame.loc[frame["Store ID"] == "C 3", "Units Sold"] = 0.0
    chosen = settings(series_columns=["Region", "Store ID"], known_ahead=[], horizon=5)
    prepared = prepare(frame, chosen)
    assert prepared.series[0] == {"Region": "North", "Store ID": "A-1"}
    result = search(prepared, chosen, deadline=time.monotonic() + 30)
    forecast = result.forecaster.forecast()
    assert list(forecast.columns[:2]) == ["Region", "Store ID"] and len(forecast) == 15
    zero = forecast[forecast["Store ID"] == "C 3"]
    assert (zero["forecast"] < 1).all() and (zero["lower"] >= 0).all()
    rows = {row["algorithm"]: row for row in result.leaderboard}
    assert rows["ets"]["status"] == rows["arima"]["status"] == "succeeded"  # the constant series: its naive forecast
    assert np.isfinite(forecast[["forecast", "lower", "upper"]].to_numpy()).all()


def test_with_many_series_boosting_is_backtested_before_the_local_models():
    stores = tuple(f"Store #{i}" for i in range(12))
    chosen = settings()
    prepared = prepare(messy_sales(periods=40, stores=stores), chosen)
    result = search(prepared, chosen, deadline=time.monotonic() - 1)  # nothing but seasonal naive has time
    skipped = [row["algorithm"] for row in result.leaderboard if row["status"] == "failed"]
    assert skipped == ["lightgbm_lags", "hgb_lags", "ets", "arima"]


# ---- hardening: sizes, bounds, messy ids and targets ----------------------------------------------


def one_store(periods=40, start="2024-01-01", freq="D", **columns) -> pd.DataFrame:
    times = pd.date_range(start, periods=periods, freq=freq)
    y = 20 + np.sin(np.arange(periods) * 2 * np.pi / 7) * 5 + np.arange(periods) * 0.1
    return pd.DataFrame({"Date": times.strftime("%Y-%m-%d %H:%M"), "Units Sold": y, **columns})


@pytest.mark.parametrize("frequency", ["min", "ms"])
def test_a_frequency_far_finer_than_the_data_is_refused_before_its_grid_is_built(frequency):
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(messy_sales(periods=60), settings(frequency=frequency))
    assert caught.value.field == "frequency" and "coarser" in str(caught.value)


def test_bursts_that_infer_seconds_and_steps_beyond_pandas_dates_are_frequency_errors():
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    times = pd.DatetimeIndex([d + pd.Timedelta(seconds=k) for d in days for k in range(3)])  # median step 1 s
    burst = pd.DataFrame({"Date": times.strftime("%Y-%m-%d %H:%M:%S"), "Units Sold": np.arange(180.0)})
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(burst, settings(series_columns=[], known_ahead=[]))
    assert caught.value.field == "frequency"
    with pytest.raises(ForecastSettingsError) as caught:
        settings(frequency="1000000D")
    assert caught.value.field == "frequency"


def test_a_history_spanning_centuries_is_refused(naive_run):
    _, result = naive_run
    history = pd.DataFrame(
        {"Date": ["2024-01-01", "2024-01-02", "2200-01-01"], "Store ID": "A-1", "Units Sold": [1.0, 2.0, 3.0]}
    )
    with pytest.raises(ForecastInputError) as caught:
        result.forecaster.forecast(history)
    assert caught.value.field == "history" and "steps" in str(caught.value)


def test_times_at_the_end_of_pandas_dates_are_input_errors(naive_run):
    _, result = naive_run
    history = one_store(periods=30, start="2262-03-01", **{"Store ID": "A-1"})  # the horizon passes 2262-04-11
    with pytest.raises(ForecastInputError) as caught:
        result.forecaster.forecast(history)
    assert caught.value.field == "history"
    late = one_store(periods=40, start="2262-03-03")  # ends on the last day pandas holds
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(late, settings(series_columns=[], known_ahead=[], horizon=7))
    assert caught.value.field == "time_column"


def test_a_history_before_the_training_start_keeps_its_days_apart(naive_run):
    _, result = naive_run
    history = messy_sales(periods=20, stores=("A-1",), seed=3)
    history["Date"] = pd.date_range("2023-12-20", periods=len(history), freq="D").strftime("%Y-%m-%d")
    history = history.drop_duplicates("Date")
    assert len(result.forecaster._given_panel(history)[0].y) == 20  # not merged onto 2024-01-01
    assert result.forecaster.forecast(history)["Date"].iloc[0] == pd.Timestamp("2024-01-09")
    early = history.drop_duplicates("Date").head(5)  # entirely before the training data starts
    with pytest.raises(ForecastInputError):
        result.forecaster.forecast(early.head(2))
    assert len(result.forecaster.forecast(early)) == 7


def test_a_series_id_with_the_key_separator_names_the_field(naive_run):
    frame = messy_sales(periods=60)
    frame.loc[frame["Store ID"] == "B 2", "Store ID"] = "B\x1f2"
    with pytest.raises(ForecastSettingsError) as caught:
        prepare(frame, settings())
    assert caught.value.field == "series_columns"
    _, result = naive_run
    with pytest.raises(ForecastInputError) as caught:
        result.forecaster.forecast(frame[frame["Store ID"] == "B\x1f2"])
    assert caught.value.field == "history"


def test_missing_targets_at_a_series_end_do_not_move_the_forecast():
    frame = one_store(periods=60, Promo="no")
    frame.loc[50:, "Units Sold"] = np.nan  # the last ten days have no target yet
    frame.loc[:2, "Units Sold"] = np.nan
    chosen = settings(series_columns=[], known_ahead=[], horizon=7, algorithms=["seasonal_naive"])
    prepared = prepare(frame, chosen)
    dates = prepared.frame["Date"]
    assert dates.min() == pd.Timestamp("2024-01-04") and dates.max() == pd.Timestamp("2024-02-19")
    assert "13 missing" in guardrail(prepared, "missing_target")["message"]
    result = search(prepared, chosen, deadline=time.monotonic() + 30)
    assert result.forecaster.forecast()["Date"].iloc[0] == pd.Timestamp("2024-02-20")
    # a request's history too
    forecast = result.forecaster.forecast(frame)
    assert forecast["Date"].iloc[0] == pd.Timestamp("2024-02-20")


def test_a_duplicate_without_a_target_does_not_replace_a_value():
    frame = one_store(periods=40)
    frame = pd.concat([frame, frame.iloc[[20]].assign(**{"Units Sold": np.nan})], ignore_index=True)
    chosen = settings(series_columns=[], known_ahead=[], horizon=7, algorithms=["seasonal_naive"])
    prepared = prepare(frame, chosen)
    assert prepared.frame["Units Sold"].iloc[20] == pytest.approx(frame["Units Sold"].iloc[20])
    assert guardrail(prepared, "duplicate_timestamps")["status"] == "fixed"


def test_infinite_targets_are_missing_values():
    frame = one_store(periods=40)
    frame["Units Sold"] = frame["Units Sold"].round(2).astype(str)
    frame.loc[[10, 20], "Units Sold"] = ["inf", "-inf"]
    chosen = settings(series_columns=[], known_ahead=[], horizon=7, algorithms=["seasonal_naive"])
    prepared = prepare(frame, chosen)
    assert np.isfinite(prepared.frame["Units Sold"]).all()
    assert guardrail(prepared, "missing_target")["message"].startswith("2 missing")
    result = search(prepared, chosen, deadline=time.monotonic() + 30)
    assert all(value is not None for value in result.metrics.values())


def test_numeric_series_ids_match_as_the_signature_labels_them():
    frame = pd.concat([one_store(periods=40, **{"Store #": 1.0}), one_store(periods=40, **{"Store #": 2.0})])
    frame.loc[frame.index[-1], "Store #"] = np.nan  # a float column because an id is missing
    frame = frame.dropna(subset=["Store #"]).reset_index(drop=True)
    chosen = settings(series_columns=["Store #"], known_ahead=[], horizon=7, algorithms=["seasonal_naive"])
    prepared = prepare(frame, chosen)
    assert prepared.series == [{"Store #": "1"}, {"Store #": "2"}]
    result = search(prepared, chosen, deadline=time.monotonic() + 30)
    forecaster = result.forecaster
    assert set(forecaster.forecast(series=[{"Store #": 1}])["Store #"]) == {"1"}
    assert set(forecaster.forecast(series=[{"Store #": "2"}])["Store #"]) == {"2"}
    history = frame[frame["Store #"] == 1.0]
    assert forecaster._given_panel(history)[0].code == 0  # a known series, not a new one


def test_boosting_keeps_rows_of_every_series_under_its_row_cap(monkeypatch):
    from training.ml import forecast_models

    stores = tuple(f"S{i}" for i in range(4))
    chosen = settings(known_ahead=[], horizon=3)
    prepared = prepare(messy_sales(periods=80, stores=stores), chosen)
    context = forecast_models.Context(
        season_length=7, frequency="D", horizon=3, gap=0, seed=0, n_series=4, n_known=0, nonnegative=True,
        deadline=None, anchor_ns=int(prepared.anchor.value),
    )  # fmt: skip
    monkeypatch.setattr(forecast_models, "MAX_TRAINING_ROWS", 200)
    seen = {}
    original = forecast_models.HistGradientBoostingRegressor.fit

    def spy(self, X, y, *args, **kwargs):
        seen["codes"] = np.unique(X[:, -1])
        return original(self, X, y, *args, **kwargs)

    monkeypatch.setattr(forecast_models.HistGradientBoostingRegressor, "fit", spy)
    forecast_models.fit("hgb_lags", prepared.panel, context)
    assert list(seen["codes"]) == [0.0, 1.0, 2.0, 3.0]


def test_window_features_from_cumulative_sums_match_the_windows():
    from training.ml import forecast_models

    y = np.random.default_rng(0).normal(1000, 50, 60)
    features = {"lags": [2], "windows": [3, 7], "fourier": 0, "n_known": 0}
    context = forecast_models.Context(
        season_length=7, frequency="D", horizon=3, gap=0, seed=0, n_series=1, n_known=0, nonnegative=False,
        deadline=None,
    )  # fmt: skip
    positions = np.arange(1, 60)
    times = pd.date_range("2024-01-01", periods=60, freq="D")[positions]
    matrix = forecast_models._feature_matrix(y, positions, times, None, 0, 2.0, features, context)
    padded = np.concatenate([np.full(7, y[0]), y])
    at = positions + 7
    for column, w in ((1, 3), (3, 7)):
        window = padded[at[:, None] - np.arange(1, w + 1)[None, :]]
        assert np.allclose(matrix[:, column], (window.mean(axis=1) - padded[at - 1]) / 2.0)
        assert np.allclose(matrix[:, column + 1], window.std(axis=1) / 2.0, atol=1e-6)


def test_stored_series_are_slices_and_a_request_deadline_stops_refits(naive_run):
    from training.ml.forecast import ForecastTimeout

    _, result = naive_run
    forecaster = result.forecaster
    assert (np.diff(forecaster.history["code"]) >= 0).all()
    cut = forecaster.forecast(origin="2024-03-01")
    assert set(cut["Store ID"]) == {"A-1", "B 2"} and (cut["Date"] == pd.Timestamp("2024-03-02")).sum() == 2
    _, ets = run(messy_sales(periods=60), algorithms=["ets"], known_ahead=[])
    history = messy_sales(periods=30, stores=("C 3", "D 4"), seed=5)
    with pytest.raises(ForecastTimeout) as caught:
        ets.forecaster.forecast(history, deadline=time.monotonic() - 1)
    assert caught.value.field == "history" and isinstance(caught.value, ValueError)
    assert len(ets.forecaster.forecast(history, deadline=time.monotonic() + 30)) == 14


def test_times_with_a_zone_are_their_own_wall_time(naive_run):
    paris = one_store(periods=60, start="2024-03-01")
    paris["Date"] = pd.date_range("2024-03-01", periods=60, freq="D", tz="Europe/Paris")  # summer time on 03-31
    chosen = settings(series_columns=[], known_ahead=[], horizon=7, algorithms=["seasonal_naive"])
    prepared = prepare(paris, chosen)
    assert prepared.frequency == "D" and guardrail(prepared, "frequency")["status"] == "passed"
    assert prepared.frame["Date"].iloc[0] == pd.Timestamp("2024-03-01")
    text = paris.assign(Date=paris["Date"].map(lambda t: t.isoformat()))  # +01:00, then +02:00
    assert text["Date"].iloc[0].endswith("+01:00") and text["Date"].iloc[-1].endswith("+02:00")
    assert prepare(text, chosen).frame["Date"].tolist() == prepared.frame["Date"].tolist()
    _, result = naive_run
    cut = result.forecaster.forecast(origin="2024-03-01T00:00:00+01:00", series=[{"Store ID": "A-1"}])
    assert cut["Date"].iloc[0] == pd.Timestamp("2024-03-02")


def test_series_scale_is_the_mase_scale_and_metrics_are_regressions():
    from training.ml.forecast import mase_scale
    from training.ml.forecast_models import series_scale
    from training.ml.metrics import regression_score

    history = np.array([1.0, 5.0, 2.0, 6.0, 3.0, 7.0, 4.0, 8.0])
    assert series_scale(history, 2) == mase_scale(history, 2) == 1.0
    seasonal_only = np.tile([1.0, 5.0], 4)  # its seasonal naive is exact: the naive scale stands in
    assert mase_scale(seasonal_only, 2) == 0 and series_scale(seasonal_only, 2) == mase_scale(seasonal_only, 1)
    actual, forecast = np.array([3.0, 4.0, 9.0]), np.array([2.0, 4.0, 7.0])
    metrics = forecast_metrics(actual, forecast, history, 2)
    assert metrics["rmse"] == regression_score("rmse", actual, forecast)
    assert metrics["normalized_rmse"] == pytest.approx(metrics["rmse"] / 7.0)  # the history's range


def test_a_known_series_recent_history_keeps_its_ets_parameters(monkeypatch):
    """A request's recent history of a series the model knows is forecast with the fitted ETS
    parameters (no search per request: seconds of fits); a series never seen is still fitted."""
    chosen = ForecastSettings.from_dict(
        {"time_column": "Month Start", "target_column": "Sales ($)", "horizon": 12, "algorithms": ["ets"]}
    )
    series = seasonal_series(96)
    result = search(prepare(series, chosen), chosen, deadline=time.monotonic() + 30)
    forecaster = result.forecaster
    assert [m["algorithm"] for m in forecaster.members] == ["ets"]
    stored = forecaster.forecast()["forecast"].to_numpy()

    def no_fit(*args, **kwargs):
        raise AssertionError("a known series' history was fitted again")

    monkeypatch.setattr(forecast_models, "_fit_ets", no_fit)
    recent = forecaster.forecast(series.tail(48))["forecast"].to_numpy()
    assert recent.shape == (12,) and np.all(np.isfinite(recent))
    # the same parameters on the last four years: close to the forecast from the whole history
    assert np.max(np.abs(recent - stored) / np.abs(stored)) < 0.05
    with pytest.raises(AssertionError, match="fitted again"):  # too short to start from: it is fitted
        forecaster.forecast(series.tail(18))


@pytest.mark.parametrize("freq", ["MS", "QS", "D", "h", "W-SUN", "B", "YS"])
def test_a_regular_history_takes_the_fast_path_to_the_same_frame(freq):
    """A request's recent history is usually regular already: regularise sorts it instead of
    reindexing each series, and must give exactly what the general path gives."""
    rng = np.random.default_rng(3)
    parts = []
    for i, periods in enumerate((30, 7, 48)):
        times = pd.date_range("2019-01-07", periods=periods, freq=freq).as_unit("ns")
        parts.append(pd.DataFrame({"key": f"store {i}", "time": times, "y": rng.normal(size=periods), "ka0": 1.0}))
    frame = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=0)  # rows in any order
    snapped, steps, moved = forecast._snap(frame["time"].to_numpy(), freq, None)
    assert moved == 0
    general = forecast._fill_grid(
        frame.assign(time=snapped), freq, dict.fromkeys(["duplicates", "missing_timestamps"], 0)
    )
    fast = forecast._already_regular(frame, snapped, steps)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, general)
    regular, counts = forecast.regularise(frame, freq)
    pd.testing.assert_frame_equal(regular, general)
    assert counts == {"moved": 0, "duplicates": 0, "missing_timestamps": 0, "missing_target": 0}


def _general_panel(forecaster, history):
    """A request's panel through DataFrames and ``regularise``: what the array path must equal."""
    long = pd.DataFrame(
        {
            "key": forecast.series_key_columns(history, forecaster.series_columns),
            "time": forecast.parse_times(history["Date"], "Date"),
            "y": forecast.parse_target(history["Units Sold"], "Units Sold"),
        }
    )
    for i, column in enumerate(forecaster.known_ahead):
        long[f"ka{i}"] = forecast.encode_known_ahead(history[column], forecaster.known_ahead_encodings[column])
    anchor = pd.Timestamp(forecaster.anchor_ns)
    regular, _ = forecast.regularise(long[long["time"].notna()], forecaster.frequency, anchor)
    return forecast._panel(regular, [], len(forecaster.known_ahead), forecaster.series_codes)


def test_a_request_history_reads_alike_through_arrays_and_through_frames(naive_run, monkeypatch):
    """A regular history (rows in any order) becomes its panel through numpy alone; one with a gap,
    a repeat, a missing value or an unknown store goes through ``regularise``; both equal the
    general path, series by series."""
    forecaster = naive_run[1].forecaster
    messy = messy_sales(periods=40, stores=("A-1", "B 2", "C 3"), seed=5)  # a gap, a repeat, missing values
    regular = messy.drop_duplicates(["Store ID", "Date"]).dropna(subset=["Units Sold"])
    regular = regular[regular.groupby("Store ID")["Date"].transform("min") <= regular["Date"]]
    regular = regular[pd.to_datetime(regular["Date"]) >= pd.Timestamp("2024-01-25")]  # after the gap and NaNs
    assert regular["Units Sold"].notna().all() and len(regular) < len(messy)
    shuffled = regular.sample(frac=1.0, random_state=1)
    for history, fast in ((shuffled, True), (messy, False), (messy.sample(frac=1.0, random_state=2), False)):
        expected = _general_panel(forecaster, history)
        with monkeypatch.context() as patched:
            if fast:  # the array path never builds the frame
                patched.setattr(forecast, "regularise", lambda *a, **k: pytest.fail("took the general path"))
            got = forecaster._given_panel(history)
        assert [s.key for s in got] == [s.key for s in expected] == ["A-1", "B 2", "C 3"]
        assert [s.code for s in got] == [s.code for s in expected] == [0, 1, -1]
        for mine, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(mine.times, theirs.times)
            assert mine.times.dtype == np.dtype("datetime64[ns]")
            np.testing.assert_array_equal(mine.y, theirs.y)
            np.testing.assert_array_equal(mine.known, theirs.known)


def test_a_gap_a_repeat_or_a_missing_value_leaves_the_fast_path():
    times = pd.date_range("2020-01-01", periods=12, freq="MS").as_unit("ns")
    frame = pd.DataFrame({"key": "a", "time": times, "y": np.arange(12.0)})
    for broken in (
        frame.drop(index=5),
        pd.concat([frame, frame.iloc[[3]]]),
        frame.assign(y=frame["y"].where(frame.index != 4)),
    ):
        snapped, steps, _ = forecast._snap(broken["time"].to_numpy(), "MS", None)
        assert forecast._already_regular(broken, snapped, steps) is None
        regular, _ = forecast.regularise(broken, "MS")
        assert len(regular) == 12 and regular["y"].notna().all()
