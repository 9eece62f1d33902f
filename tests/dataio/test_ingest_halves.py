"""ingest in two halves (a large CSV on a node with two cores): the same file, schema, profile and
errors as one reader, whichever way the halves meet."""

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from data.dataio import DataError, Limits

ingest_module = __import__("data.dataio.ingest", fromlist=["SecondHalf"])
CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
SMALL_BLOCKS = {"block_bytes": 4_096, "row_group_rows": 2_000}
HALVES = Limits(halves_from_bytes=1, **SMALL_BLOCKS)
ONE_READER = Limits(halves_from_bytes=10**12, **SMALL_BLOCKS)


@pytest.fixture
def halves(monkeypatch):
    """pyarrow on two CPUs (the test command sets one); counts the second halves started."""
    before = pa.cpu_count()
    pa.set_cpu_count(2)
    started = []

    class Counted(ingest_module.SecondHalf):
        def start(self):
            started.append(self)
            super().start()

    monkeypatch.setattr(ingest_module, "SecondHalf", Counted)
    yield started
    pa.set_cpu_count(before)


def both_ways(work, data, name="data.csv", **kwargs):
    """Ingest in halves and with one reader; return both results and tables."""
    in_halves = work.ingest(data, name, limits=HALVES, **kwargs)
    halves_table = work.table()
    one = work.ingest(data, name, limits=ONE_READER, **kwargs)
    return in_halves, halves_table, one, work.table()


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.csv")))
def test_every_corpus_file_in_halves_is_the_file_one_reader_writes(work, halves, name):
    in_halves, table, one, one_table = both_ways(work, CORPUS / name, name)
    assert halves, "the halves were not used"
    assert in_halves.schema == one.schema
    assert in_halves.profile == one.profile
    assert in_halves.rows == one.rows and table.equals(one_table)


def test_quoted_line_breaks_across_the_middle(work, halves):
    rows = [f'{i},"note {i}\nsecond line, with a comma",{i * 0.5}' for i in range(4_000)]
    text = "id,note,score\n" + "\n".join(rows) + "\n"
    in_halves, table, one, one_table = both_ways(work, text)
    assert halves and table.equals(one_table) and in_halves.profile == one.profile
    assert table.column("note").to_pylist()[2_500] == "note 2500\nsecond line, with a comma"


@pytest.mark.parametrize("quoted_last", [False, True])
def test_a_literal_quote_that_misleads_the_middle_is_caught(work, halves, quoted_last):
    # One literal quote (5" pipe) early on makes the count odd: the line break the guess takes is
    # inside a quoted value. The first half then ends inside quotes (a short row, or a last value
    # holding the line break), and one reader reads the file.
    def row(i, item):
        return f"{i},{i},{item}" if quoted_last else f"{i},{item},{i}"

    rows = [row(0, '5" pipe')] + [row(i, f'"part {i}\nof a note"') for i in range(1, 3_999)] + [row(3_999, "end")]
    text = ("id,qty,item\n" if quoted_last else "id,item,qty\n") + "\n".join(rows) + "\n"
    in_halves, table, one, one_table = both_ways(work, text)
    assert halves, "the halves were tried"
    assert table.equals(one_table) and in_halves.schema == one.schema and in_halves.profile == one.profile
    assert table.column("item").to_pylist()[:2] == ['5" pipe', "part 1\nof a note"]
    assert table.num_rows == 4_000


def test_a_column_that_turns_to_text_in_the_second_half(work, halves):
    rows = [f"{i},{i % 7},{i * 1.5}" for i in range(6_000)]
    rows[5_000] = "5000,X9,7500.0"
    text = "id,code,amount\n" + "\n".join(rows) + "\n"
    in_halves, table, one, one_table = both_ways(work, text)
    assert halves and table.equals(one_table) and in_halves.schema == one.schema
    assert in_halves.schema.column("code").physical_type == "string"
    assert table.column("code").to_pylist()[5_000] == "X9"


def test_progress_ends_at_the_files_size(work, halves):
    text = "id,v\n" + "".join(f"{i},{i * 0.5}\n" for i in range(10_000))
    calls = []
    work.ingest(text, limits=HALVES, progress=lambda rows, done: calls.append((rows, done)))
    assert halves and calls[-1] == (10_000, len(text))
    assert [rows for rows, _ in calls] == sorted(rows for rows, _ in calls)


def refused_both_ways(work, data, limits=None) -> DataError:
    extra = limits or {}
    in_halves = work.refused(data, limits=Limits(halves_from_bytes=1, **{**SMALL_BLOCKS, **extra}))
    one = work.refused(data, limits=Limits(halves_from_bytes=10**12, **{**SMALL_BLOCKS, **extra}))
    assert in_halves.to_json() == one.to_json()
    return in_halves


def test_a_ragged_row_in_the_second_half_names_its_row(work, halves):
    rows = "".join(f"{i},a,b\n" for i in range(1, 6_001))
    error = refused_both_ways(work, "id,v,w\n" + rows + "6001,a,b,c\n" + "6002,a,b\n")
    assert halves and error.code == "ragged_row" and error.row == 6_002


def test_bad_utf8_in_the_second_half_names_its_row(work, halves):
    rows = "".join(f"{i},name{i}\n" for i in range(1, 20_001))
    error = refused_both_ways(work, ("id,name\n" + rows).encode() + b"20001,caf\xe9\n20002,ok\n")
    assert halves and error.code == "bad_encoding" and error.row == 20_002 and error.column == "name"


def test_a_long_value_in_the_second_half_names_its_row(work, halves):
    rows = [f"{i},short" for i in range(1, 6_001)]
    rows[4_999] = "5000," + "y" * 2_000
    error = refused_both_ways(work, "id,text\n" + "\n".join(rows) + "\n", {"max_cell_bytes": 1_000})
    assert halves and error.code == "cell_too_long" and error.row == 5_001 and error.column == "text"


def test_a_quote_left_open_in_the_second_half(work, halves):
    rows = "".join(f"{i},fine\n" for i in range(1, 6_001))
    error = refused_both_ways(work, "id,text\n" + rows + '6001,"never closed\n6002,more\n')
    assert halves and error.code == "unterminated_quote" and error.row == 6_002


def test_small_files_and_gzip_are_read_by_one_reader(work, halves):
    text = "id,v\n" + "".join(f"{i},{i}\n" for i in range(1_000))
    work.ingest(text, limits=Limits(**SMALL_BLOCKS))  # below halves_from_bytes (32 MB)
    result = work.ingest(gzip.compress(text.encode()), "data.csv.gz", limits=HALVES)  # no seeking inside a .gz
    assert halves == [] and result.rows == 1_000
