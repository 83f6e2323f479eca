"""Print docs/RESULTS.md's speed table from a stored `python -m fmnist bench --json` output.

    python -m fmnist bench --json > docs/figures/bench.json     # measure (about a minute, 2 cores)
    python scripts/bench_table.py [JSON]                        # the table, with its machine and date

scripts/docs_check.py compares the table in RESULTS.md with this script's output, so the table
always shows the stored measurement, and says where and when it was taken.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "docs" / "figures" / "bench.json"
ROWS = {
    "dataloader_fp32": ("Conventional per-sample `DataLoader` (PIL → tensor → normalise)", "fp32"),
    "tensor_fp32": ("This project's `Trainer.step` on whole-tensor batches", "fp32"),
    "tensor_bf16": ("This project's `Trainer.step` on whole-tensor batches", "bf16 autocast"),
}


def table(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"Measured {r['date']} on {m['cpu']!r}, {m['cores']} cores, flags {', '.join(m['cpu_flags']) or 'none'}; "
        f"`{r['arch']}`, batch {r['batch_size']}, {r['threads']} threads, {r['rounds']} alternating rounds of "
        f"{r['batches_per_round']} batches.",
        "",
        "| Training loop | precision | images/s | vs. DataLoader |",
        "|---|---|---|---|",
    ]
    for key, ips in r["images_per_s"].items():
        what, precision = ROWS[key]
        lines.append(f"| {what} | {precision} | {ips:,.0f} | {r['speedup_vs_dataloader'].get(key, 1.0):.2f}× |")
    lat = r["predict_latency_ms"]
    lines += [
        "",
        f"Evaluating the 10,000 test images ({r['eval_precision']}): {r['eval_test_set_s']:.2f} s. One drawn image "
        f"(preprocessing + forward, fp32): {lat['median']:.1f} ms median, {lat['p95']:.1f} ms p95.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else STORED).read_text())))
