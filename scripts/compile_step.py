"""One cnn2 training step (fp32, batch 128), eager or compiled, and its options: images/s after warm-up.

    python scripts/compile_step.py cl            # eager, channels_last (what fmnist.train does)
    python scripts/compile_step.py compile       # torch.compile; run it twice to see the cache's effect
    MODES: eager, cl, eager-fused, cl-fused, cl-t1 (one thread), cl-nomkldnn, eager-nomkldnn, compile, compile-cl

Prints the first 3 steps' time (compilation, if any) and the steady speed over the last 100 of 120
steps. docs/RELIABILITY.md ("A class's throughput") quotes what it measured.
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.data import load_dataset
from fmnist.models import create_model
from fmnist.runtime import to_input

MODES = ("eager", "cl", "eager-fused", "cl-fused", "cl-t1", "cl-nomkldnn", "eager-nomkldnn", "compile", "compile-cl")


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "cl"
    if mode not in MODES:
        raise SystemExit(f"error: mode must be one of {', '.join(MODES)}")
    if "t1" in mode:
        torch.set_num_threads(1)
    if "nomkldnn" in mode:
        torch.backends.mkldnn.enabled = False
    torch.manual_seed(0)
    ds = load_dataset()
    model = create_model("cnn2")
    cl = mode.startswith("cl") or mode == "compile-cl"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=("fused" in mode) or None)
    step_model = torch.compile(model) if mode.startswith("compile") else model
    bs, n = 128, 120
    idx = torch.randperm(len(ds.train_images))[: bs * n].view(n, bs)
    times = []
    for i in range(n):
        t = time.perf_counter()
        out = step_model(to_input(ds.train_images[idx[i]], cl))
        loss = F.cross_entropy(out.float(), ds.train_labels[idx[i]])
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    steady = bs * (n - 20) / sum(times[20:])
    threads = torch.get_num_threads()
    print(f"{mode}: first 3 steps {sum(times[:3]):.1f} s, steady {steady:,.0f} images/s, {threads} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
