"""The embedded broker never hands a consumer half a message, and an unreadable message file
never kills a worker (R11). Real processes and real files: no broker is mocked."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import Connection

from studio.models import WorkerCheck
from studio.services import worker_check_request
from tests.conftest import REPO, _embedded_broker, wait_for

# A separate process publishes through the transport every studio process uses.
WRITER = """
import json, sys
import studio.celery  # noqa: F401 - loads the Celery app, as the web server and every worker do
from kombu import Connection

options, count, size = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with Connection("filesystem://", transport_options=options) as conn:
    queue = conn.SimpleQueue("race")
    for i in range(count):
        queue.put({"i": i, "pad": "x" * size})
"""


def test_a_consumer_racing_a_writer_of_large_messages_reads_only_whole_messages(tmp_path):
    options = _embedded_broker(tmp_path).transport_options
    count, size = 150, 1_000_000
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, json.dumps(options), str(count), str(size)],
        cwd=REPO,
        env={"DJANGO_SETTINGS_MODULE": "studio.settings", "STUDIO_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    received = []
    try:
        with Connection("filesystem://", transport_options=options) as conn:
            queue = conn.SimpleQueue("race")
            deadline = time.monotonic() + 120
            while len(received) < count and time.monotonic() < deadline:
                try:
                    message = queue.get(block=False)  # polls as fast as it can: the worst case
                except queue.Empty:
                    if writer.poll() not in (None, 0):
                        pytest.fail(f"the writer failed with exit code {writer.returncode}")
                    continue
                received.append(message.payload)
                message.ack()
    finally:
        writer.wait(timeout=60)
    assert sorted(p["i"] for p in received) == list(range(count))
    assert all(len(p["pad"]) == size for p in received)
    assert not list(Path(options["data_folder_in"]).iterdir()), "every message was consumed"


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_an_unreadable_message_file_is_set_aside_and_the_worker_goes_on(broker, start_worker):
    queue_dir = Path(broker.transport_options["data_folder_in"])
    # Sorted first, so the worker meets them before the real message: a truncated message (what a
    # reader of a half-written file saw) and plain garbage.
    (queue_dir / "0_truncated.studio.msg").write_text('{"body": "eyJ0YXNrIjog", "properties": {"deli')
    (queue_dir / "1_garbage.studio.msg").write_bytes(b"\x00\xff not json at all")
    worker = start_worker(name="unreadable")
    check = worker_check_request()
    wait_for(
        lambda: WorkerCheck.objects.filter(pk=check.pk, completed_at__isnull=False).exists(),
        timeout=30,
        message=f"the canary behind the unreadable files to run:\n{worker.output()[-3000:]}",
    )
    assert worker.proc.poll() is None, f"the worker died:\n{worker.output()[-3000:]}"
    broken = queue_dir.parent / "broken"
    assert sorted(p.name for p in broken.iterdir()) == ["0_truncated.studio.msg", "1_garbage.studio.msg"]
    assert "unreadable message 0_truncated.studio.msg set aside" in worker.output()


def test_partial_files_a_killed_writer_left_are_swept_and_fresh_ones_kept(tmp_path):
    from studio.broker import remove_stale_partial_files

    old, fresh = tmp_path / "1_a.studio.msg.part", tmp_path / "2_b.studio.msg.part"
    message = tmp_path / "3_c.studio.msg"
    for path in (old, fresh, message):
        path.write_text("{}")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    assert remove_stale_partial_files([tmp_path]) == 1
    assert not old.exists() and fresh.exists() and message.exists()
