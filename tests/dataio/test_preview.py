"""read_page: pages across row-group boundaries, reading only the row groups needed."""

import datetime as dt
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, read_page


@pytest.fixture
def asset(tmp_path):
    path = tmp_path / "v.parquet"
    n = 2_500
    table = pa.table(
        {
            "id": list(range(n)),
            "name": [f"n{i}" for i in range(n)],
            "when": [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
            "score": [math.nan if i % 10 == 0 else i / 2 for i in range(n)],
        }
    )
    pq.write_table(table, path, row_group_size=1_000)
    return path


def test_page_across_a_row_group_boundary(asset, monkeypatch):
    read = []
    original = pq.ParquetFile.read_row_groups

    def spy(self, row_groups, *args, **kwargs):
        read.extend(row_groups)
        return original(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    page = read_page(asset, 950, 100)
    assert page.total_rows == 2_500
    assert page.columns == ["id", "name", "when", "score"]
    assert [row[0] for row in page.rows] == list(range(950, 1_050))
    assert read == [0, 1]  # not the third row group


def test_values_are_json_safe(asset):
    page = read_page(asset, 10, 2)
    assert page.rows == [[10, "n10", "2024-01-01T10:00:00", None], [11, "n11", "2024-01-01T11:00:00", 5.5]]


def test_chosen_columns_in_the_order_asked(asset):
    page = read_page(asset, 2_498, 10, columns=["score", "id"])
    assert page.columns == ["score", "id"]
    assert page.rows == [[1249.0, 2498], [1249.5, 2499]]


def test_past_the_end_and_empty_pages(asset):
    assert read_page(asset, 5_000, 10).rows == []
    assert read_page(asset, 0, 0).rows == []


def test_page_size_is_capped(asset):
    assert len(read_page(asset, 0, 10_000).rows) == 1_000


def test_unknown_column(asset):
    with pytest.raises(DataError):
        read_page(asset, 0, 10, columns=["nope"])


def test_negative_offset(asset):
    with pytest.raises(ValueError):
        read_page(asset, -1, 10)


def test_nanosecond_timestamps_come_back_as_microsecond_text(tmp_path):
    path = tmp_path / "ns.parquet"
    pq.write_table(pa.table({"t": pa.array([1_704_067_200_123_456_789], pa.timestamp("ns"))}), path)
    assert read_page(path, 0, 1).rows == [["2024-01-01T00:00:00.123456"]]
