"""Headless-Chromium screenshots of every page, for docs/screenshots/ and for looking at the app.

Usage: python scripts/screenshots.py [URL] [OUTDIR] [PAGE,PAGE]   (the app must be running at URL)
"""

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.browser import draw_trousers, launch, wait_idle

URL = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8501"
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/screenshots")
# page -> (url path, viewport height): Streamlit scrolls inside its own container, so the
# viewport must be tall enough to hold the whole page.
PAGES = {
    "home": ("", 3300, "The model zoo"),
    "train": ("train", 1300, "Start training"),
    "evaluate": ("evaluate", 2900, "Calibration"),
    "predict": ("predict", 2300, "Brush width"),
    "misclassified": ("misclassified", 2900, "errors"),
    "sweep": ("sweep", 2200, "Start the sweep"),
    "layers": ("predict", 2600, "Brush width"),
    "map": ("map", 1500, "nearest dots"),
    "photo": ("predict?source=upload&model=best", 2300, "HEIC"),
}
ONLY = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None  # e.g. "sweep,predict"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        for name, (path, height, marker) in PAGES.items():
            if ONLY and name not in ONLY:
                continue
            page.set_viewport_size({"width": 1400, "height": height})
            page.goto(f"{URL}/{path}")
            page.get_by_text(marker).first.wait_for(timeout=120_000)
            wait_idle(page)
            if name == "train":  # a short live run: the screenshot shows the curves growing
                field = page.get_by_role("spinbutton", name="Training images (0 = all)")
                field.fill("12000")
                field.press("Enter")
                wait_idle(page)
                page.get_by_role("button", name="Start training").click()
                time.sleep(45)
            if name == "sweep":  # the classroom default: 8 trials, about half a minute on a free server
                page.get_by_role("button", name="Start the sweep").click()
                page.get_by_text("8 of 8 trials done").first.wait_for(timeout=600_000)
                wait_idle(page)
            if name == "layers":  # a test sample, then the inside-the-network view
                page.get_by_text("Test sample").click()
                wait_idle(page)
                page.get_by_text("Look inside the network").click()
                page.get_by_text("One step of the convolution").wait_for(timeout=120_000)
                wait_idle(page)
            if name == "misclassified":
                page.get_by_role("button", name="Details").first.click()
                wait_idle(page)
            if name == "photo":  # a phone-style photo of a pullover on a table, uploaded
                import numpy as np
                from photos import render

                from fmnist.data import load_dataset

                photo = render(load_dataset().test_images[1].numpy(), "phone", np.random.default_rng(4))
                page.locator("input[type=file]").set_input_files(
                    files=[{"name": "phone-photo.jpg", "mimeType": "image/jpeg", "buffer": photo}]
                )
                page.get_by_text("2. Garment found").first.wait_for(timeout=120_000)
                wait_idle(page)
            if name == "predict":
                draw_trousers(page)
                page.get_by_text("How the image became 28x28").first.wait_for()
                wait_idle(page)
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            print("saved", OUT / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
