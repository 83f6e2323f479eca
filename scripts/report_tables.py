"""Print docs/RESULTS.md's per-class tables: each public report's own table beside ours.

The reports' numbers are copied from their text in ../shared/seeds/ (000: Tables I and II, per-class
accuracy in %; 001: its classification report, whose supports are MNIST's). Ours come from the
shipped checkpoints' cards (test set, measured once at save time).
Usage: python scripts/report_tables.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fmnist.checkpoints import read_card  # noqa: E402
from fmnist.data import CLASSES  # noqa: E402

REPORT_000_CNN = [80.6, 97.80, 79.70, 89.50, 88.10, 98.70, 80.70, 97.40, 96.00, 93.50]  # Table I
REPORT_000_NN = [78.8, 98.5, 78.4, 87.4, 72.3, 98.3, 47.1, 95.3, 96.9, 95.6]  # Table II
REPORT_001 = [  # (precision, recall, f1, support) per row 0-9
    (1.00, 1.00, 1.00, 980),
    (1.00, 1.00, 1.00, 1135),
    (0.99, 1.00, 1.00, 1032),
    (0.99, 1.00, 1.00, 1010),
    (0.99, 1.00, 1.00, 982),
    (0.99, 0.99, 0.99, 892),
    (1.00, 0.99, 0.99, 958),
    (0.99, 1.00, 0.99, 1028),
    (1.00, 0.99, 1.00, 974),
    (1.00, 0.99, 0.99, 1009),
]


def per_class(name: str) -> list[dict]:
    return read_card(ROOT / "checkpoints" / f"{name}.safetensors")["metrics"]["test"]["per_class"]


def accuracy_table(title: str, report: list[float], ours: str) -> None:
    rows = per_class(ours)
    print(f"\n{title}\n\n| class | report (%) | ours, `{ours}` (%) | difference |\n|---|---|---|---|")
    for cls, r, o in zip(CLASSES, report, rows):
        print(f"| {cls} | {r:.1f} | {o['recall'] * 100:.1f} | {o['recall'] * 100 - r:+.1f} |")
    mean_r, mean_o = sum(report) / 10, sum(o["recall"] for o in rows) * 10
    print(f"| **mean = accuracy** | **{mean_r:.2f}** | **{mean_o:.2f}** | {mean_o - mean_r:+.2f} |")


def main() -> None:
    accuracy_table("Report 000, Table I (its CNN) beside `cnn2`", REPORT_000_CNN, "cnn2")
    accuracy_table("Report 000, Table II (its two-hidden-layer NN) beside `mlp2`", REPORT_000_NN, "mlp2")
    rows = per_class("cnn3bn")
    print("\nReport 001's classification report beside `cnn3bn` (ours on Fashion-MNIST)\n")
    print("| row | report: precision / recall / F1 / support | ours: class | precision / recall / F1 / support |")
    print("|---|---|---|---|")
    for i, ((p, r, f, n), o) in enumerate(zip(REPORT_001, rows)):
        ours = f"{o['precision']:.2f} / {o['recall']:.2f} / {o['f1']:.2f} / {o['support']}"
        print(f"| {i} | {p:.2f} / {r:.2f} / {f:.2f} / **{n}** | {o['class']} | {ours} |")


if __name__ == "__main__":
    main()
