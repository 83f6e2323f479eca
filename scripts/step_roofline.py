"""How close a training step is to this CPU's arithmetic ceiling, and what that says about a speed goal.

    python scripts/step_roofline.py                         # cnn2, fp32, batch 128 (the Keras comparison)
    python scripts/step_roofline.py --arch quickcnn --batch-size 256 --json

Three figures, fp32, in one process, with the threads torch uses:
- the FLOPs of one training step (forward, backward, Adam), counted by torch's own FlopCounterMode
  (convolutions and matrix products: the parts that do arithmetic);
- the step's speed (`fmnist.train.Trainer.step`, images/s, after warm-up), and so its GFLOP/s;
- the machine's ceiling: the best GFLOP/s of a large fp32 matrix product (sgemm, 2048x2048) here.

From these: the fastest the `--epochs` epochs' training steps could possibly run (every step at
the sgemm rate), to compare with a whole-process goal such as "2x Keras" (`--goal-s`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.config import explain_config
from fmnist.runtime import machine, machine_line
from fmnist.train import Trainer

TRAIN_IMAGES = 54_000  # the 90/10 split of the 60,000 training images


def step_flops(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> int:
    """FLOPs torch counts for one whole Trainer.step on this batch."""
    with FlopCounterMode(display=False) as counter:
        trainer.step(images, labels)
    return int(counter.get_total_flops())


def sgemm_gflops(n: int = 2048, rounds: int = 5) -> float:
    """The best of `rounds` fp32 (n x n) @ (n x n) products, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def step_rate(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, steps: int, rounds: int) -> list[float]:
    """Images/s of `rounds` rounds of `steps` steps each, after 5 warm-up steps."""
    bs = trainer.cfg.batch_size
    for i in range(5):
        trainer.step(images[i * bs : (i + 1) * bs], labels[i * bs : (i + 1) * bs])
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(steps):
            j = i % (len(images) // bs)
            trainer.step(images[j * bs : (j + 1) * bs], labels[j * bs : (j + 1) * bs])
        out.append(steps * bs / (time.perf_counter() - t0))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="cnn2")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--goal-s", type=float, default=None, help="a whole-process time to compare with")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    cfg, _ = explain_config(recipe=a.arch, batch_size=a.batch_size, precision="fp32")  # as `train --arch` runs it
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    trainer = Trainer.build(cfg, 10**6, torch.device("cpu"), "fp32", gen)
    images = torch.randint(0, 256, (a.batch_size * 8, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (a.batch_size * 8,), generator=gen)
    flops = step_flops(trainer, images[: a.batch_size], labels[: a.batch_size])
    rates = step_rate(trainer, images, labels, a.steps, a.rounds)
    peak = sgemm_gflops()
    rate = statistics.median(rates)
    steps = a.epochs * -(-TRAIN_IMAGES // a.batch_size)
    m = machine()
    report = {
        "machine": f"{machine_line(m)}, {m['torch_threads']} threads",
        "precision": "fp32",
        "arch": a.arch,
        "batch_size": a.batch_size,
        "step_mflop": round(flops / 1e6, 1),
        "images_per_s": [round(r) for r in rates],
        "step_gflops": round(flops * rate / a.batch_size / 1e9, 1),
        "sgemm_gflops": round(peak, 1),
        "share_of_sgemm": round(flops * rate / a.batch_size / 1e9 / peak, 2),
        "epochs": a.epochs,
        "steps_s_now": round(steps * a.batch_size / rate, 1),
        "steps_s_at_sgemm_rate": round(steps * flops / (peak * 1e9), 1),
    }
    if a.goal_s is not None:
        report["goal_s"] = a.goal_s
    if a.json:
        print(json.dumps(report))
        return 0
    print(report["machine"], "| fp32 |", a.arch, "batch", a.batch_size)
    print(f"one step: {report['step_mflop']} MFLOP; {rate:.0f} images/s = {report['step_gflops']} GFLOP/s")
    print(f"sgemm here: {report['sgemm_gflops']} GFLOP/s, so the step runs at {report['share_of_sgemm']:.0%} of it")
    print(
        f"{a.epochs} epochs of {TRAIN_IMAGES} images: {report['steps_s_now']} s of steps now, "
        f"{report['steps_s_at_sgemm_rate']} s if every step ran at the sgemm rate"
        + (f" (goal: the whole process in {a.goal_s} s)" if a.goal_s is not None else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
