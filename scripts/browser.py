"""Headless Chromium helpers shared by the browser tests and scripts/screenshots.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` on a free loopback port; yields (url, process) and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                if time.time() - t0 > timeout or proc.poll() is not None:
                    raise RuntimeError("streamlit did not start") from None
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def process_tree(pid: int) -> dict[int, int]:
    """Every process below `pid`, as {pid: parent pid} (Linux /proc)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for c in (c for c, pp in parent.items() if pp == p):
            tree[c] = p
            todo.append(c)
    return tree


def training_workers(server_pid: int) -> list[int]:
    """The server's training worker processes: the children of its multiprocessing forkserver."""
    tree = process_tree(server_pid)
    forkservers = {p for p, pp in tree.items() if pp == server_pid and b"forkserver" in _cmdline(p)}
    return [p for p, pp in tree.items() if pp in forkservers]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# The 28x28 view on Predict, found by its caption; and the saliency overlay (the slowest image).
_SRC = """(text) => {
  const el = [...document.querySelectorAll('[data-testid=stImage]')].find(e => e.innerText.includes(text));
  return el && el.querySelector('img') ? el.querySelector('img').src : null;
}"""
_CHANGED = """([text, old]) => {
  const el = [...document.querySelectorAll('[data-testid=stImage]')].find(e => e.innerText.includes(text));
  const img = el && el.querySelector('img');
  return !!img && img.src !== old && img.complete && img.naturalWidth > 0;
}"""
_IDLE = "() => document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning'"


def stroke_latencies(page, strokes: int = 10, timeout: float = 30) -> list[tuple[float, float]]:
    """Draw `strokes` short strokes on Predict's canvas, each on top of the drawing already there.

    For each stroke: (seconds from mouse-up until the 28x28 view shows the new image, seconds until
    the saliency overlay is replaced too and the app is idle). Call it with a drawing on the canvas.
    """
    box = page.locator("[data-testid=stBidiComponentIsolated]").first.bounding_box()
    out = []
    for i in range(strokes):
        view, overlay = page.evaluate(_SRC, "28x28 input"), page.evaluate(_SRC, "Saliency")
        x = box["x"] + box["width"] * (0.2 + 0.06 * i)  # a new vertical bar each time: the image changes
        page.mouse.move(x, box["y"] + box["height"] * 0.75)
        page.mouse.down()
        page.mouse.move(x, box["y"] + box["height"] * 0.9, steps=6)
        t0 = time.perf_counter()
        page.mouse.up()
        page.wait_for_function(_CHANGED, arg=["28x28 input", view], polling="raf", timeout=timeout * 1000)
        t1 = time.perf_counter()
        page.wait_for_function(_CHANGED, arg=["Saliency", overlay], polling="raf", timeout=timeout * 1000)
        page.wait_for_function(_IDLE, polling="raf", timeout=timeout * 1000)
        out.append((t1 - t0, time.perf_counter() - t0))
        time.sleep(0.3)
    return out
