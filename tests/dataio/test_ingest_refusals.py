"""ingest, bad inputs: each is refused with a message that names the problem and where it is, and
nothing is left in the output directory."""

import gzip
import io
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, Sniffed, ingest, sniff

REPO = Path(__file__).resolve().parents[2]


def test_empty_file(work):
    assert work.refused(b"").message == "The file is empty."


def test_header_only(work):
    error = work.refused("id,name,price\n")
    assert error.message == "The file has a header but no data rows."
    assert error.code == "no_rows"


def test_ragged_row_names_the_row_and_the_counts(work):
    good = "".join(f"{i},a,b,c,d\n" for i in range(1, 1203))
    error = work.refused("id,v,w,x,y\n" + good + "1203,a,b,c,d,e,f\n" + "1204,a,b,c,d\n")
    assert error.row == 1_204  # the header is row 1
    assert error.message.startswith("Row 1,204 has 7 fields; the header has 5.")
    assert error.code == "ragged_row"


def test_short_row_in_a_file_without_header(work):
    error = work.refused("1,2,3\n4,5,6\n7,8\n")
    assert error.row == 3 and "Row 3 has 2 fields; the first row has 3." in error.message


def test_ragged_row_far_into_a_multi_block_file(work):
    good = "".join(f"{i},{i * 2}\n" for i in range(20_000))
    error = work.refused("a,b\n" + good + "1,2,3\n", limits=Limits(block_bytes=8_192))
    assert error.row == 20_002


def test_binary_file_named_csv(work):
    error = work.refused(b"a,b\n" + bytes(range(256)), "data.csv")
    assert "not text" in error.message and "NUL bytes" in error.message


def test_pickle(work):
    error = work.refused(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.", "data.csv")
    assert error.message.startswith("Pickle files are refused: they can run code when loaded")


def test_invalid_utf8_after_a_valid_sample(work):
    rows = "".join(f"{i},name{i}\n" for i in range(1, 70_001))
    data = ("id,name\n" + rows).encode() + b"70001,caf\xe9\n70002,ok\n"
    assert len(data) > 2 * 64 * 1024
    error = work.refused(data)
    assert error.code == "bad_encoding"
    assert error.row == 70_002  # 70,001 data rows below the header
    assert error.column == "name"
    assert error.message.startswith("Row 70,002 in column 2 ('name') is not valid UTF-8 text (byte 0xE9")


def test_duplicate_column_names(work):
    error = work.refused("id,price,name,price,name\n1,2,x,3,y\n")
    assert error.code == "duplicate_column" and error.column == "price"
    assert error.message.startswith(
        "Column 4 ('price') has the name of column 2. Column 5 ('name') has the name of column 3."
    )


def test_ten_thousand_columns_refused_by_ingest_itself(work):
    # The sniffer refuses this from the first row; the worker's own check is what this tests.
    names = ",".join(f"column_name_{i:05d}" for i in range(10_000))
    path = work.upload(names + "\n" + ",".join(["1"] * 10_000) + "\n")
    sniffed = Sniffed(
        format="csv",
        size=path.stat().st_size,
        encoding="utf-8",
        delimiter=",",
        quotechar='"',
        has_header=True,
        newline="\n",
        decimal=".",
    )
    with pytest.raises(DataError) as caught:
        ingest(path, sniffed, work.dest)
    assert caught.value.code == "too_many_columns"
    assert caught.value.message == "The file has 10,000 columns; the limit is 2,000."
    assert work.leftovers() == []


def test_ten_thousand_columns_refused_by_sniff(work):
    error = work.refused(",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n")
    assert error.code == "too_many_columns" and "10,000" in error.message


def test_one_100_mb_line_is_refused_quickly_with_bounded_memory(tmp_path):
    path = tmp_path / "upload.bin"
    with open(path, "wb") as f:
        f.write(b"id,blob\n1,")
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b"\n2,y\n")
    (tmp_path / "out").mkdir()
    script = """
import json, sys, time
from data.dataio import DataError, ingest, sniff
start = time.perf_counter()
try:
    ingest(sys.argv[1], sniff(sys.argv[1], "big.csv"), sys.argv[2])
except DataError as exc:
    error = exc.to_json()
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"error": error, "seconds": time.perf_counter() - start, "peak": peak}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "out" / "v.parquet")],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    import json

    report = json.loads(out.stdout)
    assert report["error"]["code"] == "row_too_long"
    assert report["error"]["row"] == 2
    assert report["error"]["message"].startswith("Row 2 is longer than 10.0 MB, the limit for one row")
    assert report["seconds"] < 5
    assert report["peak"] < 250e6  # the line is 100 MB; the interpreter and pyarrow take ~100 MB
    assert list((tmp_path / "out").iterdir()) == []


def test_a_value_over_the_cell_limit(work):
    error = work.refused("id,text\n1,short\n2," + "y" * 5_000 + "\n", limits=Limits(max_cell_bytes=1_000))
    assert error.code == "cell_too_long" and error.row == 3 and error.column == "text"
    assert "column 2 ('text')" in error.message


def gzip_bomb(expanded_mb: int) -> bytes:
    """Concatenated gzip members of 10 MB of "1,2" rows each: a few KB per member."""
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    one = member.compress(b"1,2\n" * (10 * 1024 * 1024 // 4)) + member.flush()
    return gzip.compress(b"a,b\n") + one * (expanded_mb // 10)


def test_gzip_bomb_is_stopped_early(work):
    bomb = gzip_bomb(2_000)  # 2 GB when expanded, 2 MB on disk (deflate's ratio is at most ~1,000×)
    assert len(bomb) < 3_000_000
    started = time.perf_counter()
    error = work.refused(bomb, "data.csv.gz")
    assert time.perf_counter() - started < 5
    assert error.code == "gzip_bomb"
    assert error.message.startswith("The .gz file expands more than 100× (stopped at ")
    assert error.message.endswith("refusing a possible decompression bomb.")


def test_gzip_over_the_decompressed_limit(work):
    data = gzip.compress(("a,b\n" + "".join(f"{i},{i * 7 % 13}\n" for i in range(50_000))).encode())
    error = work.refused(data, "x.csv.gz", limits=Limits(max_decompressed_bytes=100_000, max_gzip_ratio=10_000))
    assert error.code == "too_large" and "expands to more than 100.0 KB" in error.message


def test_truncated_gzip(work):
    data = gzip.compress(("a,b\n" + "".join(f"{i},{i}\n" for i in range(100_000))).encode())
    error = work.refused(data[: len(data) // 2], "x.csv.gz")
    assert error.code == "bad_gzip" and "truncated" in error.message


def parquet(table: pa.Table, **kwargs) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue()


def test_parquet_with_nested_columns(work):
    table = pa.table(
        {
            "id": [1, 2],
            "tags": [[1], [2, 3]],
            "meta": [{"a": 1}, {"a": 2}],
            "attrs": pa.array([[("k", "v")], []], pa.map_(pa.string(), pa.string())),
        }
    )
    error = work.refused(parquet(table), "nested.parquet")
    assert error.code == "nested_column" and error.column == "tags"
    for name in ("'tags'", "'meta'", "'attrs'"):
        assert name in error.message
    assert "'id'" not in error.message


def test_truncated_parquet(work):
    data = parquet(pa.table({"a": list(range(1000))}))
    error = work.refused(data[: len(data) - 50], "data.parquet")
    assert error.code == "bad_parquet"


def test_parquet_with_damaged_pages(work):
    data = bytearray(parquet(pa.table({"a": [float(i) for i in range(5000)]}), compression="snappy"))
    data[100:4000] = b"\xff" * 3900  # inside the column chunk; footer intact
    error = work.refused(bytes(data), "data.parquet")
    assert error.code == "bad_parquet" and "damaged" in error.message


def test_parquet_without_rows(work):
    assert work.refused(parquet(pa.table({"a": pa.array([], pa.int64())})), "e.parquet").code == "no_rows"


def test_parquet_with_duplicate_names(work):
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"])
    assert work.refused(parquet(table), "d.parquet").message.startswith("Column 2 ('x') has the name of column 1.")


def test_file_over_the_engine_size_limit(work):
    path = work.upload("a,b\n" + "1,2\n" * 100)
    sniffed = sniff(path, "x.csv")
    with pytest.raises(DataError) as caught:
        ingest(path, sniffed, work.dest, limits=Limits(max_file_bytes=100))
    assert caught.value.code == "too_large" and "the limit is 100 bytes" in caught.value.message
    assert work.leftovers() == []


def test_too_many_rows(work):
    error = work.refused("a\n" + "1\n" * 500, limits=Limits(max_rows=100))
    assert error.code == "too_many_rows" and "100 rows" in error.message


def test_unterminated_quote_in_the_last_column(work):
    text = 'id,note\n1,"fine"\n2,"never closed\n' + "".join(f"{i},x\n" for i in range(3, 100))
    error = work.refused(text)
    assert error.code == "unterminated_quote" and error.row == 3 and error.column == "note"
    assert error.message.startswith(
        "Row 3 has a quoted field that never ends in column 2 ('note'): an unmatched \" "
        "character took in the remaining 98 lines of the file."
    )


def test_unterminated_quote_in_a_middle_column(work):
    text = 'id,note,n\n1,"fine",1\n2,"never closed,2\n' + "".join(f"{i},x,{i}\n" for i in range(3, 100))
    error = work.refused(text)
    assert error.code == "ragged_row" and error.row == 3


def test_a_lone_literal_quote_is_accepted(work):
    work.ingest('item,size\npipe,5" wide\nbolt,2 mm\n')
    assert work.table().column("size").to_pylist() == ['5" wide', "2 mm"]


@pytest.mark.parametrize("end", ["\n", "\r\n", ""])
def test_a_lone_literal_quote_and_a_closed_line_break_in_the_last_value_are_accepted(work, end):
    """The odd quote count comes from ``5"``; the last value's line break is inside closed quotes."""
    text = 'item,size,note\npipe,5" wide,ok\nbolt,2 mm,"two\nlines"' + end
    work.ingest(text.replace("\n", "\r\n") if end == "\r\n" else text)
    note = work.table().column("note").to_pylist()
    assert [n.replace("\r\n", "\n") for n in note] == ["ok", "two\nlines"]


def test_a_closed_line_break_in_the_last_value_then_empty_values_is_accepted(work):
    work.ingest('item,size,note,n\npipe,5" wide,ok,1\nbolt,2 mm,"two\nlines",""\n')
    assert work.table().column("note").to_pylist() == ["ok", "two\nlines"]


def test_an_open_quote_hidden_by_a_lone_literal_quote_is_refused(work):
    """The count is even (``5"`` and the open one), yet the file ends inside the quotes."""
    text = 'id,note\n1,5" wide\n2,"never closed\n' + "".join(f"{i},x\n" for i in range(3, 50))
    error = work.refused(text)
    assert error.code == "unterminated_quote" and error.row == 3 and error.column == "note"
