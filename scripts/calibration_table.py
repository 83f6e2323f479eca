"""The calibration table of docs/RESULTS.md, from the shipped models' cards (nothing is re-measured).

    python scripts/calibration_table.py [FOLDER]

Each card holds its temperature T (fitted on the run's own validation split when it was saved) and
the test-set ECE (15 bins) without and with it. A model without a validation split (mlp) or an
ensemble has no T.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist.checkpoints import scan_cards


def table(folder: str | Path) -> str:
    rows = ["| model | T | ECE | ECE calibrated |", "|---|---|---|---|"]
    for path, card in scan_cards(folder):
        test, t = card.get("metrics", {}).get("test", {}), card.get("temperature")
        cal = test.get("ece_calibrated")
        rows.append(
            f"| {path.stem} | {t:.3f} | {test['ece']:.4f} | {cal:.4f} |"
            if t is not None and cal is not None
            else f"| {path.stem} | – (no validation split to fit it on) | {test['ece']:.4f} | – |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "checkpoints"))
