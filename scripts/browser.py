"""Headless Chromium helpers shared by the browser tests and scripts/screenshots.py."""

from __future__ import annotations

import contextlib
import io
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package (make test installs it)
# Without the background-networking flags Chromium keeps dialling out on this closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright, camera: str | os.PathLike | None = None, nice: int = 0):
    """Debian's Chromium, headless (Playwright cannot download its own browser here).

    With `camera`, a Y4M file (see `write_y4m`) is the webcam: it shows that picture.
    With `nice` (1-19), the browser and every process it starts run at that lower priority (POSIX
    `nice`, through a small wrapper script): in a load test, the students' tabs stand for other
    people's laptops, so their rendering must not take the CPU that the teacher's page is timed on.
    Run as root, Chromium raises its own priority (its browser and GPU processes to nice -8, above
    the server's 0), so the wrapper first drops root's right to do that (util-linux's `setpriv`).
    """
    executable = CHROMIUM
    if nice:
        if not 1 <= nice <= 19:
            raise ValueError(f"nice is 1 to 19, got {nice}")
        root = getattr(os, "geteuid", lambda: -1)() == 0
        keep_low = "setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice " if root and shutil.which("setpriv") else ""
        wrapper = Path(tempfile.mkdtemp(prefix="fmnist-chromium-")) / "chromium"
        wrapper.write_text(f'#!/bin/sh\nexec {keep_low}nice -n {nice} {shlex.quote(CHROMIUM)} "$@"\n')
        wrapper.chmod(0o755)
        executable = str(wrapper)
    fake = (
        []
        if camera is None
        else [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    )
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS + fake)


def write_y4m(jpeg: bytes, path: str | os.PathLike, size: tuple[int, int] = (640, 480)) -> None:
    """A one-frame 4:2:0 Y4M video of a photo, for Chromium's fake webcam."""
    from PIL import Image

    w, h = size
    ycc = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((w, h)).convert("YCbCr")
    y, cb, cr = ycc.split()
    half = (w // 2, h // 2)
    frame = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    Path(path).write_bytes(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + frame)


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
def serve_app(
    env: dict[str, str] | None = None, timeout: float = 60, python: str = sys.executable, wrap: Any = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` on a free loopback port; yields (url, process) and stops it afterwards.

    `python` runs streamlit (another venv's interpreter, say); `wrap(argv) -> argv` may put the command
    inside another (a private mount namespace, in scripts/no_dataset_check.py).
    """
    port = free_port()
    argv = [
        python,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(
        wrap(argv) if wrap else argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


# Predict's 28x28 view and its saliency overlay (the slowest image), found by their alt text.
VIEW, OVERLAY = 'img[alt^="The 28 by 28 image"]', 'img[alt^="Saliency"]'
_SRC = "(sel) => document.querySelector(sel)?.src ?? null"
_CHANGED = """([sel, old]) => {
  const img = document.querySelector(sel);
  return !!img && img.src !== old && img.complete && img.naturalWidth > 0;
}"""
_IDLE = "() => document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning'"


def stroke_latencies(page, strokes: int = 10, timeout: float = 30) -> list[dict[str, float]]:
    """Draw `strokes` short strokes on Predict's canvas, each on top of the drawing already there.

    For each stroke, seconds from mouse-up until: `sent`, the browser sent the drawing to the
    server (the canvas component itself waits about 200 ms after a stroke before it sends);
    `view`, the 28x28 view shows the new image; `all`, the saliency overlay is replaced too and
    the app is idle. Call it with a drawing on the canvas and before the page opened its websocket
    (`watch_websocket`), or `sent` is NaN.
    """
    box = page.locator("[data-testid=stBidiComponentIsolated]").first.bounding_box()
    sent_at: list[float] = getattr(page, "_fmnist_sent", [])
    out = []
    for i in range(strokes):
        view, overlay = page.evaluate(_SRC, VIEW), page.evaluate(_SRC, OVERLAY)
        x = box["x"] + box["width"] * (0.2 + 0.06 * i)  # a new vertical bar each time: the image changes
        page.mouse.move(x, box["y"] + box["height"] * 0.75)
        page.mouse.down()
        page.mouse.move(x, box["y"] + box["height"] * 0.9, steps=6)
        t0 = time.perf_counter()
        page.mouse.up()
        page.wait_for_function(_CHANGED, arg=[VIEW, view], polling="raf", timeout=timeout * 1000)
        t1 = time.perf_counter()
        page.wait_for_function(_CHANGED, arg=[OVERLAY, overlay], polling="raf", timeout=timeout * 1000)
        page.wait_for_function(_IDLE, polling="raf", timeout=timeout * 1000)
        sent = next((t for t in sent_at if t > t0), math.nan)
        out.append({"sent": sent - t0, "view": t1 - t0, "all": time.perf_counter() - t0})
        time.sleep(0.3)
    return out


def watch_websocket(page) -> None:
    """Record when the page sends a drawing-sized message (> 2 kB) on Streamlit's websocket."""
    page._fmnist_sent = []

    def on_ws(ws) -> None:
        ws.on("framesent", lambda f: page._fmnist_sent.append(time.perf_counter()) if f and len(f) > 2000 else None)

    page.on("websocket", on_ws)


WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page, tags: list[str] = WCAG_AA) -> list[dict]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now: [{id, impact, help, targets}]."""
    from axe_playwright_python.sync_playwright import Axe

    res = Axe().run(page, options={"runOnly": {"type": "tag", "values": tags}, "resultTypes": ["violations"]})
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "targets": [(n["target"], n.get("failureSummary", "")[:160]) for n in v["nodes"]],
        }
        for v in res.response["violations"]
    ]


_COUNT_RUNS = """() => {
  if (window.__fmnistRuns !== undefined) return;
  window.__fmnistRuns = 0;  // a run counts when a frame sees the app idle after one that saw it running
  let running = false;
  const tick = () => {
    const state = document.querySelector('[data-testid=stApp]')?.dataset.testScriptState;
    if (state === 'running') running = true;
    else if (running && state === 'notRunning') { running = false; window.__fmnistRuns += 1; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
_DONE = """([n, title]) => {
  const idle = document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning';
  if (title) return idle && [...document.querySelectorAll('[data-testid=stMain] h1')]
    .some(h => h.innerText.includes(title));
  return window.__fmnistRuns > n;
}"""


def timed_rerun(page, action, title: str | None = None, timeout: float = 60) -> float:
    """Seconds from `action()` (a click, a choice) until the script run it started has finished:
    for a page switch (`title` given), until the new page's heading is there and the app is idle."""
    page.evaluate(_COUNT_RUNS)
    before = page.evaluate("() => window.__fmnistRuns")
    t0 = time.perf_counter()
    action()
    try:
        page.wait_for_function(_DONE, arg=[before, title], polling="raf", timeout=timeout * 1000)
    except Exception:
        seen = page.evaluate(
            "() => [window.__fmnistRuns, document.querySelector('[data-testid=stApp]').dataset.testScriptState,"
            " location.pathname, [...document.querySelectorAll('[data-testid=stMain] h1')].map(h => h.innerText)]"
        )
        raise TimeoutError(
            f"no finished run after the action (runs, state, path, headings: {seen}; before {before})"
        ) from None
    return time.perf_counter() - t0


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the Streamlit selectbox labelled `label` (typing filters its options)."""
    page.locator("[data-testid=stSelectbox]").filter(has_text=label).first.click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
