"""Data ingest over a network link: how soon a large upload is a ready version after its last byte,
ingested while it arrives (the default) against ingested once it is whole, in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/ingest_link.py                        # 50 MB/s (400 Mbit/s)
    OMP_NUM_THREADS=1 .venv/bin/python bench/ingest_link.py --mbytes-per-s 12.5    # 100 Mbit/s

One studio on its embedded defaults with a warm node (as bench/ingest.py runs it) and two web servers:
one as configured by default, one with STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES=0 (the upload is
parsed after it arrives, as before). The same generated CSV (1,000,000 rows × 20 columns, 132 MB)
is uploaded through the API, paced by the client to the link's speed, alternately to each server.
The figure is the median time from the upload's answer (its last byte in) to the version being
ready (the ingest's finished_at); each round also says how long the node ran the job (the ingest
starts once the rest of the upload should take no longer than parsing the file at 50 MB/s).
Goal: ready after the last byte in at most half the time the after-upload ingest takes.
"""

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from ingest import SINGLE, generate_csv, running_studio, upload, wait_ready

SERVERS = {"while arriving": {}, "after": {"STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES": "0"}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--mbytes-per-s", type=float, default=50.0)
    args = parser.parse_args()
    os.environ.update(SINGLE)
    work = Path(tempfile.mkdtemp(prefix="studio-bench-ingest-link-"))
    csv = work / "bench.csv"
    generate_csv(csv, args.rows)
    print(f"{csv.stat().st_size / 1e6:.0f} MB uploaded at {args.mbytes_per_s:g} MB/s")

    after_last_byte: dict[str, list[float]] = {name: [] for name in SERVERS}
    with running_studio(work, csv, SERVERS) as studio:
        from compute.jobs.models import Job  # deferred: Django is set up by running_studio

        for round_number in range(args.rounds):
            order = list(SERVERS) if round_number % 2 == 0 else list(reversed(SERVERS))
            for name in order:
                port = studio.ports[name]
                started = time.perf_counter()
                body = upload(port, studio.workspace_id, studio.token, csv, args.mbytes_per_s * 1e6)
                uploaded_wall, uploaded = time.time(), time.perf_counter() - started
                state = wait_ready(port, studio.workspace_id, studio.token, body, every=0.1)
                if state["status"] != "ready":
                    raise RuntimeError(f"ingest failed: {state['error']}")
                after = datetime.fromisoformat(state["finished_at"]).timestamp() - uploaded_wall
                after_last_byte[name].append(after)
                started_at = Job.objects.get(pk=body["job"]).started_at.timestamp()
                held = datetime.fromisoformat(state["finished_at"]).timestamp() - started_at
                print(
                    f"round {round_number + 1}, {name}: upload {uploaded:.2f} s, ready {after:.2f} s after it; "
                    f"the node ran the job for {held:.2f} s"
                )

    streaming = float(np.median(after_last_byte["while arriving"]))
    baseline = float(np.median(after_last_byte["after"]))
    print(f"\nready after the last byte: {streaming:.2f} s ingested while arriving, {baseline:.2f} s after (medians)")
    met = streaming <= baseline / 2
    print(
        f"BENCH ingest_link mbytes_per_s={args.mbytes_per_s:g} ready_after_upload_s={streaming:.2f} "
        f"baseline_s={baseline:.2f} ratio={streaming / baseline:.2f} goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
