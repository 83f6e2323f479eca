"""Print the best model's validation accuracy against training epochs and minutes (docs/RESULTS.md).

Reads the `history` stored in each checkpoint's card: validation accuracy after every epoch and the
elapsed time. Elapsed times include whatever else ran on the machine; `--solo-epoch-s` converts
epochs to the minutes a run alone on the machine takes (measured separately: see RESULTS.md).
Usage: python scripts/best_curve.py CHECKPOINT [CHECKPOINT ...] [--solo-epoch-s 47.5]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fmnist.checkpoints import read_card


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--solo-epoch-s", type=float, default=47.5)
    ap.add_argument("--every", type=int, default=8, help="print every Nth epoch (and the last)")
    a = ap.parse_args()
    for path in a.checkpoints:
        card = read_card(path)
        hist, cfg = card["history"], card["config"]
        print(
            f"\n`{Path(path).name}`: {cfg['epochs']} epochs, label smoothing {cfg['label_smoothing']}, "
            f"augment {cfg['augment']}, seed {cfg['seed']}; best epoch {card['best_epoch']}\n"
        )
        print("| epoch | minutes alone (epochs x solo epoch) | minutes as run | validation accuracy |")
        print("|---|---|---|---|")
        for h in hist:
            if h["epoch"] % a.every == 0 or h["epoch"] == len(hist):
                solo = h["epoch"] * a.solo_epoch_s / 60
                print(f"| {h['epoch']} | {solo:.1f} | {h['elapsed'] / 60:.1f} | {h['val_acc']:.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
