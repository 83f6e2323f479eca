"""The class board under a class: N student tabs share a run each; how long does the teacher's board take to draw?

    python scripts/board_load.py 30                 # 30 student runs (the student preset), one server
    python scripts/board_load.py 30 --json out.json

One `streamlit run app.py` on loopback with a teacher's key and FMNIST_MAX_TRAININGS=1; N headless
Chromium tabs (each its own browser session) press Start on Train with the student preset (each its
own seed), sharing their runs under a nickname. The teacher's tab opens the Class page and gives the
key; the script then times full loads of the board (from the sidebar's link until the table is drawn and
the app is idle) while the queue is full and once every run has finished, and reads the
board's own counters as the runs progress. Prints the CPU flags with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from fmnist.runtime import machine
from scripts.browser import launch, serve_app, wait_idle

KEY = "board-load-key"


def metric(page, label: str) -> int:
    box = page.locator("[data-testid=stMetric]").filter(has_text=label)
    return int(box.locator("[data-testid=stMetricValue]").inner_text()) if box.count() else 0


def board_load(page) -> float:
    """Seconds from the sidebar's link to the board until its table is drawn and the script is idle.

    (A link, not a reload: a reload is a new browser session, which asks for the key again.)
    """
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_role("link", name="Train").click()
    page.get_by_role("button", name="Start training").wait_for(timeout=120_000)
    wait_idle(page, timeout=120)
    t0 = time.perf_counter()
    sidebar.get_by_role("link", name="Class board").click()
    page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=120_000)
    wait_idle(page, timeout=120)
    return time.perf_counter() - t0 - 1.0  # wait_idle's settling second is not page time


def run(n: int, checkpoints: str) -> dict:
    env = {"FMNIST_CHECKPOINT_DIR": checkpoints, "FMNIST_MAX_TRAININGS": "1", "FMNIST_TEACHER_KEY": KEY}
    with serve_app(env) as (url, _), sync_playwright() as p:
        browser = launch(p)
        teacher = browser.new_context(viewport={"width": 1400, "height": 2100}).new_page()
        teacher.goto(f"{url}/class")
        teacher.get_by_role("textbox", name="Teacher's key").fill(KEY)
        teacher.get_by_role("button", name="Open the class board").click()
        teacher.get_by_text("No shared runs yet").wait_for(timeout=60_000)
        tabs = []
        for i in range(n):
            tab = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
            tab.goto(f"{url}/train")
            tab.get_by_role("button", name="Start training").wait_for(timeout=120_000)
            field = tab.get_by_role("textbox", name="Nickname (optional)")
            field.fill(f"Student {i + 1}")
            field.press("Enter")
            tab.get_by_text("Augmentation, regularisation").click()
            seed = tab.get_by_role("spinbutton", name="Seed")
            seed.fill(str(i))
            seed.press("Enter")
            wait_idle(tab)
            tabs.append(tab)
        t0 = time.monotonic()
        for tab in tabs:
            tab.get_by_role("button", name="Start training").click()
        while metric(teacher, "Shared runs") < n:
            time.sleep(0.5)
        busy = [board_load(teacher) for _ in range(3)]  # the queue full, the board refreshing
        progress = []
        while metric(teacher, "Finished") + metric(teacher, "Diverged or failed") < n:
            progress.append([round(time.monotonic() - t0)] + [metric(teacher, k) for k in ("Queued", "Training")])
            time.sleep(2.0)
        last_end = time.monotonic() - t0
        time.sleep(3.0)  # the last test accuracies are measured
        done = [board_load(teacher) for _ in range(3)]
        errors = sum(t.locator("[data-testid=stException]").count() for t in [*tabs, teacher])
        browser.close()
    return {
        "runs": n,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "board_draw_s_queue_full": {"median": statistics.median(busy), "all": busy},
        "board_draw_s_all_finished": {"median": statistics.median(done), "all": done},
        "last_run_ended_s": round(last_end, 1),
        "progress_s_queued_training": progress[:: max(1, len(progress) // 10)],
        "errors": errors,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int, nargs="?", default=30, help="student tabs (default 30)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()
    import tempfile

    from tests.conftest import private_checkpoints

    with tempfile.TemporaryDirectory() as tmp:
        figures = run(a.n, str(private_checkpoints(Path(tmp) / "ck")))
    print(json.dumps(figures, indent=1))
    if a.json:
        a.json.write_text(json.dumps(figures, indent=1) + "\n")
    os._exit(0 if figures["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
