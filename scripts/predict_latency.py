"""Benchmark: Predict's answer to a stroke, in real headless Chromium (issue 13's goal: <= 300 ms p95).

Starts the app on loopback with the shipped models, draws a garment, then 10 (--strokes) more
strokes on top, and prints per stroke the seconds from mouse-up until the verdict's 28x28 view is
replaced, and until the saliency overlay is too and the app is idle.
Usage: python scripts/predict_latency.py [--strokes N] [--model NAME] [--json]
"""

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.browser import draw_trousers, launch, serve_app, stroke_latencies, wait_idle  # noqa: E402


def cpu_flags() -> str:
    flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split()
    return ",".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strokes", type=int, default=10)
    ap.add_argument("--model", default="quick")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with serve_app() as (url, _), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        page.goto(f"{url}/predict?source=draw&model={a.model}")
        wait_idle(page)
        draw_trousers(page)
        page.get_by_text("28x28 input").wait_for(timeout=60_000)
        wait_idle(page)
        stroke_latencies(page, 2)  # warm-up: first run of each cache
        times = stroke_latencies(page, a.strokes)
        browser.close()
    view, full = [t[0] * 1000 for t in times], [t[1] * 1000 for t in times]
    res = {
        "cpu": platform.processor() or "", "flags": cpu_flags(), "model": a.model, "strokes": a.strokes,
        "view_ms": {"median": statistics.median(view), "p95": pct(view, 0.95), "max": max(view)},
        "all_ms": {"median": statistics.median(full), "p95": pct(full, 0.95), "max": max(full)},
        "each_ms": [[round(v), round(f)] for v, f in zip(view, full)],
    }  # fmt: skip
    if a.json:
        print(json.dumps(res))
    else:
        for k in ("view_ms", "all_ms"):
            print(f"{k}: " + "  ".join(f"{n} {v:.0f}" for n, v in res[k].items()))
        print(f"flags: {res['flags']}  model: {a.model}  strokes: {a.strokes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
