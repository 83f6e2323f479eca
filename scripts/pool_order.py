"""Pool before ReLU, or ReLU before pool: one training step's speed, the two orders alternating in one process.

    python scripts/pool_order.py                 # cnn2, fp32, batch 128
    python scripts/pool_order.py keras2 bf16 32

The zoo's plain CNNs (cnn2, keras1-3) run max-pool before ReLU: the same network bit for bit
(tests/test_models.py), with the ReLU on 4x fewer values. This times `fmnist.train.Trainer.step` for
the model as built and for the textbook order (ReLU, then pool), in 6 alternating rounds of 20
batches (the first round is warm-up), and prints the medians with the CPU flags and the precision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.config import ConfigError, TrainConfig
from fmnist.data import load_dataset
from fmnist.runtime import machine, machine_line
from fmnist.train import Trainer


def textbook(model: torch.nn.Module) -> int:
    """Put every ReLU back before its max-pool, in place; returns how many pairs were swapped."""
    swapped = 0
    for seq in [m for m in model.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in [i for i in range(len(seq) - 1) if isinstance(seq[i], torch.nn.MaxPool2d)]:
            if isinstance(seq[i + 1], torch.nn.ReLU):
                seq[i], seq[i + 1], swapped = seq[i + 1], seq[i], swapped + 1
    return swapped


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", nargs="?", default="cnn2")
    ap.add_argument("precision", nargs="?", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("batch", nargs="?", type=int, default=128)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    arch, precision = a.arch, a.precision
    try:
        cfg = TrainConfig(arch=arch, batch_size=a.batch, precision=precision)
    except ConfigError as e:
        ap.error(str(e))
    ds = load_dataset()
    trainers = {}
    for order in ("pool, then ReLU", "ReLU, then pool"):
        torch.manual_seed(0)
        tr = Trainer.build(cfg, 10_000, torch.device("cpu"), precision, torch.Generator().manual_seed(0))
        if order == "ReLU, then pool" and not textbook(tr.model):
            raise SystemExit(f"error: {arch} has no max-pool followed by a ReLU")
        trainers[order] = tr
    n, bs = 20, cfg.batch_size
    idx = torch.randperm(len(ds.train_images))[: bs * n].view(n, bs)
    speed: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(6):
        for order, tr in trainers.items():
            t0 = time.perf_counter()
            for i in range(n):
                tr.step(ds.train_images[idx[i]], ds.train_labels[idx[i]])
            speed[order].append(bs * n / (time.perf_counter() - t0))
    med = {k: statistics.median(v[1:]) for k, v in speed.items()}
    m = machine()
    print(f"{machine_line(m)}; {arch}, {precision}, batch {bs}")
    for order, v in med.items():
        print(f"  {order}: {v:,.0f} images/s")
    print(f"  ratio: {med['pool, then ReLU'] / med['ReLU, then pool']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
