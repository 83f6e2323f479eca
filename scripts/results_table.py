"""Print the docs/RESULTS.md table: one row per shipped checkpoint.

Each measured accuracy comes from `python -m fmnist evaluate checkpoints/NAME.safetensors --json`
(run here, on the real 10k test set); training time and command come from the model card.
Usage: python scripts/results_table.py > /tmp/table.md
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fmnist.checkpoints import SHIPPED, list_checkpoints, read_card  # noqa: E402
from fmnist.models import get_spec  # noqa: E402


def evaluate(path: Path) -> dict:
    cmd = [sys.executable, "-m", "fmnist", "evaluate", str(path.relative_to(ROOT)), "--json"]
    return json.loads(subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    paths = {p.stem: p for p in list_checkpoints(ROOT / "checkpoints")}
    print(
        "| checkpoint | architecture | public claim | measured test accuracy | params | training time (2-core CPU) | reproduce |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in [n for n in SHIPPED if n in paths] + sorted(set(paths) - set(SHIPPED)):
        card, ev = read_card(paths[name]), evaluate(paths[name])
        spec = get_spec(card["arch"])
        claim = f"{spec.reported:.1f}%" if spec.reported and name == card["arch"] else "-"  # claims are per recipe
        t = card.get("train_time_s")
        time_s = f"{t / 60:.1f} min" if t and t >= 120 else (f"{t:.0f} s" if t else "-")
        if card["arch"] == "ensemble":
            time_s = f"{time_s} (sum of members)"
        tta = " (+flip TTA)" if ev.get("tta_flip") else ""
        print(
            f"| `{name}` | {card['arch']} | {claim} | **{ev['accuracy']:.2%}**{tta} | {ev['params']:,} | {time_s} "
            f"| `{card.get('command') or '-'}` |"
        )


if __name__ == "__main__":
    main()
