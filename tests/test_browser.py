"""Real-browser tests: Streamlit served on localhost, driven by Playwright in Debian's Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="chromium not installed (make test installs it)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    shutil.copy(ROOT / "checkpoints" / "quick.safetensors", ck)
    port = free_port()
    env = {**os.environ, "FMNIST_CHECKPOINT_DIR": str(ck)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1300, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def test_draw_on_canvas_and_get_a_prediction(server, page, tmp_path):
    page.goto(f"{server}/predict")
    page.get_by_text("Draw something on the black canvas").wait_for()
    canvas = page.locator("[data-testid=stBidiComponentIsolated]").first
    canvas.wait_for()
    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.15
    # Trousers: two filled legs joined at the waist.
    for dx in (0.0, 0.28):
        for k in range(4):
            page.mouse.move(x0 + box["width"] * (dx + 0.03 * k), y0)
            page.mouse.down()
            page.mouse.move(x0 + box["width"] * (dx + 0.03 * k), y0 + box["height"] * 0.7, steps=12)
            page.mouse.up()
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + box["width"] * 0.4, y0, steps=8)
    page.mouse.up()
    page.get_by_text("What the model sees").first.wait_for()
    page.get_by_text("5. Centred on 28x28").first.wait_for()
    page.wait_for_timeout(3000)  # let the reruns of the last strokes finish
    page.locator("[data-testid=stStatusWidget]").wait_for(state="detached", timeout=60_000)
    verdict = page.locator("h3").filter(has_text="%").first.inner_text()
    page.screenshot(path="/tmp/predict-drawn.png", full_page=True)
    assert "Trouser" in verdict, verdict


def test_every_page_renders_without_error(server, page):
    for path, marker in [("", "Ten classes"), ("train", "Start training"), ("evaluate", "Confusion matrix"),
                         ("misclassified", "errors")]:  # fmt: skip
        page.goto(f"{server}/{path}")
        page.get_by_text(marker).first.wait_for()
        assert page.locator("[data-testid=stException]").count() == 0


def test_click_confusion_cell_opens_its_mistakes(server, page):
    page.goto(f"{server}/evaluate")
    page.get_by_text("Confusion matrix").first.wait_for()
    plot = page.locator("[data-testid=stPlotlyChart]").first
    plot.locator(".nsewdrag").first.wait_for()
    area = plot.locator(".nsewdrag").first.bounding_box()  # the 10x10 plotting area
    row, col = 6, 0  # true Shirt, predicted T-shirt: the classic confusion
    page.mouse.click(area["x"] + area["width"] * (col + 0.5) / 10, area["y"] + area["height"] * (row + 0.5) / 10)
    page.get_by_text("Misclassified test images").wait_for()
    page.get_by_text("errors", exact=False).first.wait_for()
    page.locator("small").filter(has_text="pred T-shirt/top").first.wait_for()  # the tiles have rendered
    page.wait_for_timeout(1000)
    body = page.locator("[data-testid=stMain]").inner_text()
    assert "true Shirt" in body and "pred T-shirt/top" in body
    assert "true Coat" not in body  # only that cell's images
