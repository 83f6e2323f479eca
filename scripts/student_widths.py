"""The student preset's network widths: test accuracy over seeds, and training time, per width.

    python scripts/student_widths.py 32,64,128 16,48,192 --seeds 20     # docs/RELIABILITY.md's comparison
    python scripts/student_widths.py 16,48,192 --seeds 2 --subset 600 --json

Each width (quickcnn's three stage widths) trains the student preset once per seed (seeds 0 to
--seeds - 1), `--procs` runs at a time of one thread each, as a class's slots do, and scores the
10,000 test images. Reported per width: the test accuracy's mean, median, standard deviation and
lowest, the median training seconds, and the difference of mean accuracy and the ratio of median
training time against the first width; with the CPU flags and the precision.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.runtime import machine, machine_line
from scripts.ablation import compare


def widths_arg(text: str) -> tuple[int, int, int]:
    """'16,48,192' -> (16, 48, 192); anything else is argparse's one-line error."""
    try:
        w = tuple(int(x) for x in text.split(","))
    except ValueError:
        w = ()
    if len(w) != 3 or min(w) < 1:
        raise argparse.ArgumentTypeError(f"a width is three whole numbers above 0, e.g. 16,48,192; got {text!r}")
    return w  # type: ignore[return-value]


def one_run(job: tuple[tuple[int, int, int], int, int | None]) -> dict:
    """Train the student preset with these widths and this seed on one thread; its test accuracy."""
    import torch

    from fmnist.config import preset_config
    from fmnist.data import load_dataset
    from fmnist.evaluate import metrics_from_logits
    from fmnist.runtime import predict_logits
    from fmnist.train import iter_training

    widths, seed, subset = job
    torch.set_num_threads(1)
    ds = load_dataset()
    cfg = preset_config("student", seed=seed, subset=subset, model_kwargs={"widths": list(widths)})
    *_, done = iter_training(cfg, ds)  # the last event is the DoneEvent
    result = done.result
    acc = metrics_from_logits(predict_logits(result.model, ds.test_images), ds.test_labels).accuracy
    return {
        "widths": list(widths),
        "seed": seed,
        "test_acc": acc,
        "train_s": result.train_time_s,
        "params": result.params,
        "epochs": len(result.history),
        "subset": cfg.subset,
        "precision": result.precision,
    }


def summary(runs: list[dict], widths: list[tuple[int, int, int]]) -> list[dict]:
    """Per width: its runs' accuracy figures and median training time, each against the first width's."""
    rows = compare(runs, widths, lambda r: tuple(r["widths"]))
    return [{"widths": list(w), **row} for w, row in zip(widths, rows)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("widths", nargs="+", type=widths_arg, help="e.g. 32,64,128 16,48,192 (the first is the reference)")
    ap.add_argument("--seeds", type=int, default=20, help="runs per width, seeds 0 to N-1")
    ap.add_argument("--procs", type=int, default=2, help="runs at a time, one thread each")
    ap.add_argument("--subset", type=int, default=None, help="training images per run (default: the preset's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.seeds < 1 or a.procs < 1:
        ap.error("--seeds and --procs must be at least 1")
    jobs = [(w, seed, a.subset) for seed in range(a.seeds) for w in a.widths]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(a.procs) as pool:
        runs = pool.map(one_run, jobs, chunksize=1)
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seeds": a.seeds,
        "procs": a.procs,
        "subset": a.subset,
        "precision": sorted({r["precision"] for r in runs}),
        "wall_s": round(time.perf_counter() - t0, 1),
        "widths": summary(runs, a.widths),
        "runs": runs,
    }
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    m = report["machine"]
    print(
        f"student preset, {a.seeds} seeds a width, {a.procs} runs at a time, {'/'.join(report['precision'])}; "
        f"{machine_line(m)}"
    )
    for row in report["widths"]:
        print(
            f"  {'-'.join(map(str, row['widths'])):>10s}: test accuracy mean {100 * row['mean']:.2f}% "
            f"(median {100 * row['median']:.2f}, sd {100 * row['sd']:.2f}, lowest {100 * row['lowest']:.2f}), "
            f"{row['points_vs_first']:+.2f} points; training {row['train_s']:.2f} s, {row['faster_than_first']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
