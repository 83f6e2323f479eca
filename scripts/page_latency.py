"""Benchmark: page switches and a Misclassified filter, in real headless Chromium.

Issue 13's goal: <= 1 s p95 with the caches warm. Starts the app on loopback with the shipped models,
visits every page once to warm the caches, then for --rounds rounds clicks through the sidebar's
pages and changes the true class on Misclassified twice, timing each from the
click until the script run has finished (and the new page's heading is there).
Usage: python scripts/page_latency.py [--rounds N] [--json]
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app_support.nav import PAGES
from fmnist.runtime import cpu_flags
from scripts.browser import choose, launch, serve_app, timed_rerun, wait_idle
from scripts.predict_latency import pct

HEADINGS = {
    "": "Fashion-MNIST Studio",
    "train": "Train a network",
    "evaluate": "Evaluate",
    "predict": "Predict",
    "misclassified": "Misclassified",
    "map": "embedding map",
    "sweep": "Sweep",
}


def one_round(page) -> dict[str, float]:
    times = {}
    for spec in PAGES:
        link = page.locator("[data-testid=stSidebar]").get_by_role("link", name=spec.title)
        times[spec.url_path or "home"] = timed_rerun(page, link.click, HEADINGS[spec.url_path or ""])
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Misclassified").click()
    wait_idle(page)
    for cls in ("Coat", "Pullover"):
        times[f"filter {cls}"] = timed_rerun(page, lambda c=cls: choose(page, "True class", c))
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with serve_app() as (url, _), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(180_000)
        page.goto(url)
        wait_idle(page)
        one_round(page)  # warm-up: the dataset, each model's evaluation, the map's projection
        rounds = [one_round(page) for _ in range(a.rounds)]
        browser.close()
    ms = [t * 1000 for r in rounds for t in r.values()]
    per = {k: statistics.median(r[k] * 1000 for r in rounds) for k in rounds[0]}
    res = {
        "flags": ",".join(cpu_flags()),
        "rounds": a.rounds,
        "median_ms": statistics.median(ms),
        "p95_ms": pct(ms, 0.95),
        "max_ms": max(ms),
        "median_ms_each": {k: round(v) for k, v in per.items()},
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(
            f"all {len(ms)} actions: median {res['median_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms, "
            f"max {res['max_ms']:.0f} ms"
        )
        print("median per action (ms): " + ", ".join(f"{k} {v}" for k, v in res["median_ms_each"].items()))
        print(f"flags: {res['flags']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
