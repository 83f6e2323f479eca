"""Rewrite the validation metrics of saved model cards from their own history; the weights are not touched.

    python scripts/fix_card_metrics.py [FOLDER]        (default: checkpoints/)

Cards written before issue 21 stored the best epoch's *score* as "validation accuracy": minus the
validation loss under monitor="val_loss" (keras3: -0.2995), or the training accuracy for a run
without a validation split (mlp). Each card's `metrics.val` becomes the best epoch's real
validation accuracy and loss from its `history`, or {"split": "none"}. Every tensor is checked to
be byte-identical before a file is replaced. Safe to run again: an up-to-date card is left alone.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safetensors.torch import load as st_load

from fmnist.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint, to_bytes, val_metrics


def fixed_val(card: dict) -> dict | None:
    """The card's corrected metrics.val, or None to leave it as it is."""
    history, best = card.get("history") or [], card.get("best_epoch")
    rows = [h for h in history if h.get("epoch") == best]
    if not rows:  # an ensemble: not trained, so not validated itself
        return None if card.get("metrics", {}).get("val") else {"split": "none"}
    row = rows[-1]
    acc, loss = float(row.get("val_acc", math.nan)), float(row.get("val_loss", math.nan))
    return val_metrics(acc, loss)


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "checkpoints"
    for path in list_checkpoints(folder):
        ck = load_checkpoint(path)
        card = ck.card
        val = fixed_val(card)
        if val is None or card.get("metrics", {}).get("val") == val:
            print(f"{path.name}: unchanged")
            continue
        old = card.get("metrics", {}).get("val")
        card = {**card, "metrics": {**card.get("metrics", {}), "val": val}}
        before = st_load(path.read_bytes())
        after = st_load(to_bytes(ck.model, card))
        same = before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)
        if not same:
            print(f"{path.name}: the weights would change; left alone", file=sys.stderr)
            return 1
        save_checkpoint(ck.model, card, path, overwrite=True)
        print(f"{path.name}: metrics.val {old} -> {val}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
