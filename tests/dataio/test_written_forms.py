"""Values read as a spreadsheet wrote them: numbers with thousands separators are numbers, and a
boolean column remembers how the file spelled false and true (labels come back as written)."""

import threading

import pyarrow as pa
import pytest

from data.dataio import Limits, Schema, apply_schema
from data.dataio._streams import TextSource
from data.dataio.ingest import _CsvReader
from data.dataio.types import CastError, cast_column


def test_numbers_with_thousands_separators_are_numbers(work):
    rows = ["33.10", '"1,234.50"', '"12,345,678.00"', "-7.25", '"-1,000"'] * 12
    result = work.ingest("charges,units\n" + "".join(f"{r},{i}\n" for i, r in enumerate(rows)))
    assert result.schema.column("charges").semantic_type == "numeric"
    assert work.table()["charges"].to_pylist()[:5] == [33.1, 1234.5, 12345678.0, -7.25, -1000.0]


@pytest.mark.parametrize("text", ["1,5", "12,34", "1,2345", "1,234,5"])
def test_commas_that_are_not_thousands_separators_are_refused(text):
    with pytest.raises(CastError):
        cast_column(pa.array(["1", text]), "numeric")


@pytest.mark.parametrize(
    ("false", "true"), [("false", "true"), ("FALSE", "TRUE"), ("False", "True"), ("f", "t")], ids=str
)
def test_a_boolean_column_keeps_the_spelling_of_its_file(work, false, true):
    result = work.ingest("x,flag\n" + "".join(f"{i},{true if i % 3 else false}\n" for i in range(60)))
    column = result.schema.column("flag")
    assert (column.semantic_type, column.spelling) == ("boolean", (false, true))
    assert Schema.from_json(result.schema.to_json()).column("flag").spelling == (false, true)


def test_a_boolean_seen_only_true_gets_the_false_word_in_the_same_style(work):
    result = work.ingest("x,flag\n" + "".join(f"{i},{'TRUE' if i % 2 else ''}\n" for i in range(60)))
    assert result.schema.column("flag").spelling == ("FALSE", "TRUE")


def test_the_spelling_comes_from_whole_rows_when_the_first_block_ends_inside_a_quoted_note(work):
    # Each row's note holds line breaks, so the first block's last line break falls inside quotes.
    note = "\n".join(["line"] * 10)
    rows = "".join(f'{i},"{note} {i}",{"TRUE" if i % 3 else "FALSE"}\n' for i in range(400))
    result = work.ingest("id,note,paid\n" + rows, limits=Limits(block_bytes=4_096))
    assert result.schema.column("paid").spelling == ("FALSE", "TRUE")


def test_the_spelling_is_read_on_the_calling_thread_so_no_arrow_thread_reads_the_file_after_ingest(work, monkeypatch):
    # A streaming reader stopped after one batch went on reading ahead on Arrow's I/O thread, and a
    # process that exited meanwhile aborted (apache/arrow#33975).
    readers: list[tuple[str, bool]] = []
    in_spellings = threading.Event()
    read, spellings = TextSource.read, _CsvReader.spellings

    def spy_read(self, size=-1):
        if in_spellings.is_set():
            readers.append((threading.current_thread().name, self.closed))
        return read(self, size)

    def spy_spellings(self, names):
        in_spellings.set()
        try:
            return spellings(self, names)
        finally:
            in_spellings.clear()

    monkeypatch.setattr(TextSource, "read", spy_read)
    monkeypatch.setattr(_CsvReader, "spellings", spy_spellings)
    rows = "".join(f"{i},{'True' if i % 3 else 'False'},{i * 0.5}\n" for i in range(20_000))
    result = work.ingest("id,paid,amount\n" + rows, limits=Limits(block_bytes=16_384))
    assert result.schema.column("paid").spelling == ("False", "True")
    assert readers == [(threading.current_thread().name, False)]


def test_a_schema_edit_keeps_the_spelling_of_a_boolean(work, tmp_path):
    result = work.ingest("x,flag\n" + "".join(f"{i},{'Y' if i % 2 else 'N'}\n" for i in range(60)))
    assert result.schema.column("flag").semantic_type == "categorical"  # Y/N stay labels
    cast = work.ingest(work.uploads / "upload-1.bin", column_types={"flag": "boolean"})
    assert cast.schema.column("flag").spelling == ("N", "Y")
    edited = apply_schema(work.dest, tmp_path / "v2.parquet", cast.schema.edited(types={"x": "numeric"}))
    assert edited.schema.column("flag").spelling == ("N", "Y")


def test_times_of_day_stay_as_written(work):
    result = work.ingest(
        "shift,minutes\n" + "".join(f"{['06:00', '14:00', '22:30:15'][i % 3]},{i}\n" for i in range(60))
    )
    assert result.schema.column("shift").semantic_type == "categorical"
    assert work.table()["shift"].to_pylist()[:3] == ["06:00", "14:00", "22:30:15"]
