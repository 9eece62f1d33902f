"""A local copy of the contract's messy sales data (tests/ml/forecast_data.py::messy_sales, the
engine helper's) until that branch is merged; then the tests import the shared one."""

import numpy as np
import pandas as pd


def messy_sales(periods: int = 120, stores=("A-1", "B 2"), freq: str = "D", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for index, store in enumerate(stores):
        times = pd.date_range("2024-01-01", periods=periods, freq=freq)
        step = np.arange(periods)
        weekly = 8 * np.sin(2 * np.pi * step / 7)
        promo = rng.random(periods) < 0.2
        units = 50 + 10 * index + 0.2 * step + weekly + 6 * promo + rng.normal(0, 2, periods)
        frame = pd.DataFrame(
            {
                "Date": times.strftime("%Y-%m-%d"),
                "Store ID": store,
                "Units Sold": units.round(1),
                "Promo?": np.where(promo, "yes", "no"),
            }
        )
        frame.loc[rng.choice(periods, 2, replace=False), "Units Sold"] = np.nan
        if index == 0:
            frame = pd.concat([frame.drop(index=10), frame.iloc[[20]]])  # a missing day, a duplicated row
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
