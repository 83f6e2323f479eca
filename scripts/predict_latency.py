"""Benchmark: Predict's answer to a stroke, in real headless Chromium (issue 13's goal: <= 300 ms p95).

Starts the app on loopback with the shipped models, draws a garment, then 10 (--strokes) more
strokes on top, and prints, from mouse-up: when the browser sent the drawing (the canvas component
waits about 200 ms first), when the 28x28 view showed the new image, and when the saliency overlay
had too and the app was idle; and the app's own part, from the drawing sent to the view updated.
Usage: python scripts/predict_latency.py [--strokes N] [--model NAME] [--json]
"""

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fmnist.runtime import cpu_flags
from scripts.browser import draw_trousers, launch, serve_app, stroke_latencies, wait_idle, watch_websocket


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
        watch_websocket(page)
        page.goto(f"{url}/predict?source=draw&model={a.model}")
        wait_idle(page)
        draw_trousers(page)
        page.get_by_text("28x28 input").wait_for(timeout=60_000)
        wait_idle(page)
        stroke_latencies(page, 2)  # warm-up: first run of each cache
        times = stroke_latencies(page, a.strokes)
        browser.close()
    res = {"cpu": platform.processor() or "", "flags": ",".join(cpu_flags()), "model": a.model, "strokes": a.strokes}
    for k in ("sent", "view", "all"):
        ms = [t[k] * 1000 for t in times]
        res[f"{k}_ms"] = {"median": statistics.median(ms), "p95": pct(ms, 0.95), "max": max(ms)}
    ours = [(t["view"] - t["sent"]) * 1000 for t in times]  # from the drawing leaving the browser
    res["sent_to_view_ms"] = {"median": statistics.median(ours), "p95": pct(ours, 0.95), "max": max(ours)}
    res["each_ms"] = [{k: round(v * 1000) for k, v in t.items()} for t in times]
    if a.json:
        print(json.dumps(res))
    else:
        for k in ("sent_ms", "view_ms", "all_ms", "sent_to_view_ms"):
            print(f"{k}: " + "  ".join(f"{n} {v:.0f}" for n, v in res[k].items()))
        print(f"flags: {res['flags']}  model: {a.model}  strokes: {a.strokes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
