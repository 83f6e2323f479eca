"""Benchmarks: this project's whole-tensor loop vs the conventional per-sample DataLoader loop.

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

from .data import MEAN, STD, load_dataset
from .models import create_model
from .preprocess import preprocess
from .train import (
    autocast,
    cpu_has_bf16,
    has_conv,
    predict_logits,
    to_input,
)


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


def _tensor_round(model, opt, x_all, y_all, batch_size: int, batches: int, precision: str, gen) -> float:
    model.train()
    cl = has_conv(model)
    t0 = time.perf_counter()
    perm = torch.randperm(len(x_all), generator=gen)
    for b in range(batches):
        idx = perm[b * batch_size : (b + 1) * batch_size]
        x = to_input(x_all[idx], cl)  # the same uint8 -> normalised path as fmnist.train
        with autocast(torch.device("cpu"), precision):
            out = model(x)
        loss = F.cross_entropy(out.float(), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def run(arch: str = "cnn2", batch_size: int = 128, batches: int = 40, rounds: int = 3) -> dict[str, Any]:
    """Measure training images/s of both loops, test-set eval time and single-image latency."""
    ds = load_dataset()
    x_all, y_all = ds.train_images, ds.train_labels
    gen = torch.Generator().manual_seed(0)
    sides = {"dataloader_fp32": [], "tensor_fp32": []}
    if cpu_has_bf16():
        sides["tensor_bf16"] = []
    models = {}
    for side in sides:
        torch.manual_seed(0)
        m = create_model(arch)
        if side.startswith("tensor") and has_conv(m):
            m = m.to(memory_format=torch.channels_last)
        models[side] = (m, torch.optim.Adam(m.parameters(), 1e-3))
    loader = DataLoader(PerSampleDataset(x_all, y_all), batch_size=batch_size, shuffle=True, num_workers=0)
    it = _forever(loader)
    for side in sides:  # warm-up, untimed
        m, opt = models[side]
        if side.startswith("dataloader"):
            _dataloader_round(m, opt, it, 3)
        else:
            _tensor_round(m, opt, x_all, y_all, batch_size, 3, side.split("_")[1], gen)
    for _ in range(rounds):
        for side in sides:
            m, opt = models[side]
            if side.startswith("dataloader"):
                dt = _dataloader_round(m, opt, it, batches)
            else:
                dt = _tensor_round(m, opt, x_all, y_all, batch_size, batches, side.split("_")[1], gen)
            sides[side].append(batch_size * batches / dt)
    ips = {k: statistics.median(v) for k, v in sides.items()}
    base = ips["dataloader_fp32"]

    model = models["tensor_fp32"][0].eval()
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
        "arch": arch,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "batches_per_round": batches,
        "rounds": rounds,
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "rounds_images_per_s": {k: [round(x, 1) for x in v] for k, v in sides.items()},
        "speedup_vs_dataloader": {k: round(v / base, 2) for k, v in ips.items() if k != "dataloader_fp32"},
        "eval_test_set_s": round(statistics.median(eval_times), 3),
        "predict_latency_ms": {
            "median": round(statistics.median(lat), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
        },
    }


def print_report(r: dict[str, Any]) -> None:
    print(f"{r['arch']}, batch {r['batch_size']}, {r['threads']} threads, "
          f"{r['rounds']} alternating rounds of {r['batches_per_round']} batches")  # fmt: skip
    for k, v in r["images_per_s"].items():
        sp = r["speedup_vs_dataloader"].get(k)
        print(f"  {k:<16} {v:>9,.0f} images/s" + (f"   {sp:.2f}x the DataLoader loop" if sp else ""))
    print(f"evaluate 10k test images: {r['eval_test_set_s']:.2f}s")
    lat = r["predict_latency_ms"]
    print(f"single-image predict (preprocess + forward): median {lat['median']:.1f} ms, p95 {lat['p95']:.1f} ms")
