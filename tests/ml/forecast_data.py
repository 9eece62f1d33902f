"""The one maker of messy forecasting test data (shared by the engine, jobs and UI tests)."""

import numpy as np
import pandas as pd


def messy_sales(periods: int = 120, stores=("A-1", "B 2"), freq: str = "D", seed: int = 0) -> pd.DataFrame:
    """Sales of a few stores as a user uploads them: ``Date`` as text ("2024-01-31"), ``Store ID`` with
    a dash or a space, ``Units Sold`` (float, a few missing) with a weekly season (a yearly one for
    monthly data), a trend and noise, ``Promo?`` ("yes"/"no", known ahead, adds sales); the first
    store misses one timestamp and repeats another row."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=periods, freq=freq)
    season_length = {"D": 7, "MS": 12, "W-MON": 52, "h": 24}.get(freq, 7)
    rows = []
    for i, store in enumerate(stores):
        level = 50.0 + 25.0 * i
        phase = np.arange(periods) % season_length
        season = 8.0 * np.sin(2 * np.pi * phase / season_length) + 4.0 * (phase == season_length - 1)
        promo = rng.random(periods) < 0.2
        units = level + 0.1 * np.arange(periods) + season + 6.0 * promo + rng.normal(0, 1.5, periods)
        frame = pd.DataFrame(
            {
                "Date": times.strftime("%Y-%m-%d" if (times == times.normalize()).all() else "%Y-%m-%d %H:%M"),
                "Store ID": store,
                "Units Sold": units.round(1),
                "Promo?": np.where(promo, "yes", "no"),
            }
        )
        if i == 0:
            frame = frame.drop(index=periods // 2)  # one missing timestamp
            frame = pd.concat([frame, frame.iloc[[10]]])  # one duplicated row
        frame.loc[frame.sample(frac=0.02, random_state=seed + i).index, "Units Sold"] = np.nan
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)
