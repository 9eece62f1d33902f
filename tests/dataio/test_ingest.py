"""ingest, good inputs: every dialect, encoding and container users upload comes back as the same values."""

import datetime as dt
import gzip
import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, Schema, ingest, profile, sniff

ROWS = [["1", "apple", "1.5"], ["2", "pear", "2.25"], ["3", "fig", "0.5"]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|", "^"])
def test_any_delimiter(work, delimiter):
    text = f"id{delimiter}fruit{delimiter}price\n" + "".join(delimiter.join(r) + "\n" for r in ROWS)
    result = work.ingest(text, "fruit.txt")
    table = work.table()
    assert table.column_names == ["id", "fruit", "price"]
    assert table.column("fruit").to_pylist() == ["apple", "pear", "fig"]
    assert table.column("price").to_pylist() == [1.5, 2.25, 0.5]
    assert result.rows == 3 and [c.semantic_type for c in result.schema.columns][2] == "numeric"


def test_quoted_fields_with_delimiters_quotes_and_line_breaks(work):
    text = 'id,comment\n1,"hello, world"\n2,"two\nlines"\n3,"say ""hi"""\n'
    work.ingest(text)
    assert work.table().column("comment").to_pylist() == ["hello, world", "two\nlines", 'say "hi"']


def test_crlf_line_endings(work):
    work.ingest("a,b\r\n1,x\r\n2,y\r\n")
    assert work.table().to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_old_mac_line_endings(work):
    work.ingest("a,b\r1,x\r2,y\r")
    assert work.table().to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_no_header_gets_numbered_names(work):
    result = work.ingest("1,2.5,x\n2,3.5,y\n3,4.5,z\n")
    assert result.schema.names == ["column_1", "column_2", "column_3"]
    assert work.table().column("column_3").to_pylist() == ["x", "y", "z"]
    assert result.rows == 3


def test_utf8_with_bom(work):
    work.ingest("\ufeffname,city\nAnna,Zürich\n".encode())
    assert work.table().to_pydict() == {"name": ["Anna"], "city": ["Zürich"]}


def test_latin1_comes_back_as_text(work):
    work.ingest("name;city\nMüller;Köln\nNuñez;Málaga\n".encode("latin-1"))
    assert work.table().to_pydict() == {"name": ["Müller", "Nuñez"], "city": ["Köln", "Málaga"]}


def test_windows_1252_punctuation_in_a_latin1_file(work):
    work.ingest("name;note\nMüller;costs 5 \u20ac \u2013 \u201cok\u201d\n".encode("cp1252"))
    assert work.table().column("note").to_pylist() == ["costs 5 € – “ok”"]


def test_gzip_csv(work):
    text = "id,colour\n" + "".join(f"{i},{'red' if i % 2 else 'blue'}\n" for i in range(5_000))
    result = work.ingest(gzip.compress(text.encode()), "colours.csv.gz")
    assert result.rows == 5_000
    assert work.table().column("colour").to_pylist()[:2] == ["blue", "red"]


def test_concatenated_gzip_members(work):
    work.ingest(gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n"), "x.csv.gz")
    assert work.table().to_pydict() == {"a": [1, 3], "b": [2, 4]}


def test_semicolon_file_with_decimal_commas(work):
    work.ingest("name;price\napple;1,5\npear;2,75\n")
    assert work.table().column("price").to_pylist() == [1.5, 2.75]


def test_leading_zeros_are_kept(work):
    result = work.ingest("zip,n\n01234,1\n10115,2\n00501,3\n")
    assert work.table().column("zip").to_pylist() == ["01234", "10115", "00501"]
    assert result.schema.column("zip").physical_type == "string"


def test_empty_column_names_are_renamed_with_a_warning(work):
    result = work.ingest(",name,\n0,a,x\n1,b,y\n")
    assert result.schema.names == ["column_1", "name", "column_3"]
    assert [w["code"] for w in result.warnings] == ["unnamed_column", "unnamed_column"]
    assert result.warnings[0]["message"] == "Column 1 has no name; it is called 'column_1'."


def test_renamed_column_does_not_take_an_existing_name(work):
    result = work.ingest("column_1,\n1,2\n")
    assert result.schema.names == ["column_1", "column_2"]


def test_parquet_in(work):
    sink = io.BytesIO()
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int32()),
            "label": pa.array(["a", "b", "a"]).dictionary_encode(),
            "score": pa.array([0.5, None, 1.5], pa.float32()),
            "when": pa.array([dt.date(2024, 1, d) for d in (1, 2, 3)], pa.date32()),
        }
    )
    pq.write_table(table, sink, row_group_size=2)
    result = work.ingest(sink.getvalue(), "data.parquet")
    out = work.table()
    assert out.schema.field("id").type == pa.int64()
    assert out.schema.field("label").type == pa.string()
    assert out.column("score").to_pylist() == [0.5, None, 1.5]
    assert out.column("when").to_pylist()[0] == dt.date(2024, 1, 1)
    assert result.rows == 3


def test_type_changes_after_the_first_block_are_read_as_text_then_inferred(work):
    # pyarrow infers types from the first block; these columns change type far below it.
    good = "".join(f"{i},{i},,{i}\n" for i in range(3_000))
    text = "a,b,sparse,late_float\n" + good + "x,3001,7,1.5\n"
    result = work.ingest(text, limits=Limits(block_bytes=4_096))
    types = {c.name: (c.semantic_type, c.physical_type) for c in result.schema.columns}
    assert types["a"] == ("identifier", "string")  # 3,001 different values, one of them not a number
    assert types["sparse"] == ("integer", "int64")
    assert types["late_float"] == ("numeric", "double")
    table = work.table()
    assert table.column("a").to_pylist()[-1] == "x"
    assert table.column("late_float").to_pylist()[-1] == 1.5
    assert table.column("sparse").to_pylist()[-1] == 7


def test_a_row_longer_than_one_block_is_read_with_bigger_blocks(work):
    text = "id,blob\n1,short\n2," + "x" * 50_000 + "\n3,short\n"
    work.ingest(text, limits=Limits(block_bytes=4_096, max_row_bytes=100_000, max_cell_bytes=100_000))
    assert [len(v) for v in work.table().column("blob").to_pylist()] == [5, 50_000, 5]


def test_writes_row_groups_and_reports_progress(work):
    text = "id,v\n" + "".join(f"{i},{i * 0.5}\n" for i in range(10_000))
    calls = []
    result = work.ingest(
        text,
        limits=Limits(block_bytes=16_384, row_group_rows=3_000),
        progress=lambda rows, done: calls.append((rows, done)),
    )
    metadata = pq.ParquetFile(work.dest).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [3_000, 3_000, 3_000, 1_000]
    assert len(calls) > 3 and calls[-1][0] == 10_000 and calls[-1][1] == len(text)
    assert result.rows == 10_000 and result.parquet_bytes == work.dest.stat().st_size


def test_type_overrides(work):
    result = work.ingest("code,amount\n1,10\n2,20\n3,30\n", column_types={"code": "categorical", "amount": "numeric"})
    assert result.schema.column("code").semantic_type == "categorical"
    assert result.schema.column("code").inferred_type == "integer"
    assert result.schema.column("amount").physical_type == "double"
    assert work.table().column("amount").to_pylist() == [10.0, 20.0, 30.0]


def test_override_that_does_not_fit_names_the_value(work):
    error = work.refused("name,n\nann,1\nbob,2\n", column_types={"name": "integer"})
    assert error.code == "cast_failed" and error.column == "name" and error.row == 1
    assert "'ann'" in error.message


def test_override_of_an_unknown_column(work):
    error = work.refused("a\n1\n", column_types={"b": "integer"})
    assert error.code == "unknown_column" and "'b'" in error.message


def test_the_profile_comes_with_the_result_and_matches_profile(work):
    text = "id,colour,size,when\n" + "".join(
        f"{i},{['red', 'blue'][i % 2]},{i % 7 * 1.5},2024-01-{i % 28 + 1:02d}\n" for i in range(300)
    )
    result = work.ingest(text)
    assert result.profile == profile(work.dest, result.schema)
    assert result.profile["rows"] == 300 and result.profile["columns"] == 4


def test_a_failed_ingest_leaves_an_existing_destination_untouched(work):
    work.dest.write_bytes(b"previous version")
    path = work.upload("a,b\n1,2\n1,2,3\n")
    with pytest.raises(DataError):
        ingest(path, sniff(path, "x.csv"), work.dest)
    assert work.dest.read_bytes() == b"previous version"
    assert work.leftovers() == ["version-1.parquet"]


def test_schema_survives_json(work):
    result = work.ingest("a,b\n1,x\n2,y\n")
    assert Schema.from_json(result.schema.to_json()) == result.schema


def test_parquet_types_are_made_plain(work):
    import decimal

    sink = io.BytesIO()
    table = pa.table(
        {
            "": pa.array([1, 2], pa.uint16()),
            "price": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2)),
            "raw": pa.array([b"abc", b"de"], pa.binary()),
            "at": pa.array([dt.time(10, 30), dt.time(11, 0)], pa.time32("s")),
            "stamp": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 1), None], pa.timestamp("ns")),
        }
    )
    pq.write_table(table, sink)
    result = work.ingest(sink.getvalue(), "typed.parquet")
    out = work.table()
    assert result.schema.names == ["column_1", "price", "raw", "at", "stamp"]
    assert result.warnings[0]["code"] == "unnamed_column"
    assert out.schema.field("column_1").type == pa.int64()
    assert out.column("price").to_pylist() == [1.25, None]
    assert out.column("raw").to_pylist() == ["abc", "de"]
    assert out.column("at").to_pylist() == ["10:30:00", "11:00:00"]
    assert result.schema.column("stamp").semantic_type == "datetime"


def test_parquet_binary_that_is_not_text(work):
    sink = io.BytesIO()
    pq.write_table(pa.table({"blob": pa.array([b"\xff\xfe\x00", b"ok"], pa.binary())}), sink)
    error = work.refused(sink.getvalue(), "b.parquet")
    assert error.column == "blob" and "not UTF-8 text" in error.message


def test_progress_counts_compressed_bytes_of_a_gzip(work):
    text = "a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(50_000))
    data = gzip.compress(text.encode())
    calls = []
    work.ingest(data, "x.csv.gz", limits=Limits(block_bytes=65_536), progress=lambda r, b: calls.append((r, b)))
    assert calls[-1] == (50_000, len(data))
    assert [r for r, _ in calls] == sorted(r for r, _ in calls)


CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"


@pytest.fixture
def two_cpus():
    """pyarrow on two CPUs (the test command sets one): columns are then profiled side by side."""
    before = pa.cpu_count()
    pa.set_cpu_count(2)
    yield
    pa.set_cpu_count(before)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.csv")))
def test_columns_kept_in_memory_give_the_profile_of_the_written_file(work, two_cpus, name):
    """A file within in_memory_text_bytes is typed and profiled from its parsed columns (several at
    a time); a larger one from the Parquet read back one column at a time: the same document."""
    path = CORPUS / name
    blocks = {"block_bytes": 16_384, "row_group_rows": 2_000}  # many chunks per column, several row groups
    kept = work.ingest(path, name, limits=Limits(**blocks))
    kept_file = work.table()
    read_back = work.ingest(path, name, limits=Limits(in_memory_text_bytes=1, **blocks))
    assert kept.schema == read_back.schema
    assert kept.profile == read_back.profile == profile(work.dest, read_back.schema)
    assert kept_file.equals(work.table())


def test_in_memory_and_read_back_agree_on_seconds_nan_labels_and_late_text(work, two_cpus):
    rows = ["when,ratio,label,code"]
    for i in range(3_000):
        ratio = "nan" if i % 11 == 0 else ("" if i % 13 == 0 else f"{i / 7:.3f}")
        code = "X9" if i == 2_500 else str(i % 40)  # text after the first block: read again as text
        rows.append(f"2024-03-{i % 28 + 1:02d} 10:{i % 60:02d}:05,{ratio},{['a b', 'c', ''][i % 3]},{code}")
    text = "\n".join(rows) + "\n"
    kept = work.ingest(text, limits=Limits(block_bytes=8_192))
    read_back = work.ingest(text, limits=Limits(block_bytes=8_192, in_memory_text_bytes=1))
    assert [c.physical_type for c in kept.schema.columns] == ["timestamp[ms]", "double", "string", "string"]
    assert kept.profile == read_back.profile
    assert kept.profile["column_profiles"][1]["missing"] == read_back.profile["column_profiles"][1]["missing"] > 0


def test_with_sha256_the_result_carries_the_written_files_digest(work):
    text = "id,city,when\n" + "".join(f"{i},{['Oslo', 'Lima'][i % 2]},2024-01-{i % 28 + 1:02d}\n" for i in range(500))
    assert work.ingest(text).sha256 is None
    result = work.ingest(text, with_sha256=True)
    assert result.sha256 == hashlib.sha256(work.dest.read_bytes()).hexdigest()
    # A cast column makes the engine write the file again: the caller hashes that one itself.
    assert work.ingest(text, with_sha256=True, column_types={"id": "numeric"}).sha256 is None
