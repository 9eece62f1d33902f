"""An upload read while it arrives (data.dataio.arriving): the same version as the whole file, in
halves too; a refused, cut off or stalled upload stops its reader with a clear error."""

import gzip
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, ingest, sniff
from data.dataio.arriving import (
    arrival,
    expected_size,
    mark_arriving,
    mark_received,
    mark_refused,
    mark_written,
    open_bytes,
    state_path,
    wait_for,
    wait_for_verdict,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
SMALL_BLOCKS = Limits(halves_from_bytes=1, block_bytes=4_096, row_group_rows=2_000)
MESSY = "Customer ID,Full name,Signed up,Monthly £,Churned?,Notes\n" + "".join(
    f"C-{i:05d},{['Ana Lima', 'Jo Smith', ''][i % 3]},2024-0{i % 9 + 1}-1{i % 9},"
    f'{"" if i % 7 == 0 else f"{i * 1.25:.2f}"},{["yes", "no"][i % 2]},"said ""hi"",\nthen left"\n'
    for i in range(3_000)
)


class Upload(threading.Thread):
    """Writes ``data`` to ``path`` a piece at a time, as a web process receiving it would, then
    marks it written and received (or stops after ``stop_after`` bytes and does ``then``)."""

    def __init__(self, path: Path, data: bytes, *, piece=7_000, pause=0.002, stop_after=None, then=None):
        super().__init__(daemon=True)
        self.path, self.data, self.piece, self.pause = path, data, piece, pause
        self.stop_after, self.then = stop_after, then
        path.write_bytes(b"")
        mark_arriving(path, expected_size=len(data) + 300, stale_seconds=30)  # announced: a bit more

    def run(self):
        with open(self.path, "ab") as fh:
            for start in range(0, len(self.data), self.piece):
                if self.stop_after is not None and start >= self.stop_after:
                    self.then(self.path)
                    return
                fh.write(self.data[start : start + self.piece])
                fh.flush()
                time.sleep(self.pause)
        mark_written(self.path, size=len(self.data), stale_seconds=30)
        time.sleep(0.05)  # the upload's checks
        mark_received(self.path, size=len(self.data))


def ingest_arriving(tmp_path, data: bytes, name="data.csv", limits=SMALL_BLOCKS, **upload):
    path = tmp_path / "1.upload"
    writer = Upload(path, data, **upload)
    writer.start()
    try:
        wait_for(path, 64 * 1024 + 1)
        sniffed = sniff(path, name, limits=limits)
        result = ingest(path, sniffed, tmp_path / "arrived.parquet", limits=limits)
    finally:
        writer.join()
    return path, result


def ingest_whole(tmp_path, data: bytes, name="data.csv", limits=SMALL_BLOCKS):
    path = tmp_path / name
    path.write_bytes(data)
    return ingest(path, sniff(path, name, limits=limits), tmp_path / "whole.parquet", limits=limits)


@pytest.fixture
def two_cores():
    before = pa.cpu_count()
    pa.set_cpu_count(2)  # the halves need two (the test command sets one)
    yield
    pa.set_cpu_count(before)


def test_a_messy_file_read_as_it_arrives_is_the_version_the_whole_file_makes(tmp_path, two_cores):
    data = MESSY.encode()
    path, arrived = ingest_arriving(tmp_path, data, "customers 2024.csv")
    whole = ingest_whole(tmp_path, data, "customers 2024.csv")
    assert (arrived.rows, arrived.schema, arrived.profile) == (whole.rows, whole.schema, whole.profile)
    assert pq.read_table(tmp_path / "arrived.parquet").equals(pq.read_table(tmp_path / "whole.parquet"))
    assert arrived.rows == 3_000 and arrived.schema.columns[2].semantic_type == "datetime"
    assert arrival(path).state == "received"


@pytest.mark.parametrize("name", ["spreadsheet_export.csv", "unicode_names.csv", "clinic_visits.csv"])
def test_corpus_files_arriving_slowly_in_halves(tmp_path, two_cores, name):
    data = (CORPUS / name).read_bytes()
    _, arrived = ingest_arriving(tmp_path, data, name, piece=500)
    whole = ingest_whole(tmp_path, data, name)
    assert (arrived.rows, arrived.schema, arrived.profile) == (whole.rows, whole.schema, whole.profile)


def test_a_gzip_file_is_read_as_it_arrives_and_a_parquet_one_once_whole(tmp_path):
    data = gzip.compress(MESSY.encode())
    _, arrived = ingest_arriving(tmp_path, data, "customers.csv.gz")
    assert arrived.rows == 3_000

    table = pa.table({"id": list(range(5_000)), "city": ["Oslo", "Lima"] * 2_500})
    pq.write_table(table, tmp_path / "t.parquet")
    path = tmp_path / "2.upload"
    writer = Upload(path, (tmp_path / "t.parquet").read_bytes(), piece=2_000)
    writer.start()
    wait_for(path)  # the whole file: a Parquet file's footer is at its end
    assert path.stat().st_size == (tmp_path / "t.parquet").stat().st_size
    result = ingest(path, sniff(path, "t.parquet"), tmp_path / "p.parquet")
    writer.join()
    assert result.rows == 5_000


@pytest.mark.parametrize(
    ("then", "code", "words"),
    [
        (lambda path: mark_refused(path, "This file is identical to sales v2."), "upload_refused", "identical"),
        (lambda path: state_path(path).unlink(), "upload_interrupted", "cut off"),
    ],
)
def test_a_refused_or_cut_off_upload_stops_its_reader_with_the_reason(tmp_path, then, code, words):
    data = MESSY.encode()
    with pytest.raises(DataError) as caught:
        ingest_arriving(tmp_path, data, stop_after=len(data) // 2, then=then)
    assert caught.value.code == code and words in caught.value.message
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".*stage"))


def test_an_upload_nobody_writes_to_is_given_up_after_its_stale_time(tmp_path):
    path = tmp_path / "3.upload"
    path.write_bytes(b"a,b\n1,2\n")
    mark_arriving(path, expected_size=1_000, stale_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(DataError, match="No byte of the upload arrived for 0 s"), open_bytes(path) as fh:
        fh.read(1_000)
    assert 0.3 <= time.monotonic() - started < 3


def test_the_verdict_waits_for_the_upload_checks(tmp_path):
    path = tmp_path / "4.upload"
    path.write_bytes(b"a,b\n1,2\n")
    mark_written(path, size=8, stale_seconds=30)
    assert expected_size(path) == 8 and open_bytes(path).read() == b"a,b\n1,2\n"  # read to its end at once
    threading.Timer(0.1, lambda: mark_received(path, size=8)).start()
    wait_for_verdict(path)
    assert arrival(path).state == "received"

    mark_refused(path, "The file is larger than the upload limit.")
    with pytest.raises(DataError, match="larger than the upload limit"):
        wait_for_verdict(path)
    state_path(path).unlink()
    with pytest.raises(DataError, match="cut off"):
        wait_for_verdict(path)


def test_a_file_that_was_never_streamed_reads_as_it_is(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert arrival(path) is None and expected_size(path) == 8
    wait_for(path)
    with open_bytes(path) as fh:
        assert fh.read(100) == b"a,b\n1,2\n"
