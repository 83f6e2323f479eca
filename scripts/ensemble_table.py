"""Which saved models make the best soft-vote ensemble, chosen on validation images, scored once on test.

    python scripts/ensemble_table.py                       # every shipped checkpoint that can be validated
    python scripts/ensemble_table.py checkpoints/resnet64.safetensors checkpoints/photo.safetensors ... --json
    python scripts/ensemble_table.py --declared checkpoints/best.safetensors checkpoints/resnet64.safetensors ...

Nothing is chosen on the test set. A member can only be weighed on images it did not train on, so the
candidates are the checkpoints that share one validation split (the same seed and validation fraction,
no subset: the split `fmnist.data.split_indices` gives them); the others are listed as left out. Then:

1. forward selection on **validation** accuracy (Caruana et al. 2004, without replacement): start from
   the best single model, add the member that raises the soft vote's validation accuracy most, stop
   when none does;
2. **what each member adds**: the chosen vote's accuracy without each of its members, and with each
   candidate it left out.

With `--declared`, the checkpoints given are the vote, fixed before anything was scored: for members that
share no validation split (`best` trained on all 60,000 images, as its source does), there is nothing to
choose on, so nothing is chosen. It prints the vote, each member alone, and the vote without each member,
on the test set.

Each row's test accuracy is printed beside it and used for nothing. Probabilities are computed the way
`fmnist.models.Ensemble` computes them (fp32, each member with its own flip test-time augmentation, as
its checkpoint answers alone), so a row equals `python -m fmnist ensemble <its members> --vote soft --out ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist.artifacts import validation_split  # noqa: E402
from fmnist.checkpoints import CHECKPOINT_DIR, CheckpointError, list_checkpoints, load_checkpoint  # noqa: E402
from fmnist.config import TrainConfig  # noqa: E402
from fmnist.data import FashionMNIST, load_dataset, split_indices  # noqa: E402
from fmnist.runtime import machine, predict_logits  # noqa: E402


@dataclass
class Member:
    name: str
    val: torch.Tensor  # (N_val, 10) probabilities
    test: torch.Tensor  # (N_test, 10)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return (probs.argmax(1) == labels).float().mean().item()


def vote(members: list[Member], part: str) -> torch.Tensor:
    """The soft vote: the members' mean probability (what Ensemble(vote='soft') returns, before its log)."""
    return torch.stack([getattr(m, part) for m in members]).mean(0)


def forward_selection(cands: list[Member], y_val: torch.Tensor) -> list[Member]:
    """Greedy forward selection on validation accuracy, without replacement; ties keep the earlier candidate."""
    chosen = [max(cands, key=lambda m: accuracy(m.val, y_val))]
    while True:
        rest = [m for m in cands if m not in chosen]
        if not rest:
            return chosen
        best = max(rest, key=lambda m: accuracy(vote([*chosen, m], "val"), y_val))
        if accuracy(vote([*chosen, best], "val"), y_val) <= accuracy(vote(chosen, "val"), y_val):
            return chosen
        chosen.append(best)


def run(paths: list[Path], data: FashionMNIST) -> dict:
    cards = {p: load_checkpoint(p) for p in paths}
    splits = {p: validation_split(ck.card) for p, ck in cards.items()}
    usable = [s for s in splits.values() if s]
    if not usable:
        raise SystemExit("error: none of these checkpoints has a validation split to choose members on")
    split = max(sorted(set(usable)), key=usable.count)  # the split most candidates share (ties: the first)
    seed, frac = split
    _, val_idx = split_indices(TrainConfig(seed=seed, val_fraction=frac), data.train_labels)
    x_val, y_val = data.train_images[val_idx], data.train_labels[val_idx]
    y_test = data.test_labels
    cands, left_out = [], []
    for p, ck in cards.items():
        if splits[p] != split:
            left_out.append({"name": p.stem, "why": "no validation split" if splits[p] is None else "another split"})
            continue
        probs = [predict_logits(ck.model, x, tta_flip=ck.tta_flip).softmax(1) for x in (x_val, data.test_images)]
        cands.append(Member(p.stem, *probs))
    chosen = forward_selection(cands, y_val)
    singles = sorted(cands, key=lambda m: -accuracy(m.val, y_val))
    scored = lambda ms: {part: accuracy(vote(ms, part), y) for part, y in (("val", y_val), ("test", y_test))}
    steps = [
        {"members": [m.name for m in chosen[: i + 1]], "added": m.name} | scored(chosen[: i + 1])
        for i, m in enumerate(chosen)
    ]
    added = [{"with": m.name} | scored([*chosen, m]) for m in singles if m not in chosen]
    without = [{"without": m.name} | scored([o for o in chosen if o is not m]) for m in chosen if len(chosen) > 1]
    return {
        "split": {"seed": seed, "val_fraction": frac, "images": len(val_idx)},
        "singles": [{"name": m.name, "val": accuracy(m.val, y_val), "test": accuracy(m.test, y_test)} for m in singles],
        "steps": steps,
        "added": added,
        "without": without,
        "left_out": left_out,
        "machine": machine(),
    }


def declared(members: list[Member], y_test: torch.Tensor) -> dict:
    """A vote fixed beforehand, on the test set: the vote, each member alone, the vote without each member."""
    full = accuracy(vote(members, "test"), y_test)
    without = []
    for m in members if len(members) > 1 else []:
        rest = accuracy(vote([o for o in members if o is not m], "test"), y_test)
        without.append({"without": m.name, "test": rest, "adds": full - rest})
    singles = [{"name": m.name, "test": accuracy(m.test, y_test)} for m in members]
    return {"members": [m.name for m in members], "test": full, "singles": singles, "without": without}


def run_declared(paths: list[Path], data: FashionMNIST) -> dict:
    members = []
    for p in paths:
        ck = load_checkpoint(p)
        members.append(
            Member(
                p.stem, torch.empty(0, 10), predict_logits(ck.model, data.test_images, tta_flip=ck.tta_flip).softmax(1)
            )
        )
    return declared(members, data.test_labels) | {"machine": machine()}


def markdown_declared(res: dict) -> str:
    pct = "{:.2%}".format
    lines = ["| soft vote, fixed beforehand | test | the member adds |", "|---|---|---|"]
    lines.append(f"| {' + '.join(res['members'])} | **{pct(res['test'])}** | |")
    lines += [f"| without {r['without']} | {pct(r['test'])} | {r['adds'] * 100:+.2f} points |" for r in res["without"]]
    lines += ["", "| member alone | test |", "|---|---|"]
    lines += [f"| {r['name']} | {pct(r['test'])} |" for r in res["singles"]]
    return "\n".join(lines)


def markdown(res: dict) -> str:
    pct = "{:.2%}".format
    s = res["split"]
    lines = [
        f"Validation: {s['images']} training images (seed {s['seed']}, fraction {s['val_fraction']}), "
        "held out by every candidate.",
        "",
        "| soft vote of | added | validation | test |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {' + '.join(r['members'])} | {r['added']} | {pct(r['val'])} | {pct(r['test'])} |" for r in res["steps"]
    ]
    if res["added"]:
        full = res["steps"][-1]
        lines += [
            "",
            "| the chosen vote plus | validation | test | change (validation) | change (test) |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['with']} | {pct(r['val'])} | {pct(r['test'])} | {(r['val'] - full['val']) * 100:+.2f} points "
            f"| {(r['test'] - full['test']) * 100:+.2f} points |"
            for r in res["added"]
        ]
    if res["without"]:
        full = res["steps"][-1]
        lines += ["", "| the chosen vote without | validation | test | the member adds (test) |", "|---|---|---|---|"]
        lines += [
            f"| {r['without']} | {pct(r['val'])} | {pct(r['test'])} | {(full['test'] - r['test']) * 100:+.2f} points |"
            for r in res["without"]
        ]
    lines += ["", "| candidate alone | validation | test |", "|---|---|---|"]
    lines += [f"| {r['name']} | {pct(r['val'])} | {pct(r['test'])} |" for r in res["singles"]]
    if res["left_out"]:
        lines += ["", "Left out: " + ", ".join(f"{r['name']} ({r['why']})" for r in res["left_out"]) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "checkpoints", nargs="*", type=Path, help=f"candidates (default: every checkpoint in {CHECKPOINT_DIR})"
    )
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument(
        "--declared", action="store_true", help="the checkpoints given are the vote: score it and each member's share"
    )
    a = ap.parse_args(argv)
    if a.declared and not a.checkpoints:
        raise SystemExit("error: --declared needs the vote's checkpoints")
    try:
        data = load_dataset(a.data_dir)
        res = run_declared(a.checkpoints, data) if a.declared else run(a.checkpoints or list_checkpoints(), data)
    except CheckpointError as e:  # a missing or broken file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
    print(markdown_declared(res) if a.declared else markdown(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
