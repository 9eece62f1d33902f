"""Benchmark of the data-ingest engine (data/dataio) against pandas, on a 1,000,000-row CSV.

    OMP_NUM_THREADS=1 .venv/bin/python bench/ingest_engine.py            # 1,000,000 rows, 3 rounds
    .venv/bin/python bench/ingest_engine.py --rows 200000 --rounds 1

Generates a 20-column CSV in /tmp (float, integer, categorical, datetime, boolean, text, e-mail and
id columns; 5 % missing in all but the id), then, in fresh subprocesses so that memory figures are
clean and both sides pay the same load:

  (a) baseline: pandas.read_csv(path).describe(include="all")
  (b) engine:   sniff + ingest to Parquet (+ the profile, computed in the same column reads)

(b) runs twice per round: with pyarrow's default threading and with OMP_NUM_THREADS=1 (pyarrow
then uses one CPU thread, as a 1-CPU worker would). Peak RSS of (b) is the child's ru_maxrss
(os.wait4) as a multiple of the CSV's size. Medians over the rounds are printed; the last line is

  BENCH ingest_engine engine_s=<x> baseline_s=<y> ratio=<x/y> peak_rss_x_csv=<z>

for the default threading (a line BENCH ingest_engine_1cpu ... before it gives the 1-CPU figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BASELINE = """
import json, os, sys, time
import pandas as pd
start, cpu = time.perf_counter(), os.times()
pd.read_csv(sys.argv[1]).describe(include="all")
seconds, cpu_end = time.perf_counter() - start, os.times()
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
cpu_seconds = cpu_end.user + cpu_end.system - cpu.user - cpu.system
print(json.dumps({"seconds": seconds, "cpu": cpu_seconds, "peak_rss": peak}))
"""

ENGINE = """
import json, os, sys, time
import pandas  # pyarrow imports it lazily on first use; a worker pays that once, as the baseline does here
import pyarrow
from data.dataio import Limits, ingest, sniff
pyarrow.set_memory_pool(pyarrow.system_memory_pool())  # as the ingest job does (data/jobs.py)
path, dest = sys.argv[1], sys.argv[2]
start, cpu = time.perf_counter(), os.times()
sniffed = sniff(path, "bench.csv")
sniffed_at = time.perf_counter()
result = ingest(path, sniffed, dest, limits=Limits())
done, cpu_end = time.perf_counter(), os.times()
assert result.rows == int(sys.argv[3]) and result.profile["columns"] == 20, result.rows
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": done - start, "sniff": sniffed_at - start, "ingest_and_profile": done - sniffed_at,
                  "cpu": cpu_end.user + cpu_end.system - cpu.user - cpu.system, "peak_rss": peak,
                  "types": {c.name: c.semantic_type for c in result.schema.columns}}))
"""


def generate(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)

    def missing(values) -> pa.Array:
        return pa.array(values, mask=rng.random(rows) < 0.05)

    columns = {"id": pa.array(np.arange(1, rows + 1))}
    for i in range(6):
        columns[f"x{i}"] = missing(rng.normal(100, 20, rows).round(4))
    for i in range(3):
        columns[f"n{i}"] = missing(rng.integers(0, 10_000, rows))
    colours = np.array(["red", "green", "blue", "yellow", "black", "white", "orange", "purple"])
    for i in range(2):
        columns[f"colour{i}"] = missing(colours[rng.integers(0, colours.size, rows)])
    towns = np.array([f"town-{i:03d}" for i in range(500)])
    columns["town"] = missing(towns[rng.integers(0, towns.size, rows)])
    columns["rating"] = missing(rng.integers(1, 6, rows))
    start = np.datetime64("2020-01-01T00:00:00")
    for i in range(2):
        columns[f"when{i}"] = missing(start + rng.integers(0, 10**8, rows).astype("timedelta64[s]"))
    for i in range(2):
        columns[f"flag{i}"] = missing(rng.random(rows) < 0.3)
    words = np.array("the quick brown fox jumps over a lazy dog while lorem ipsum dolor sit amet".split())
    picks = words[rng.integers(0, words.size, (rows, 5))]
    columns["note"] = missing([" ".join(p) for p in picks])
    columns["email"] = missing(np.char.add(np.char.add("user", rng.permutation(rows).astype(str)), "@example.com"))
    table = pa.table(columns)
    assert table.num_columns == 20
    pcsv.write_csv(table, path)


def run(code: str, args: list[str], env: dict) -> tuple[dict, int]:
    """Run ``code`` in a fresh interpreter; return its JSON output and its peak RSS in bytes.

    The peak is the larger of the child's own high-water mark (VmHWM, which starts afresh at exec)
    and its ru_maxrss from wait4 (which may include the parent's pages at fork, so the parent stays
    small: it never loads the data itself).
    """
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child failed with {proc.returncode}")
    report = json.loads(out)
    return report, max(report.get("peak_rss", 0), usage.ru_maxrss * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--generate", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate), args.rows)
        return

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    csv_path, dest = work / "bench.csv", work / "bench.parquet"
    try:
        measure(args, csv_path, dest)
    finally:
        csv_path.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        work.rmdir()


def measure(args, csv_path: Path, dest: Path) -> None:
    started = time.perf_counter()
    # In a child, so this process stays small (see run()).
    subprocess.run([sys.executable, __file__, "--generate", str(csv_path), "--rows", str(args.rows)], check=True)
    size = csv_path.stat().st_size
    print(
        f"CSV: {args.rows:,} rows x 20 columns, {size / 1e6:.1f} MB, generated in "
        f"{time.perf_counter() - started:.1f} s ({csv_path})"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the first round")

    env_default = {**os.environ, "PYTHONPATH": str(REPO)}
    env_default.pop("OMP_NUM_THREADS", None)
    env_one = {**env_default, "OMP_NUM_THREADS": "1"}
    runs: dict[str, list] = {"baseline": [], "engine": [], "engine_1cpu": []}
    for round_ in range(1, args.rounds + 1):
        baseline, _ = run(BASELINE, [str(csv_path)], env_one)
        engine, engine_rss = run(ENGINE, [str(csv_path), str(dest), str(args.rows)], env_default)
        one, one_rss = run(ENGINE, [str(csv_path), str(dest), str(args.rows)], env_one)
        runs["baseline"].append(baseline)
        runs["engine"].append({**engine, "rss": engine_rss})
        runs["engine_1cpu"].append({**one, "rss": one_rss})
        print(
            f"round {round_}: baseline {baseline['seconds']:.2f} s (cpu {baseline['cpu']:.2f}) | "
            f"engine {engine['seconds']:.2f} s (cpu {engine['cpu']:.2f}, sniff {engine['sniff']:.3f}), "
            f"peak RSS {engine_rss / 1e6:.0f} MB | engine 1 CPU {one['seconds']:.2f} s (cpu {one['cpu']:.2f}), "
            f"peak RSS {one_rss / 1e6:.0f} MB | load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    print("types:", json.dumps(runs["engine"][-1]["types"]))
    print(f"Parquet: {dest.stat().st_size / 1e6:.1f} MB")

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    base_s, base_cpu = median("baseline", "seconds"), median("baseline", "cpu")
    for name in ("engine_1cpu", "engine"):
        engine_s, engine_cpu = median(name, "seconds"), median(name, "cpu")
        print(
            f"{name}: cpu {engine_cpu:.2f} s vs baseline cpu {base_cpu:.2f} s (cpu ratio {engine_cpu / base_cpu:.2f})"
        )
    for name in ("engine_1cpu", "engine"):
        engine_s = median(name, "seconds")
        peak = max(r["rss"] for r in runs[name]) / size
        label = "ingest_engine" if name == "engine" else "ingest_engine_1cpu"
        print(
            f"BENCH {label} engine_s={engine_s:.2f} baseline_s={base_s:.2f} ratio={engine_s / base_s:.2f} "
            f"peak_rss_x_csv={peak:.2f}"
        )


if __name__ == "__main__":
    main()
