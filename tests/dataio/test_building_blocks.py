"""The engine's parts on their own: limits, error wording, the atomic Parquet sink, the gzip reader."""

import gzip
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits
from data.dataio._streams import GzipReader
from data.dataio.errors import fmt_bytes, fmt_count
from data.dataio.sink import ParquetSink


def test_limits_defaults():
    limits = Limits()
    assert limits.max_columns == 2_000
    assert limits.max_row_bytes == 10_000_000
    assert limits.max_gzip_ratio == 100
    assert limits.max_rows == 100_000_000
    assert limits.max_file_bytes == 20_000_000_000


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError):
        Limits(max_columns=0)
    with pytest.raises(ValueError):
        Limits(max_cell_bytes=20_000_000)


def test_wording_helpers():
    assert fmt_count(1204) == "1,204"
    assert fmt_bytes(2_000_000_000) == "2.0 GB"
    assert fmt_bytes(512) == "512 bytes"


def test_data_error_as_json():
    error = DataError("Row 3 has 2 fields; the header has 3.", code="ragged_row", row=3)
    assert error.to_json() == {
        "code": "ragged_row",
        "message": "Row 3 has 2 fields; the header has 3.",
        "row": 3,
        "column": None,
    }
    assert str(error) == error.message


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "assets"
    path.mkdir()
    return path


def test_sink_publishes_only_on_commit(folder):
    dest = folder / "v.parquet"
    schema = pa.schema([("a", pa.int64())])
    with ParquetSink(dest, schema, Limits(row_group_rows=10)) as sink:
        for start in range(0, 95, 7):
            sink.write(pa.record_batch([pa.array(range(start, min(start + 7, 95)))], schema=schema))
        assert not dest.exists()
        sink.commit()
    metadata = pq.ParquetFile(dest).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [10] * 9 + [5]
    assert pq.read_table(dest).column("a").to_pylist() == list(range(95))
    assert sorted(p.name for p in folder.iterdir()) == ["v.parquet"]


def test_sink_removes_its_temporary_file_on_error(folder):
    dest = folder / "v.parquet"
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(RuntimeError), ParquetSink(dest, schema, Limits()) as sink:
        sink.write(pa.record_batch([pa.array([1, 2])], schema=schema))
        raise RuntimeError("boom")
    assert list(folder.iterdir()) == []


def test_sink_reports_a_failure_of_its_writer_thread(folder, monkeypatch):
    monkeypatch.setattr(pa, "cpu_count", lambda: 2)
    dest = folder / "v.parquet"
    schema = pa.schema([("a", pa.int64())])
    sink = ParquetSink(dest, schema, Limits(row_group_rows=2))
    assert sink._thread is not None
    sink.write(pa.record_batch([pa.array([1])], schema=schema))  # opens the writer

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sink._writer, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        for _ in range(20):
            sink.write(pa.record_batch([pa.array([1, 2])], schema=schema))
        sink.commit()
    sink.abort()
    assert list(folder.iterdir()) == []
    assert not any(t.name == "parquet-sink" for t in threading.enumerate())


def test_sink_knows_the_schema_its_file_will_give_back_before_writing_it(folder, monkeypatch):
    monkeypatch.setattr(pa, "cpu_count", lambda: 2)
    schema = pa.schema(
        [
            ("when", pa.timestamp("s")),  # Parquet keeps milliseconds
            ("when utc", pa.timestamp("s", tz="UTC")),
            ("day", pa.date32()),
            ("plan", pa.string()),  # a label: written with a dictionary
            ("note", pa.string()),
            ("ok", pa.bool_()),
            ("empty", pa.null()),
            ("n", pa.int64()),
        ]
    )
    rows = [
        [1_700_000_000 + i, 1_700_000_000, 19_000 + i, "a" if i % 2 else "b", f"n{i}", i % 2 == 0, None, i]
        for i in range(40)
    ]
    columns = zip(*rows, strict=True)
    batch = pa.record_batch(
        [pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )
    with ParquetSink(folder / "v.parquet", schema, Limits(row_group_rows=16)) as sink:
        sink.write(batch)
        expected = sink.stored_schema()
        sink.hand_over()  # the thread writes the last row groups while we look
        assert expected.field("when").type == pa.timestamp("ms")
        assert sink.commit() == folder / "v.parquet"
    assert pq.ParquetFile(folder / "v.parquet").schema_arrow == expected
    assert pq.read_table(folder / "v.parquet").num_rows == 40


def test_sink_aborted_after_hand_over_leaves_nothing(folder, monkeypatch):
    monkeypatch.setattr(pa, "cpu_count", lambda: 2)
    schema = pa.schema([("a", pa.int64())])
    sink = ParquetSink(folder / "v.parquet", schema, Limits(row_group_rows=2))
    for _ in range(10):
        sink.write(pa.record_batch([pa.array([1, 2, 3])], schema=schema))
    sink.hand_over()
    sink.abort()  # what ingest does when profiling fails meanwhile
    assert list(folder.iterdir()) == []
    assert not any(t.name == "parquet-sink" for t in threading.enumerate())


def _sink_with_a_stuck_writer(folder, monkeypatch):
    """A sink of two-row groups whose writer thread blocks until the returned event is set."""
    monkeypatch.setattr(pa, "cpu_count", lambda: 2)
    schema = pa.schema([("a", pa.int64())])
    sink = ParquetSink(folder / "v.parquet", schema, Limits(row_group_rows=2))
    sink.write(pa.record_batch([pa.array([0, 0])], schema=schema))  # opens the writer: one group
    stuck, write = threading.Event(), sink._writer.write_table
    monkeypatch.setattr(sink._writer, "write_table", lambda *a, **k: stuck.wait(30) and write(*a, **k))
    for i in (1, 2):
        sink.write(pa.record_batch([pa.array([i, i])], schema=schema))  # three groups the writer owes
    return sink, schema, stuck


def test_sink_waits_while_its_writer_is_three_row_groups_behind(folder, monkeypatch):
    sink, schema, stuck = _sink_with_a_stuck_writer(folder, monkeypatch)
    fourth = threading.Thread(target=sink.write, args=(pa.record_batch([pa.array([3, 3])], schema=schema),))
    fourth.start()
    fourth.join(0.5)
    assert fourth.is_alive()  # each waiting group holds its rows in memory: three at most
    stuck.set()
    fourth.join(30)
    assert pq.read_table(sink.commit()).column("a").to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_sink_hands_over_the_last_rows_without_waiting_for_a_writer_that_is_behind(folder, monkeypatch):
    # The columns are then profiled while the writer catches up (one core sat idle before).
    sink, schema, stuck = _sink_with_a_stuck_writer(folder, monkeypatch)
    sink.write(pa.record_batch([pa.array([3])], schema=schema))  # the last, unfinished group
    handing_over = threading.Thread(target=sink.hand_over)
    handing_over.start()
    handing_over.join(10)
    assert not handing_over.is_alive()  # returned while the writer is still stuck
    stuck.set()
    assert pq.read_table(sink.commit()).column("a").to_pylist() == [0, 0, 1, 1, 2, 2, 3]


def test_gzip_reader_returns_full_reads_across_members(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"a" * 100_000) + gzip.compress(b"b" * 100_000) + b"\0" * 16)
    reader = GzipReader(path, Limits())
    pieces = []
    while piece := reader.read(30_000):
        pieces.append(piece)
    reader.close()
    assert b"".join(pieces) == b"a" * 100_000 + b"b" * 100_000
    assert [len(p) for p in pieces[:-1]] == [30_000] * (len(pieces) - 1)


def test_gzip_reader_refuses_trailing_garbage(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n") + b"garbage")
    reader = GzipReader(path, Limits())
    with pytest.raises(DataError, match="unexpected data after its end"):
        reader.read(1 << 20)


def test_sink_leaves_uncompressed_only_the_numbers_that_hardly_shrink(folder):
    rng = np.random.default_rng(0)
    n = 20_000
    schema = pa.schema(
        [("price in $", pa.float64()), ("rounded", pa.float64()), ("count", pa.int64()), ("note", pa.string())]
    )
    batch = pa.record_batch(
        [
            pa.array(rng.normal(100, 20, n)),  # random-looking floats: snappy saves little
            pa.array(rng.integers(0, 5, n) * 0.5),  # few distinct values: shrinks well
            pa.array(rng.integers(0, 1000, n), mask=rng.random(n) < 0.05),
            pa.array([f"row {i}" for i in range(n)]),
        ],
        schema=schema,
    )
    with ParquetSink(folder / "v.parquet", schema, Limits()) as sink:
        sink.write(batch)
        assert sink.uncompressed == {"price in $"}
        sink.commit()
    stored = pq.ParquetFile(folder / "v.parquet")
    codecs = {
        stored.metadata.row_group(0).column(i).path_in_schema: stored.metadata.row_group(0).column(i).compression
        for i in range(4)
    }
    assert codecs == {"price in $": "UNCOMPRESSED", "rounded": "SNAPPY", "count": "SNAPPY", "note": "SNAPPY"}
    assert pq.read_table(folder / "v.parquet").equals(pa.Table.from_batches([batch]))
