"""Headless Chromium helpers shared by the browser tests and scripts/screenshots.py."""

from __future__ import annotations

import time

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package (make test installs it)
# Without the background-networking flags Chromium keeps dialling out on this closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def launch(playwright):
    """Debian's Chromium, headless (Playwright cannot download its own browser here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_idle(page, timeout: float = 90) -> None:
    """Wait until Streamlit has finished running the script (no 'Running' status widget)."""
    page.wait_for_selector("[data-testid=stApp]", timeout=timeout * 1000)
    t0 = time.time()
    time.sleep(1.5)
    while time.time() - t0 < timeout:
        if page.locator("[data-testid=stStatusWidget]").count() == 0:
            break
        time.sleep(0.5)
    time.sleep(1.0)


def draw_trousers(page) -> None:
    """Two filled legs joined at the waist, drawn with the mouse on the Predict canvas."""
    canvas = page.locator("[data-testid=stBidiComponentIsolated]").first
    canvas.wait_for()
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.15, box["width"], box["height"]
    strokes = [
        ((x0 + w * (dx + 0.03 * k), y0), (x0 + w * (dx + 0.03 * k), y0 + h * 0.7))
        for dx in (0.0, 0.28)
        for k in range(4)
    ]
    strokes.append(((x0, y0), (x0 + w * 0.4, y0)))
    for (xa, ya), (xb, yb) in strokes:
        page.mouse.move(xa, ya)
        page.mouse.down()
        page.mouse.move(xb, yb, steps=12)
        page.mouse.up()
