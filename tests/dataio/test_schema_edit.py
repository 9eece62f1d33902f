"""apply_schema: a new version with changed types and excluded columns; a failed cast writes nothing."""

import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, apply_schema

CSV = "id,amount,grade,comment,code\n" + "".join(
    f"{i},{i * 3},{['a', 'b', 'c'][i % 3]},{'note ' + str(i)},{'x' if i == 1_504 else i}\n" for i in range(3_000)
)


@pytest.fixture
def version(work):
    result = work.ingest(CSV, limits=Limits(row_group_rows=1_000))
    return work, result


def test_cast_and_exclude(version):
    work, result = version
    new_schema = result.schema.edited(types={"amount": "numeric", "grade": "text"}, exclude=["comment"])
    dest = work.out / "version-2.parquet"
    edited = apply_schema(work.dest, dest, new_schema)
    table = pq.read_table(dest)
    assert table.column_names == ["id", "amount", "grade", "code"]
    assert table.schema.field("amount").type == "double"
    assert table.column("amount").to_pylist()[:3] == [0.0, 3.0, 6.0]
    assert [c.name for c in edited.schema.columns] == ["id", "amount", "grade", "code"]
    assert edited.schema.column("amount").semantic_type == "numeric"
    assert edited.schema.column("amount").inferred_type == "integer"
    assert edited.rows == 3_000
    assert pq.ParquetFile(work.dest).schema_arrow.names == ["id", "amount", "grade", "comment", "code"]  # untouched


def test_failed_cast_names_column_row_and_value_and_writes_nothing(version):
    work, result = version
    dest = work.out / "version-2.parquet"
    with pytest.raises(DataError) as caught:
        apply_schema(work.dest, dest, result.schema.edited(types={"code": "integer"}))
    error = caught.value
    assert error.code == "cast_failed" and error.column == "code" and error.row == 1_505
    assert error.message == "Column 'code' cannot be converted to integer: data row 1,505 holds 'x'."
    assert work.leftovers() == ["version-1.parquet"]


def test_schema_must_match_the_file(version):
    work, result = version
    schema = result.schema.__class__(result.schema.columns[:-1])
    with pytest.raises(DataError) as caught:
        apply_schema(work.dest, work.out / "v2.parquet", schema)
    assert "leaves out 'code'" in caught.value.message


def test_excluding_every_column_is_refused(version):
    work, result = version
    with pytest.raises(DataError):
        apply_schema(work.dest, work.out / "v2.parquet", result.schema.edited(exclude=result.schema.names))
    assert work.leftovers() == ["version-1.parquet"]


def test_text_to_datetime_finds_the_date_format(work):
    result = work.ingest("when,n\n31/12/2024,1\n01/02/2024,2\n", column_types={"when": "text"})
    assert result.schema.column("when").physical_type == "string"
    dest = work.out / "version-2.parquet"
    edited = apply_schema(work.dest, dest, result.schema.edited(types={"when": "datetime"}))
    assert edited.schema.column("when").physical_type == "timestamp[us]"
    assert [(v.day, v.month) for v in pq.read_table(dest).column("when").to_pylist()] == [(31, 12), (1, 2)]


def test_text_that_is_not_a_date(work):
    result = work.ingest("when\n2024-01-01\nsoon\n", column_types={"when": "text"})
    with pytest.raises(DataError) as caught:
        apply_schema(work.dest, work.out / "v2.parquet", result.schema.edited(types={"when": "datetime"}))
    assert caught.value.message == "Column 'when' cannot be converted to datetime: data row 2 holds 'soon'."
