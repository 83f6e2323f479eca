"""Benchmarks: this project's training step vs the conventional per-sample DataLoader loop.

Both sides train the same model with the same batch size and threads, in the same process,
alternating round by round so that machine noise hits both alike. Ratios, not absolute times,
are what to compare.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .config import TrainConfig
from .data import MEAN, STD, FashionMNIST, load_dataset
from .models import create_model
from .preprocess import preprocess
from .runtime import CPU_FLAGS, cpu_has_bf16, machine, predict_logits
from .train import Trainer


class PerSampleDataset(Dataset):
    """pytorch/examples-style dataset: PIL image -> ToTensor -> Normalize, one sample at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images.numpy(), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)
        return (x - MEAN) / STD, self.labels[i]


def _forever(loader: DataLoader):
    while True:
        yield from loader


def _dataloader_round(model, opt, loader_iter, batches: int) -> float:
    model.train()
    t0 = time.perf_counter()
    for _ in range(batches):
        x, y = next(loader_iter)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def _trainer(arch: str, batch_size: int, precision: str, steps: int) -> Trainer:
    """The shipped training step (fmnist.train.Trainer) on the CPU, Adam 1e-3, no augmentation."""
    cfg = TrainConfig(arch=arch, batch_size=batch_size, device="cpu", precision=precision)
    return Trainer.build(cfg, steps, torch.device("cpu"), precision, torch.Generator().manual_seed(0))


def _tensor_round(tr: Trainer, x_all: torch.Tensor, y_all: torch.Tensor, batches: int) -> float:
    """`batches` steps of the shipped loop's Trainer.step on whole-tensor slices."""
    tr.model.train()
    bs = tr.cfg.batch_size
    perm = torch.randperm(len(x_all), generator=tr.gen)
    t0 = time.perf_counter()
    for b in range(batches):
        idx = perm[b * bs : (b + 1) * bs]
        tr.step(x_all[idx], y_all[idx])
    return time.perf_counter() - t0


def run(
    arch: str = "cnn2", batch_size: int = 128, batches: int = 40, rounds: int = 3, data: FashionMNIST | None = None
) -> dict[str, Any]:
    """Measure training images/s of both loops, test-set eval time and single-image latency.

    The sides alternate round by round. 'tensor_*' sides run `fmnist.train.Trainer.step`, the
    step the training loop ships with; bf16 is measured only where the CPU has it natively.
    """
    ds = data or load_dataset()
    x_all, y_all = ds.train_images, ds.train_labels
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    steps = (rounds * batches + 3) * 2
    torch.manual_seed(0)
    dl_model = create_model(arch)
    dl_opt = torch.optim.Adam(dl_model.parameters(), 1e-3)
    trainers = {}
    for p in precisions:
        torch.manual_seed(0)
        trainers[f"tensor_{p}"] = _trainer(arch, batch_size, p, steps)
    loader = DataLoader(PerSampleDataset(x_all, y_all), batch_size=batch_size, shuffle=True, num_workers=0)
    it = _forever(loader)
    _dataloader_round(dl_model, dl_opt, it, 3)  # warm-up, untimed
    for tr in trainers.values():
        _tensor_round(tr, x_all, y_all, 3)
    sides: dict[str, list[float]] = {"dataloader_fp32": [], **{k: [] for k in trainers}}
    for _ in range(rounds):
        sides["dataloader_fp32"].append(batch_size * batches / _dataloader_round(dl_model, dl_opt, it, batches))
        for k, tr in trainers.items():
            sides[k].append(batch_size * batches / _tensor_round(tr, x_all, y_all, batches))
    ips = {k: statistics.median(v) for k, v in sides.items()}
    base = ips["dataloader_fp32"]

    model = trainers["tensor_fp32"].model.eval()
    eval_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        predict_logits(model, ds.test_images)
        eval_times.append(time.perf_counter() - t0)

    img = (ds.test_images[0].numpy() * 0.8).astype(np.uint8)
    lat = []
    for i in range(60):
        t0 = time.perf_counter()
        predict_logits(model, preprocess(img).tensor())
        if i >= 10:
            lat.append((time.perf_counter() - t0) * 1000)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "arch": arch,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "batches_per_round": batches,
        "rounds": rounds,
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "rounds_images_per_s": {k: [round(x, 1) for x in v] for k, v in sides.items()},
        "speedup_vs_dataloader": {k: round(v / base, 2) for k, v in ips.items() if k != "dataloader_fp32"},
        "eval_test_set_s": round(statistics.median(eval_times), 3),
        "eval_precision": "fp32",
        "predict_latency_ms": {
            "median": round(statistics.median(lat), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
        },
    }


def print_report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"{m['cpu']} ({m['cores']} cores; flags: {', '.join(m['cpu_flags']) or 'none of ' + ', '.join(CPU_FLAGS)})")
    print(
        f"{r['arch']}, batch {r['batch_size']}, {r['threads']} threads, "
        f"{r['rounds']} alternating rounds of {r['batches_per_round']} batches"
    )
    for k, v in r["images_per_s"].items():
        sp = r["speedup_vs_dataloader"].get(k)
        print(f"  {k:<16} {v:>9,.0f} images/s" + (f"   {sp:.2f}x the DataLoader loop" if sp else ""))
    print(f"evaluate 10k test images ({r['eval_precision']}): {r['eval_test_set_s']:.2f}s")
    lat = r["predict_latency_ms"]
    print(f"single-image predict (preprocess + forward): median {lat['median']:.1f} ms, p95 {lat['p95']:.1f} ms")
