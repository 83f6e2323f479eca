"""Where a training step's time goes: forward only, forward+backward, full step, per memory format.

The model is fed pre-normalised batches, so these are the model's own costs, without the data
path; compare with `python -m fmnist bench` (the whole Trainer.step). fp32 unless --bf16.
Usage: python scripts/profile_step.py [--bf16]
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fmnist.data import load_dataset
from fmnist.models import create_model
from fmnist.runtime import machine, machine_line, to_input


def images_per_s(x_all, y_all, arch: str, channels_last: bool, bs: int, what: str, bf16: bool, n: int = 40) -> float:
    torch.manual_seed(0)
    model = create_model(arch)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    idx = torch.randperm(len(x_all))[: bs * (n + 3)].view(n + 3, bs)
    xs, ys = [to_input(x_all[i], channels_last) for i in idx], [y_all[i] for i in idx]
    for i in range(n + 3):
        if i == 3:  # after 3 warm-up steps
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(xs[i])
        loss = F.cross_entropy(out.float(), ys[i])
        if what != "forward":
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if what == "step":
                opt.step()
    return bs * n / (time.perf_counter() - t0)


def main() -> None:
    bf16 = "--bf16" in sys.argv
    ds = load_dataset()
    m = machine()
    print(f"{machine_line(m)}; {'bf16' if bf16 else 'fp32'}; images/s")
    for arch, bs in (("cnn2", 128), ("quickcnn", 256)):
        for cl in (False, True):
            row = {
                w: images_per_s(ds.train_images, ds.train_labels, arch, cl, bs, w, bf16)
                for w in ("forward", "backward", "step")
            }
            fmt = "  ".join(f"{w} {v:>7,.0f}" for w, v in row.items())
            print(f"{arch:<9} batch {bs:<4} {'channels_last' if cl else 'contiguous':<13} {fmt}")


if __name__ == "__main__":
    main()
