"""A messy house-price table for the regression tests: names with spaces and symbols, a date, gaps,
an id, a yes/no column, free text, and a numeric target "Sale Price ($)"."""

import csv

import numpy as np

TARGET = "Sale Price ($)"
COLUMNS = ["Listing ID", "Lot Area (sq ft)", "Neighbourhood / zone", "Sold on", "Has garage? (yes/no)", "Notes", TARGET]


def write_houses(path, rows: int = 120, *, zero_prices: bool = False) -> None:
    rng = np.random.default_rng(7)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "Listing ID",
                "Lot Area (sq ft)",
                "Neighbourhood / zone",
                "Sold on",
                "Has garage? (yes/no)",
                "Notes",
                TARGET,
            ]
        )
        for i in range(rows):
            area = int(rng.integers(2_000, 20_000))
            zone = ["Nord", "Süd", "East end", "Old town"][i % 4]
            garage = i % 3 != 0
            price = 40_000 + 9 * area + (25_000 if garage else 0) + ["Nord", "Süd"].count(zone) * 15_000
            price += int(rng.normal(0, 8_000))
            if zero_prices and i % 10 == 0:
                price = 0
            out.writerow(
                [
                    f"H-{1000 + i}",
                    "" if i % 17 == 3 else area,  # gaps
                    zone,
                    f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    "yes" if garage else "no",
                    ["quiet street", "needs work, roof", "", "close to the école"][i % 4],
                    "" if i % 29 == 11 else price,  # a few rows without a target
                ]
            )
