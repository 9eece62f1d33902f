"""An upload ingested in a process of its own (``own_process``): the same result as ``ingest`` in the
caller's process, the same errors, and a process that dies or is cancelled is reported, not waited on."""

import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, sniff
from data.dataio.own_process import IngestProcess, IngestProcessDied, ingest_in_own_process

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
SMALL_BLOCKS = Limits(block_bytes=16_384, row_group_rows=2_000, halves_from_bytes=50_000)


@pytest.fixture(autouse=True)
def no_spare_left():
    """Each test starts without a spare helper and leaves none running."""
    IngestProcess.prepare_spare()  # so that the first call here finds one (as a busy node does)
    yield
    helper, IngestProcess._spare = IngestProcess._spare, None
    if helper is not None:
        helper.stop()


@pytest.mark.parametrize("name", ["churn.csv", "clinic_visits.csv", "spreadsheet_export.csv", "unicode_names.csv"])
def test_the_own_process_gives_what_ingest_gives_without_pandas(work, name):
    path = CORPUS / name
    here = work.ingest(path, name, limits=SMALL_BLOCKS, with_sha256=True)
    here_table = work.table()
    there, peak = ingest_in_own_process(
        path, sniff(path, name), work.dest, limits=SMALL_BLOCKS, cores=2, with_sha256=True
    )
    assert there == here  # schema, spellings, rows, size, warnings, profile and the file's SHA-256
    assert pq.read_table(work.dest).equals(here_table)
    assert 20e6 < peak < 1e9


def test_the_helper_never_loads_pandas_and_is_ready_before_it_is_asked(work):
    path = CORPUS / "sensors.csv"
    helper = IngestProcess.spare()
    time.sleep(0.2)
    assert helper.popen.poll() is None  # the spare waits for its ingest
    helper.run(
        path=str(path), sniffed=sniff(path, "sensors.csv"), dest_parquet=str(work.dest), limits=Limits(), cores=1
    )
    assert helper.facts["pandas_loaded"] is False
    assert helper.popen.poll() is not None  # one ingest, then it is gone


def test_each_call_takes_the_spare_and_leaves_a_new_one(work):
    path = CORPUS / "grades.csv"
    spare = IngestProcess._spare
    ingest_in_own_process(path, sniff(path, "grades.csv"), work.dest, limits=Limits(), cores=1)
    assert spare.popen.poll() is not None  # it served this call and exited
    assert IngestProcess._spare is not None and IngestProcess._spare is not spare
    assert IngestProcess._spare.popen.poll() is None


def test_a_data_error_arrives_with_its_code_row_and_column(work):
    path = work.upload("id,city\n1,Oslo\n2,Lima,extra\n3,Kyiv\n")
    with pytest.raises(DataError) as caught:
        ingest_in_own_process(path, sniff(path, "bad.csv"), work.dest, limits=Limits(), cores=1)
    assert (caught.value.code, caught.value.row) == ("ragged_row", 3)
    assert "3 fields" in caught.value.message
    assert work.leftovers() == []


def run_many_blocks(helper: IngestProcess, work, progress) -> None:
    """Hand ``helper`` a 60,000-row file read in small blocks (progress comes many times)."""
    path = work.upload("id,amount,city\n" + "".join(f"{i},{i * 0.5},city {i % 7}\n" for i in range(60_000)))
    helper.run(
        progress,
        path=str(path),
        sniffed=sniff(path, "big.csv"),
        dest_parquet=str(work.dest),
        limits=Limits(block_bytes=16_384),
        cores=1,
    )


def test_a_helper_killed_mid_ingest_is_reported_with_the_signal(work):
    helper = IngestProcess.spare()

    def kill_at_first_progress(rows_done, bytes_done):
        os.kill(helper.popen.pid, signal.SIGKILL)

    with pytest.raises(IngestProcessDied, match=r"signal 9"):
        run_many_blocks(helper, work, kill_at_first_progress)
    assert not work.dest.exists()


def test_a_cancel_from_progress_stops_the_helper_and_goes_on_up(work):
    helper = IngestProcess.spare()

    class Canceled(Exception):
        pass

    def cancel(rows_done, bytes_done):
        raise Canceled

    with pytest.raises(Canceled):
        run_many_blocks(helper, work, cancel)
    assert helper.popen.poll() is not None  # killed, not left parsing for nobody
    assert not work.dest.exists()


def test_a_spare_exits_when_the_process_that_started_it_lets_go():
    helper = IngestProcess()
    helper.conn.close()  # what the worker's process ending does to the connection
    deadline = time.monotonic() + 30
    while helper.popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helper.popen.poll() is not None
