"""One change at a time: a preset's test accuracy and training time, beside the same recipe with one change.

    python scripts/ablation.py --preset best --epochs 10 --seeds 2 \\
        --change "no Cutout=--erase 0" --change "no flip=--no-flip" --change "no crop=--crop 0"

Each arm (the preset as it is, then the preset with each --change) trains once per seed through the
project's own command line (`python -m fmnist train ... --json`), one run at a time with every core,
the arms taking turns within a seed so that a machine's drift falls on all of them. Each run's test
accuracy is printed after it and chooses nothing. Before the first run, every arm's options are resolved
by `train --show-config`: a typo fails in seconds, not after an hour, and an arm whose change leaves the
recipe as it was, or changes more than one setting, is refused.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.runtime import machine, machine_line

ROOT = Path(__file__).resolve().parents[1]

BASE = "as it is"  # the label of the arm without a change


def change_arg(text: str) -> tuple[str, list[str]]:
    """'no Cutout=--erase 0' -> ('no Cutout', ['--erase', '0']); anything else is argparse's one-line error."""
    label, sep, options = text.partition("=")
    form = f"a change is LABEL=OPTIONS, e.g. 'no flip=--no-flip'; got {text!r}"
    try:
        args = shlex.split(options)
    except ValueError as e:  # shlex's own words: 'No closing quotation'
        raise argparse.ArgumentTypeError(f"{form} ({e})") from None
    if not (sep and label.strip() and args):
        raise argparse.ArgumentTypeError(form)
    return label.strip(), args


def fmnist(args: list[str]) -> dict[str, Any]:
    """Run `python -m fmnist ARGS --json` here; its JSON, or a ValueError with the command's one-line error."""
    done = subprocess.run([sys.executable, "-m", "fmnist", *args, "--json"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        raise ValueError(lines[-1])
    return json.loads(done.stdout)


def flat(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved TrainConfig's settings in one level: the augmentation's own settings beside the others."""
    return {k: v for k, v in config.items() if k != "augment"} | config.get("augment", {})


def changed(base: dict[str, Any], arm: dict[str, Any]) -> dict[str, list[Any]]:
    """The settings in which `arm` differs from `base`, each as [base's value, arm's value]."""
    return {k: [base.get(k), v] for k, v in arm.items() if base.get(k) != v}


def resolve(arms: list[tuple[str, list[str]]], common: list[str]) -> list[dict[str, Any]]:
    """Each arm's label, options and the one setting it changes; a ValueError if an arm's options are bad,
    change nothing, or change more than one setting."""
    configs = []
    for label, options in arms:
        try:
            configs.append(flat(fmnist(["train", *common, *options, "--show-config"])["config"]))
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
    resolved = []
    for (label, options), config in zip(arms, configs):
        diff = changed(configs[0], config)
        if label != BASE and len(diff) != 1:
            what = "leaves the recipe as it was" if not diff else f"changes {len(diff)} settings ({', '.join(diff)})"
            raise ValueError(f"{label}: {' '.join(options)} {what}; an arm changes one setting")
        resolved.append({"arm": label, "options": options, "changed": diff})
    return resolved


def compare(runs: list[dict], keys: list[Hashable], key_of: Callable[[dict], Hashable]) -> list[dict]:
    """Per key, in order: its runs' test accuracy (mean, median, sd, lowest) and median training seconds,
    each against the first key's. scripts/student_widths.py's comparison too."""
    rows = []
    for key in keys:
        acc = [r["test_acc"] for r in runs if key_of(r) == key]
        secs = [r["train_s"] for r in runs if key_of(r) == key]
        rows.append(
            {
                "runs": len(acc),
                "mean": statistics.mean(acc),
                "median": statistics.median(acc),
                "sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "lowest": min(acc),
                "train_s": statistics.median(secs),
            }
        )
    for row in rows:
        row["points_vs_first"] = 100 * (row["mean"] - rows[0]["mean"])
        row["faster_than_first"] = rows[0]["train_s"] / row["train_s"]
    return rows


def one_run(arm: dict[str, Any], seed: int, common: list[str], out: Path) -> dict[str, Any]:
    """Train one arm with one seed through the command line; what its --json says."""
    args = ["train", *common, *arm["options"], "--seed", str(seed), "--out", str(out), "--force"]
    try:
        done = fmnist(args)
    except ValueError as e:
        raise ValueError(f"{arm['arm']}, seed {seed}: {e}") from None
    return {
        "arm": arm["arm"],
        "seed": seed,
        "test_acc": done["test_accuracy"],
        "train_s": done["train_time_s"],
        "precision": done["precision"],
        "command": "python -m fmnist " + " ".join(shlex.quote(s) for s in args[:-3]),
    }


def markdown(report: dict[str, Any]) -> list[str]:
    """The table for docs/RESULTS.md: one row per arm."""
    lines = [
        "| the one change | setting: preset -> arm | test accuracy, seed by seed | mean | against the preset "
        "| training time |",
        "|---|---|---|---|---|---|",
    ]
    for arm, row in zip(report["arms"], report["summary"]):
        setting = "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in arm["changed"].items()) or "-"
        seeds = " / ".join(f"{100 * r['test_acc']:.2f}" for r in report["runs"] if r["arm"] == arm["arm"])
        lines.append(
            f"| {arm['arm']} | {setting} | {seeds} | {100 * row['mean']:.2f}% | {row['points_vs_first']:+.2f} points | "
            f"{row['train_s']:.0f} s ({row['faster_than_first']:.2f}x) |"
        )
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="best", help="the recipe every arm starts from (default: best)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the preset's)")
    ap.add_argument("--subset", type=int, default=None, help="training images of every run (default: the preset's)")
    ap.add_argument("--seeds", type=int, default=2, help="runs per arm, seeds 0 to N-1 (default: 2)")
    ap.add_argument(
        "--change",
        type=change_arg,
        action="append",
        required=True,
        metavar="LABEL=OPTIONS",
        help="one arm: the preset with these `train` options, e.g. 'no flip=--no-flip' (repeat for more arms)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object (the runs and the summary)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    if a.seeds < 1 or (a.epochs is not None and a.epochs < 1) or (a.subset is not None and a.subset < 1):
        ap.error("--seeds, --epochs and --subset must be at least 1")
    common = ["--preset", a.preset]
    common += ["--epochs", str(a.epochs)] if a.epochs else []
    common += ["--subset", str(a.subset)] if a.subset else []
    t0 = time.perf_counter()
    try:
        arms = resolve([(BASE, []), *a.change], common)
        with tempfile.TemporaryDirectory() as tmp:
            runs = [
                one_run(arm, seed, common, Path(tmp) / f"arm{i}-seed{seed}.safetensors")
                for seed in range(a.seeds)
                for i, arm in enumerate(arms)
            ]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "preset": a.preset,
        "epochs": a.epochs,
        "subset": a.subset,
        "seeds": a.seeds,
        "precision": sorted({r["precision"] for r in runs}),
        "wall_s": round(time.perf_counter() - t0, 1),
        "arms": arms,
        "summary": compare(runs, [arm["arm"] for arm in arms], lambda r: r["arm"]),
        "runs": runs,
    }
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    epochs = f"{a.epochs} epochs" if a.epochs else "its epochs"
    print(
        f"preset {a.preset!r}, {epochs}, {a.seeds} seed(s) an arm, {'/'.join(report['precision'])}; "
        f"{machine_line(report['machine'])}"
    )
    print("\n".join(markdown(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
