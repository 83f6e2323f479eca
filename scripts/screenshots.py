"""Headless-Chromium screenshots of every page, for docs/screenshots/ and for looking at the app.

Usage: python scripts/screenshots.py [URL] [OUTDIR]   (the app must be running at URL)
"""

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

URL = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8501"
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/screenshots")
PAGES = {"home": "", "train": "train", "evaluate": "evaluate", "predict": "predict", "misclassified": "misclassified"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def wait_idle(page, timeout: float = 90) -> None:
    """Wait until Streamlit has finished running the script (no 'Running' status widget)."""
    page.wait_for_selector("[data-testid=stApp]", timeout=timeout * 1000)
    t0 = time.time()
    time.sleep(1.5)
    while time.time() - t0 < timeout:
        if page.locator("[data-testid=stStatusWidget]").count() == 0:
            break
        time.sleep(0.5)
    time.sleep(1.5)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        for name, path in PAGES.items():
            page.goto(f"{URL}/{path}")
            wait_idle(page)
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            print("saved", OUT / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
