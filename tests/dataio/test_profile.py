"""profile: statistics checked against pandas on a small frame; JSON-safe; warnings."""

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import Schema, profile
from data.dataio.types import ColumnSchema


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    price = rng.normal(50, 12, n).round(2)
    price[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "price": price,
            "count": pd.array(rng.integers(0, 1000, n), dtype="Int64"),
            "when": pd.to_datetime("2023-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h"),
            "colour": rng.choice(["red", "green", "blue", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "flag": rng.random(n) < 0.3,
            "mostly_gone": [1.0 if i % 3 == 0 else None for i in range(n)],
            "same": ["x"] * n,
            "code": [f"c{i}" for i in range(n)],
            "many": [f"label-{i % 120}" for i in range(n)],
        }
    )


SCHEMA = Schema(
    tuple(
        ColumnSchema(name, semantic, physical)
        for name, semantic, physical in [
            ("price", "numeric", "double"),
            ("count", "integer", "int64"),
            ("when", "datetime", "timestamp[us]"),
            ("colour", "categorical", "string"),
            ("flag", "boolean", "bool"),
            ("mostly_gone", "numeric", "double"),
            ("same", "categorical", "string"),
            ("code", "identifier", "string"),
            ("many", "categorical", "string"),
        ]
    )
)


@pytest.fixture
def report(frame, tmp_path) -> dict:
    path = tmp_path / "v.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return profile(path, SCHEMA)


def by_name(report: dict) -> dict:
    return {p["name"]: p for p in report["column_profiles"]}


def test_numbers_match_pandas(frame, report):
    price = by_name(report)["price"]
    expected = frame["price"].describe(percentiles=[0.05, 0.25, 0.5, 0.75, 0.95])
    assert price["missing"] == frame["price"].isna().sum()
    assert price["missing_pct"] == round(100 * frame["price"].isna().mean(), 2)
    assert price["distinct"] == frame["price"].nunique()
    for ours, theirs in [("min", "min"), ("max", "max"), ("mean", "mean"), ("std", "std")]:
        assert price[ours] == pytest.approx(expected[theirs], rel=1e-12)
    for q in (5, 25, 50, 75, 95):
        assert price["quantiles"][f"p{q}"] == pytest.approx(expected[f"{q}%"], rel=1e-12)
    counts, edges = np.histogram(frame["price"].dropna(), bins=30)
    assert price["histogram"]["counts"] == counts.tolist()
    assert price["histogram"]["edges"] == pytest.approx(edges.tolist())


def test_integers_match_pandas(frame, report):
    count = by_name(report)["count"]
    series = frame["count"].astype("float64")
    assert (count["min"], count["max"]) == (int(series.min()), int(series.max()))
    assert isinstance(count["min"], int)
    assert count["mean"] == pytest.approx(series.mean())
    assert count["std"] == pytest.approx(series.std())
    assert count["quantiles"]["p50"] == pytest.approx(series.median())
    assert count["distinct"] == series.nunique()


def test_datetimes_as_iso_text(frame, report):
    when = by_name(report)["when"]
    assert when["min"] == frame["when"].min().isoformat()
    assert when["max"] == frame["when"].max().isoformat()
    assert when["quantiles"]["p50"] == frame["when"].quantile(0.5).isoformat()
    assert when["std"] == pytest.approx(frame["when"].std().total_seconds(), rel=1e-9)
    assert len(when["histogram"]["edges"]) == 31 and sum(when["histogram"]["counts"]) == len(frame)


def test_top_values_match_pandas(frame, report):
    colour = by_name(report)["colour"]
    expected = frame["colour"].value_counts()
    assert [(t["value"], t["count"]) for t in colour["top_values"]] == list(expected.items())
    assert colour["missing"] == frame["colour"].isna().sum() and colour["distinct"] == 3
    flag = by_name(report)["flag"]
    assert {t["value"]: t["count"] for t in flag["top_values"]} == frame["flag"].value_counts().to_dict()
    many = by_name(report)["many"]
    assert len(many["top_values"]) == 10 and many["top_values"][0] == {"value": "label-0", "count": 4}


def test_text_lengths(report):
    assert by_name(report)["code"]["length"] == {"min": 2, "mean": pytest.approx(3.725), "max": 4}


def test_warnings(report):
    codes = {(w["column"], w["code"]) for w in report["warnings"]}
    assert codes == {
        ("mostly_gone", "mostly_missing"),
        ("mostly_gone", "constant"),
        ("same", "constant"),
        ("code", "identifier_like"),
        ("many", "high_cardinality"),
    }
    assert by_name(report)["mostly_gone"]["warnings"][1]["message"] == "Column 'mostly_gone' is 66.5 % missing."


def test_is_plain_json_without_nan(report):
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["rows"] == 400 and report["columns"] == 9


def test_infinities_and_empty_columns_give_none_not_nan(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"x": [1.0, math.inf, -math.inf, 2.0], "empty": pa.array([None] * 4, pa.float64())}), path)
    report = by_name(profile(path))
    assert report["x"]["infinite"] == 2 and report["x"]["max"] == 2.0
    assert report["empty"]["mean"] is None and report["empty"]["missing_pct"] == 100.0
    json.dumps(report, allow_nan=False)


def test_excluded_columns_are_not_profiled(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)
    schema = Schema((ColumnSchema("a", "integer", "int64"), ColumnSchema("b", "text", "string", excluded=True)))
    assert [p["name"] for p in profile(path, schema)["column_profiles"]] == ["a"]


def test_dates_and_zoned_timestamps(tmp_path):
    import datetime as dt

    path = tmp_path / "v.parquet"
    zone = dt.timezone(dt.timedelta(hours=2))
    pq.write_table(
        pa.table(
            {
                "day": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 3)], pa.date32()),
                "at": pa.array(
                    [dt.datetime(2024, 1, 1, 10, tzinfo=zone), dt.datetime(2024, 1, 1, 12, tzinfo=zone)],
                    pa.timestamp("us", tz="+02:00"),
                ),
            }
        ),
        path,
    )
    report = by_name(profile(path))
    assert (report["day"]["min"], report["day"]["max"], report["day"]["mean"]) == (
        "2024-01-01",
        "2024-01-03",
        "2024-01-02",
    )
    assert report["day"]["std"] == pytest.approx(2**0.5 * 86_400)
    assert report["at"]["min"] == "2024-01-01T10:00:00+02:00"
    assert report["at"]["quantiles"]["p50"] == "2024-01-01T11:00:00+02:00"


def test_text_counted_across_row_groups_with_different_dictionaries(tmp_path):
    path = tmp_path / "v.parquet"
    values = [f"v{i % 7}" if i < 500 else f"w{i % 5}" for i in range(1_000)] + [None] * 10
    pq.write_table(pa.table({"label": values}), path, row_group_size=300)
    report = by_name(profile(path, Schema((ColumnSchema("label", "categorical", "string"),))))["label"]
    expected = pd.Series(values).value_counts()
    assert report["distinct"] == len(expected) == 12
    assert [(t["value"], t["count"]) for t in report["top_values"]] == list(expected.items())[:10]
    assert report["missing"] == 10 and report["physical_type"] == "string"
    assert report["length"] == {"min": 2, "mean": 2.0, "max": 2}


def test_numbers_stored_as_text_are_inferred_from_a_dictionary_read(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"n": [str(i % 40) for i in range(400)]}), path, row_group_size=100)
    report = by_name(profile(path))["n"]
    assert report["semantic_type"] == "integer"


@pytest.mark.parametrize(
    "values, semantic",
    [
        (list(range(-3, 2_000)), "identifier"),  # all different: the first ten, once each
        ([7, -2, 7, None, -2, 7, 0, 1_000_000, 5, 5, 5, 5], "integer"),  # negatives, repeats, a wide range
        (np.array([3, 0, 3, 255, 3, 0], np.uint8), "integer"),  # small unsigned codes
        (np.array([-100, 100, 5, 5, -100, 5], np.int8), "integer"),  # a range wider than int8 itself
        (np.array([-30_000, 30_000, 7, 7], np.int16), "integer"),  # an uploaded Parquet's small types
        (list(range(2_000, 0, -1)) + [17, 17, None], "integer"),  # ids with one repeated
    ],
)
def test_integer_columns_counted_in_place_match_pandas(tmp_path, values, semantic):
    """Integers in a narrow range are sorted by counting, in place; the figures are pandas'."""
    path = tmp_path / "v.parquet"
    column = pa.array(values)
    pq.write_table(pa.table({"n": column}), path, row_group_size=700)
    report = by_name(profile(path, Schema((ColumnSchema("n", semantic, str(column.type)),))))["n"]
    series = pd.Series(column.to_pandas(), name="n").dropna().astype("int64")
    assert report["distinct"] == series.nunique() and report["missing"] == column.null_count
    if semantic == "integer":
        assert (report["min"], report["max"]) == (series.min(), series.max())
        assert report["quantiles"]["p50"] == pytest.approx(series.median())
    if semantic == "identifier" or series.nunique() <= 20:
        expected = series.value_counts().reset_index().sort_values(["count", "n"], ascending=[False, True])
        assert [(t["value"], t["count"]) for t in report["top_values"]] == list(expected.itertuples(index=False))[:10]


def test_two_columns_are_profiled_at_once_on_two_threads(monkeypatch):
    """The ingest profiles columns on pyarrow's threads: one column's sort must not wait for
    another's (functools.cached_property took one lock for every instance in Python 3.11, and two
    float columns then took as long on two threads as on one)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from data.dataio.profile import ColumnFacts, profile_column

    both_inside = threading.Barrier(2, timeout=10)
    cached = ColumnFacts.__dict__["sorted_values"]
    sort = cached.compute

    def sort_when_both_are_sorting(facts):
        both_inside.wait()  # raises BrokenBarrierError if the other thread cannot come in meanwhile
        return sort(facts)

    monkeypatch.setattr(cached, "compute", sort_when_both_are_sorting)
    rng = np.random.default_rng(5)
    columns = [pa.chunked_array([rng.normal(0, 1, 1_000)]) for _ in range(2)]
    schema = ColumnSchema("x", "numeric", "double")
    with ThreadPoolExecutor(max_workers=2) as pool:
        profiles = list(pool.map(lambda column: profile_column(schema, ColumnFacts(column), 1_000), columns))
    assert [p["distinct"] for p in profiles] == [1_000, 1_000]


def test_dates_sorted_as_days_have_the_figures_of_their_seconds(tmp_path):
    """A date column is sorted as days (by counting) and then made seconds: every figure is the
    one its values give as timestamps, with missing values and repeats."""
    import datetime as dt

    rng = np.random.default_rng(11)
    days = rng.integers(18_000, 18_400, 5_000).astype("int32")
    missing = rng.random(days.size) < 0.05
    path = tmp_path / "v.parquet"
    table = pa.table(
        {
            "day": pa.array(days, pa.date32(), mask=missing),
            "stamp": pa.array(days.astype("int64") * 86_400, pa.timestamp("s"), mask=missing),
        }
    )
    pq.write_table(table, path)
    columns = (ColumnSchema("day", "datetime", "date32[day]"), ColumnSchema("stamp", "datetime", "timestamp[ms]"))
    report = by_name(profile(path, Schema(columns)))
    day, stamp = report["day"], report["stamp"]

    def moments(figures):
        return [dt.datetime.fromisoformat(f) for f in figures]

    keys = ("min", "max", "mean")
    assert moments(day[k] for k in keys) == moments(stamp[k] for k in keys)
    assert moments(day["quantiles"].values()) == moments(stamp["quantiles"].values())
    assert moments(day["histogram"]["edges"]) == moments(stamp["histogram"]["edges"])
    assert day["histogram"]["counts"] == stamp["histogram"]["counts"]
    assert (day["distinct"], day["missing"]) == (stamp["distinct"], stamp["missing"])
    assert day["std"] == pytest.approx(stamp["std"], rel=1e-12)  # the stamps' in milliseconds, as Parquet keeps them
    assert day["distinct"] == len(np.unique(days[~missing])) and day["min"] == "2019-04-14"
