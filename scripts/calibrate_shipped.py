"""Fit each shipped checkpoint's temperature on its own run's validation split and store it in its card.

    python scripts/calibrate_shipped.py [NAME ...]

The weights are not touched (the script checks they are bit-identical after the rewrite); only the
card gains `temperature` and `metrics.test.ece_calibrated`. New runs get both at save time
(fmnist.artifacts.save_trained). Ensembles are skipped: `fmnist ensemble` fits theirs when the members share
a validation split (both shipped votes, `photo-vote` and `ensemble`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fmnist.calibrate import fit_for  # noqa: E402
from fmnist.checkpoints import SHIPPED, load_checkpoint, save_checkpoint  # noqa: E402
from fmnist.data import load_dataset  # noqa: E402
from fmnist.evaluate import evaluate_test  # noqa: E402


def main(names: list[str]) -> None:
    ds = load_dataset()
    for name in names or [n for n in SHIPPED if not SHIPPED[n].startswith("ensemble ")]:
        path = ROOT / "checkpoints" / f"{name}.safetensors"
        ck = load_checkpoint(path)
        if not ck.card.get("config", {}).get("val_fraction"):
            print(json.dumps({"name": name, "skipped": "no validation split to fit a temperature on"}))
            continue
        before = {k: v.clone() for k, v in ck.model.state_dict().items()}
        t = fit_for(ck.model, ck.card["config"], ds)
        ev = evaluate_test(ck.model, tta_flip=ck.tta_flip, data=ds)
        card = {**ck.card, "temperature": t}
        card["metrics"]["test"]["ece_calibrated"] = ev.calibrated_ece(t)
        save_checkpoint(ck.model, card, path)
        after = load_checkpoint(path).model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), f"{name}: weights changed"
        print(
            json.dumps(
                {
                    "name": name,
                    "temperature": t,
                    "ece": round(ev.ece, 4),
                    "ece_calibrated": round(card["metrics"]["test"]["ece_calibrated"], 4),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
