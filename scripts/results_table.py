"""Print the docs/RESULTS.md table: one row per shipped checkpoint, from its model card.

Each measured accuracy is the card's test accuracy: `fmnist evaluate` on the real 10k test set when
the model was saved (tests/test_shipped.py re-checks every card against the weights). Training
time and command come from the card too. scripts/docs_check.py compares this with RESULTS.md.
Usage: python scripts/results_table.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fmnist.checkpoints import SHIPPED, list_checkpoints, read_card  # noqa: E402
from fmnist.config import make_config, trainable_models  # noqa: E402
from fmnist.models import get_spec  # noqa: E402
from fmnist.shipping import recipe_differences  # noqa: E402


def own_recipe(card: dict) -> bool:
    """Whether the card's model was trained by its architecture's public recipe, which the claim is about."""
    if card["arch"] not in trainable_models():
        return False
    try:
        return not recipe_differences(card, make_config(recipe=card["arch"]))
    except (TypeError, ValueError):
        return False


def main() -> None:
    paths = {p.stem: p for p in list_checkpoints(ROOT / "checkpoints")}
    print(
        "| checkpoint | architecture | public claim | measured test accuracy | params "
        "| training time (2-core CPU) | reproduce |"
    )
    print("|---|---|---|---|---|---|---|")
    dates, cpus = set(), set()
    for name in [n for n in SHIPPED if n in paths] + sorted(set(paths) - set(SHIPPED)):
        card = read_card(paths[name])
        dates.add(str(card.get("created", ""))[:10])
        cpus.add((card.get("machine") or {}).get("cpu") or "not recorded")
        spec = get_spec(card["arch"])
        r = spec.reported
        claim = (f"{r:.1f}%" if round(r, 1) == r else f"{r:.2f}%") if r and own_recipe(card) else "-"  # per recipe
        t = card.get("train_time_s")
        time_s = f"{t / 60:.1f} min" if t and t >= 120 else (f"{t:.0f} s" if t else "-")
        if card["arch"] == "ensemble":
            time_s = f"{time_s} (sum of members)"
        elif card.get("precision"):
            time_s = f"{time_s}, {card['precision']}"
        tta = " (+flip TTA)" if card.get("config", {}).get("tta_flip") else ""
        acc = card["metrics"]["test"]["accuracy"]
        print(
            f"| `{name}` | {card['arch']} | {claim} | **{acc:.2%}**{tta} | {card['params']:,} | {time_s} "
            f"| `{card.get('command') or '-'}` |"
        )
    print(
        f"\nFrom the cards: each model was tested when it was saved, {min(dates)} to {max(dates)}, on 2-core CPUs "
        f"(the card's `machine`: {', '.join(sorted(cpus))})."
    )


if __name__ == "__main__":
    main()
