"""A class's runs through the app's job manager: how long until the last one has finished?

    python scripts/class_throughput.py 30                      # 30 student runs, the default slots
    python scripts/class_throughput.py 8 --slots 1,2,4         # compare slot counts, one after another
    python scripts/class_throughput.py 8 --slots 2 --threads 1 --device cuda --json

Each run is the student preset (or --preset) with its own seed, submitted at once, as a class
pressing Start together; the runs go through `fmnist.jobs.JobManager`, the server's own queue and
worker processes. Reported per slot count: the time from the first submit to the last run's end,
and each run's wait (queued), run time (worker start to end, process start-up included) and
training time. Prints the CPU flags and precision with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.config import preset_config
from fmnist.jobs import JobManager, cores
from fmnist.runtime import machine


def class_run(
    n: int, slots: int | None, threads: int | None, preset: str, device: str, subset: int | None = None
) -> dict:
    manager = JobManager(max_running=slots, threads=threads, heartbeat_s=None)
    try:
        t0 = time.monotonic()
        jobs = [
            manager.submit(preset_config(preset, seed=i, device=device, subset=subset), label=f"student-{i}")
            for i in range(n)
        ]
        for job in jobs:
            job.wait()
        total = time.monotonic() - t0
        runs = [
            {
                "state": j.state,
                "wait_s": round(j.started - j.submitted, 2) if j.started else None,
                "run_s": round(j.ended - j.started, 2) if j.started and j.ended else None,
                "train_s": round(j.result.train_time_s, 2) if j.result else None,
                "val_acc": round(j.result.val_acc, 4) if j.result else None,
                "precision": j.result.precision if j.result else None,
                "device": j.result.device if j.result else None,
                "error": j.error,
            }
            for j in jobs
        ]
        return {
            "runs": n,
            "slots": manager.max_running,
            "threads": manager.threads,
            "total_s": round(total, 1),
            "per_run": runs,
        }
    finally:
        manager.shutdown()


def summary_line(r: dict) -> str:
    done = [x for x in r["per_run"] if x["state"] == "finished"]
    med = lambda k: statistics.median(x[k] for x in done) if done else float("nan")
    return (
        f"{r['runs']} runs, {r['slots']} slot(s) x {r['threads']} thread(s): last finished after {r['total_s']:.1f} s; "
        f"{len(done)}/{r['runs']} finished; median wait {med('wait_s'):.1f} s, run {med('run_s'):.1f} s, "
        f"training {med('train_s'):.1f} s"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="student runs, submitted at once")
    ap.add_argument("--slots", default="", help="runs at once, e.g. 2 or 1,2,4 (default: the server's default)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / slots)")
    ap.add_argument("--preset", default="student")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--subset", type=int, default=None, help="training images per run (default: the preset's)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.n < 1:
        ap.error("n must be at least 1")
    try:
        slot_list = [int(s) for s in a.slots.split(",") if s.strip()] or [None]
    except ValueError:
        ap.error(f"--slots takes whole numbers separated by commas, got {a.slots!r}")
    if any(s is not None and s < 1 for s in slot_list):
        ap.error("--slots must be at least 1")
    where = {**machine(), "usable_cores": cores(), "date": time.strftime("%Y-%m-%d")}
    results = [class_run(a.n, s, a.threads, a.preset, a.device, a.subset) for s in slot_list]
    if a.json:
        print(json.dumps({"machine": where, "preset": a.preset, "results": results}))
    else:
        print(f"machine: {where}; preset {a.preset}")
        for r in results:
            print(summary_line(r))
    return 0 if all(x["state"] == "finished" for r in results for x in r["per_run"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
