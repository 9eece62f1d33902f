"""Object storage transfers (studio/objectstore.py) against a real S3 API: throughput and memory.

A moto S3 server runs as its own process (so its memory is not counted). One process publishes a
file of --mb MiB from host A's data directory; another, with an empty data directory (host B),
fetches and verifies it. Each reports its time and the growth of its peak resident memory over
its state just before the transfer (after a small warm-up transfer that loads boto3).

Goal: memory stays bounded by the transfer's parts, not the file: peak growth ≤ 0.5 × the file
for both publish and fetch. Throughput is reported (loopback, shared 2-core machine). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/objectstore.py [--mb 256]

Ends with ``BENCH objectstore mb=<n> publish_mb_s=<a> fetch_mb_s=<b> publish_peak_mb=<c>
fetch_peak_mb=<d> goals=met|missed``.
"""

import argparse
import hashlib
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CHUNK = 1024 * 1024
RELATIVE = "workspaces/1/data/1.parquet"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def step(kind: str, data_dir: Path, sha256: str) -> dict:
    """Run in a child process: publish (host A) or fetch (host B) the file, after a warm-up."""
    os.environ["STUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()
    from django.conf import settings

    from studio import objectstore

    warm = settings.ARTIFACT_ROOT / f"workspaces/1/warm-up-{kind}"
    warm.parent.mkdir(parents=True, exist_ok=True)
    warm.write_bytes(b"x" * 1000)
    objectstore.publish(warm)
    warm.unlink()
    objectstore.ensure_local(warm)
    before = peak_mb()
    path = settings.ARTIFACT_ROOT / RELATIVE
    started = time.perf_counter()
    if kind == "publish":
        objectstore.publish(path, sha256=sha256)
    else:
        objectstore.ensure_local(path, sha256=sha256)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_growth_mb": peak_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--step", choices=["publish", "fetch"])
    parser.add_argument("--data-dir")
    parser.add_argument("--sha256")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, Path(args.data_dir), args.sha256)))
        return

    root = Path(tempfile.mkdtemp(prefix="bench-objectstore-"))
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",  # noqa: S106 - moto takes any
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        bucket = f"bench-{secrets.token_hex(4)}"
        client.create_bucket(Bucket=bucket)
        env = os.environ | {
            "STUDIO_STORAGE_URL": f"s3://{bucket}/studio?endpoint_url={endpoint}&region=us-east-1",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        }

        source = root / "host-a" / "artifacts" / RELATIVE
        source.parent.mkdir(parents=True)
        digest = hashlib.sha256()
        with source.open("wb") as fh:
            for _ in range(args.mb):
                block = os.urandom(CHUNK)
                fh.write(block)
                digest.update(block)
        sha256 = digest.hexdigest()

        results = {}
        for kind, host in (("publish", "host-a"), ("fetch", "host-b")):
            done = subprocess.run(
                [sys.executable, __file__, "--step", kind, "--data-dir", str(root / host), "--sha256", sha256],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        fetched = root / "host-b" / "artifacts" / RELATIVE
        assert fetched.stat().st_size == args.mb * CHUNK
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(root)], check=False)

    publish, fetch = results["publish"], results["fetch"]
    figures = {
        "mb": args.mb,
        "publish_mb_s": round(args.mb / publish["seconds"], 1),
        "fetch_mb_s": round(args.mb / fetch["seconds"], 1),
        "publish_peak_mb": round(publish["peak_growth_mb"], 1),
        "fetch_peak_mb": round(fetch["peak_growth_mb"], 1),
    }
    met = max(figures["publish_peak_mb"], figures["fetch_peak_mb"]) <= 0.5 * args.mb
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"publish {args.mb} MiB: {publish['seconds']:.2f} s, peak memory +{publish['peak_growth_mb']:.1f} MiB")
    print(f"fetch   {args.mb} MiB: {fetch['seconds']:.2f} s, peak memory +{fetch['peak_growth_mb']:.1f} MiB")
    print(
        "BENCH objectstore " + " ".join(f"{k}={v}" for k, v in figures.items()) + f" goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
