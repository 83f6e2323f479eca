"""Freed memory kept for the next step, or handed back to the OS: a training step's page faults and speed.

    python scripts/freed_memory.py                      # cnn2, fp32, batch 128, 4 pairs of processes
    python scripts/freed_memory.py --arch quickcnn --batch-size 256 --pairs 6 --json

`fmnist.runtime.keep_freed_memory` has glibc's malloc keep freed blocks (not on by default).
malloc's settings are fixed for a process once changed, so each side runs in fresh processes,
alternating (glibc's defaults, kept, glibc's defaults, ...): each builds a trainer, takes 5 warm-up
steps, then times `Trainer.step` over `--steps` real training batches and counts the page faults
they cost (getrusage's minor faults). Prints each side's runs, the medians and their ratio, with the
CPU flags and the precision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist.runtime import keep_freed_memory, machine, machine_line  # noqa: E402

SIDES = ("default", "kept")


def one_run(side: str, arch: str, precision: str, batch: int, steps: int) -> dict[str, float]:
    """In this process: build a trainer (with glibc's defaults left alone for "default"), time the steps."""
    import resource
    import time

    import torch

    from fmnist import train
    from fmnist.config import explain_config
    from fmnist.data import load_dataset

    if side == "kept":
        keep_freed_memory()
    cfg, _ = explain_config(recipe=arch, batch_size=batch, precision=precision)
    tr = train.Trainer.build(cfg, 10**6, torch.device("cpu"), precision, torch.Generator().manual_seed(0))
    ds = load_dataset()
    batches = [
        (ds.train_images[i * batch : (i + 1) * batch], ds.train_labels[i * batch : (i + 1) * batch])
        for i in range(5 + steps)
    ]
    for images, labels in batches[:5]:
        tr.step(images, labels)
    faults0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for images, labels in batches[5:]:
        tr.step(images, labels)
    seconds = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return {"images_per_s": steps * batch / seconds, "faults_per_step": faults / steps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="cnn2")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=120, help="timed steps per process")
    ap.add_argument("--pairs", type=int, default=4, help="default-then-kept pairs of processes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", choices=SIDES, help=argparse.SUPPRESS)  # a child process's side
    a = ap.parse_args(argv)
    if a.steps < 1 or a.pairs < 1 or a.batch_size < 1:
        ap.error("--steps, --pairs and --batch-size must be at least 1")
    if a.one:
        print(json.dumps(one_run(a.one, a.arch, a.precision, a.batch_size, a.steps)))
        return 0
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for _ in range(a.pairs):
        for side in SIDES:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                side,
                "--arch",
                a.arch,
                "--precision",
                a.precision,
                "--batch-size",
                str(a.batch_size),
                "--steps",
                str(a.steps),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"freed_memory: the {side} run failed: {out.stderr.strip().splitlines()[-1:]}")
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    median = {side: {k: statistics.median(r[k] for r in runs[side]) for k in runs[side][0]} for side in SIDES}
    report = {
        "machine": machine(),
        "arch": a.arch,
        "precision": a.precision,
        "batch_size": a.batch_size,
        "steps": a.steps,
        "runs": runs,
        "median": median,
        "speedup": median["kept"]["images_per_s"] / median["default"]["images_per_s"],
    }
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    m = report["machine"]
    print(
        f"{a.arch}, {a.precision}, batch {a.batch_size}, {a.steps} steps a process, {a.pairs} pairs; {machine_line(m)}"
    )
    for side in SIDES:
        each = ", ".join(f"{r['images_per_s']:,.0f}" for r in runs[side])
        print(
            f"  {side:8s} images/s {each} (median {median[side]['images_per_s']:,.0f}); "
            f"page faults a step, median {median[side]['faults_per_step']:,.0f}"
        )
    print(f"  kept / default: {report['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
