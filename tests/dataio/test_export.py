"""iter_csv: streamed CSV that round-trips, with spreadsheet formulas neutralised."""

import csv
import io

import pyarrow as pa
import pyarrow.parquet as pq

from data.dataio import Schema, iter_csv
from data.dataio.types import ColumnSchema


def test_round_trip_through_ingest(work):
    text = "id,price,colour,when,flag,note\n" + "".join(
        f"{i},{i * 1.25},{['red', 'blue'][i % 2]},2024-03-{i % 28 + 1:02d} 10:00:00,{'true' if i % 3 else 'false'},"
        f'"line {i}, with comma"\n'
        for i in range(3_000)
    )
    result = work.ingest(text)
    original = work.table()
    chunks = list(iter_csv(work.dest, result.schema, batch_rows=1_000))
    assert len(chunks) == 4  # the header, then one chunk per 1,000 rows
    again = work.ingest(b"".join(chunks), "export.csv")
    assert again.schema == result.schema
    assert work.table().equals(original)


def test_formulas_are_neutralised_and_numbers_stay_numbers(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(
        pa.table(
            {
                "=cmd": ["=1+1", "+SUM(A1)", "-2+3", "@A1", "\tx", "\rx", "\0x", "safe", None],
                "amount": [-5, 3, -1, 0, 1, 2, 3, 4, 5],
                "ratio": [-0.5, 1.0, None, 1.5, 2.0, 0.0, -3.25, 1.0, 2.0],
            }
        ),
        path,
    )
    text = b"".join(iter_csv(path)).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["'=cmd", "amount", "ratio"]
    assert [r[0] for r in rows[1:]] == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@A1", "'\tx", "'\rx", "'\0x", "safe", ""]
    assert [r[1] for r in rows[1:3]] == ["-5", "3"]
    assert rows[1][2] == "-0.5" and rows[3][2] == ""
    assert '"-5"' not in text  # numbers are not quoted as text


def test_excluded_columns_are_left_out(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"a": [1], "secret": ["x"], "b": ["y"]}), path)
    schema = Schema(
        (
            ColumnSchema("a", "integer", "int64"),
            ColumnSchema("secret", "text", "string", excluded=True),
            ColumnSchema("b", "text", "string"),
        )
    )
    assert b"".join(iter_csv(path, schema)).decode() == 'a,b\n1,"y"\n'


def test_excel_bom(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"name": ["Müller"]}), path)
    data = b"".join(iter_csv(path, bom=True))
    assert data.startswith(b"\xef\xbb\xbfname\n") and "Müller".encode() in data
