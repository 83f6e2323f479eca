"""Accuracy on photo-style images made from test images (scripts/photos.py), per level and model.

Each photo goes through the same path as an upload (fmnist.preprocess, then the model's predict
path with its test-time augmentation). A photo the preprocessing refuses counts as wrong, and is
also counted on its own. At every level, photos of the empty table, of two garments and close-ups
(a garment running past the frame) check the refusals: they should be refused, never classified.
Usage: python scripts/photo_eval.py [--models best,photo,photo-vote] [--levels product,phone,hard,dark,portrait]
                                    [--n 200] [--odd 10] [--seed 0] [--votes photo+best,...] [--json]
--votes adds rows for soft votes of the loaded models (the mean of their probabilities, each with its own
flip TTA, as `fmnist.models.Ensemble` votes), to choose a vote on the tuning seeds before saving one.
       python scripts/photo_eval.py --timing   (preprocessing time of a 12 MP phone photo)
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from photos import LEVELS, photo_set, render, render_closeup, render_empty, render_two

from fmnist.checkpoints import load_checkpoint
from fmnist.data import load_dataset
from fmnist.preprocess import ImageError, preprocess
from fmnist.runtime import predict_logits


def timing(runs: int = 10) -> int:
    """Median and max ms to preprocess a 4000x3000 (12 MP) phone-style JPEG, as an upload is."""
    ds = load_dataset()
    rng = np.random.default_rng(0)
    photos = [render(ds.test_images[i].numpy(), "phone", rng, size=(4000, 3000)) for i in range(3)]
    ms = []
    for k in range(runs):
        t = time.perf_counter()
        preprocess(photos[k % 3])
        ms.append((time.perf_counter() - t) * 1000)
    print(
        f"12 MP phone JPEG ({len(photos[0]) / 1e6:.1f} MB): preprocess median {np.median(ms):.0f} ms, "
        f"max {max(ms):.0f} ms, {runs} runs"
    )
    return 0


FILLED = (0, 2, 3, 4, 6, 8)  # T-shirt, pullover, dress, coat, shirt, bag: a close-up of these fills the frame


def refusals(images: np.ndarray, labels: np.ndarray, level: str, n: int, seed: int) -> dict[str, str]:
    """How many of n photos of the empty table, of two garments, and close-ups the preprocessing refuses."""
    rng = np.random.default_rng(seed + 1)
    filled = np.flatnonzero(np.isin(labels, FILLED))
    odd = {
        "empty table": [render_empty(level, rng) for _ in range(n)],
        "two garments": [render_two(images[2 * i], images[2 * i + 1], level, rng) for i in range(n)],
        "close-up": [render_closeup(images[filled[i]], level, rng) for i in range(n)],
    }
    out = {}
    for kind, photos in odd.items():
        n_refused = 0
        for data in photos:
            try:
                preprocess(data)
            except ImageError:
                n_refused += 1
        out[kind] = f"{n_refused}/{len(photos)}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="best,photo,photo-vote")
    ap.add_argument("--levels", default=",".join(LEVELS))
    ap.add_argument("--n", type=int, default=200, help="photos per level")
    ap.add_argument("--odd", type=int, default=10, help="empty, two-garment and close-up photos per level")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--votes", default="", help="soft votes of --models to add, e.g. photo+best,photo+quick+best")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timing", action="store_true", help="only time preprocessing of 12 MP phone photos")
    a = ap.parse_args()
    if a.timing:
        return timing()
    votes = [v for v in a.votes.split(",") if v]
    names = {Path(m).stem for m in a.models.split(",")}
    for vote in votes:
        if not set(vote.split("+")) <= names:
            ap.error(f"--votes {vote}: every member must be one of --models ({', '.join(sorted(names))})")
    ds = load_dataset()
    images, labels = ds.test_images.numpy(), ds.test_labels.numpy()
    models = {  # a name in checkpoints/, or a path
        Path(m).stem: load_checkpoint(m if m.endswith(".safetensors") else Path("checkpoints") / f"{m}.safetensors")
        for m in a.models.split(",")
    }
    out: dict = {"n": a.n, "seed": a.seed, "accuracy": {}, "refused": {}, "preprocess_ms": {}}
    for level in a.levels.split(","):
        xs, ys, refused, ms = [], [], 0, []
        for data, label, _ in photo_set(images, labels, level, a.n, a.seed):
            t = time.perf_counter()
            try:
                xs.append(preprocess(data).image)
                ys.append(label)
            except ImageError:
                refused += 1
            ms.append((time.perf_counter() - t) * 1000)
        out["refused"][level] = {"garment photos": refused, **refusals(images, labels, level, a.odd, a.seed)}
        out["preprocess_ms"][level] = round(float(np.median(ms)), 1)
        x = torch.from_numpy(np.stack(xs)) if xs else None
        probs = {
            name: predict_logits(ck.model, x, tta_flip=ck.tta_flip).softmax(1) if xs else torch.zeros(0, 10)
            for name, ck in models.items()
        }
        for vote in votes:
            probs[vote] = torch.stack([probs[m] for m in vote.split("+")]).mean(0)
        for name, pr in probs.items():
            pred = pr.argmax(1).numpy()
            out["accuracy"].setdefault(name, {})[level] = float((pred == np.array(ys)).sum() / a.n)
    if a.json:
        print(json.dumps(out))
        return 0
    print(f"{a.n} photos per level, seed {a.seed}; a refused photo counts as wrong")
    print("| model | " + " | ".join(a.levels.split(",")) + " |")
    print("|---|" + "---|" * len(a.levels.split(",")))
    for name, acc in out["accuracy"].items():
        print(f"| {name} | " + " | ".join(f"{v:.1%}" for v in acc.values()) + " |")
    print("\n| level | garment photos refused | empty table | two garments | close-up |")
    print("|---|---|---|---|---|")
    for level, r in out["refused"].items():
        print(f"| {level} | {r['garment photos']}/{a.n} | {r['empty table']} | {r['two garments']} | {r['close-up']} |")
    print("preprocess median ms:", out["preprocess_ms"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
