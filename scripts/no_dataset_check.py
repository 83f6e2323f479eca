"""A first start with no dataset, in a real browser: Predict classifies a drawing, then Home's button gets the data.

    python scripts/no_dataset_check.py [--python /path/to/fresh/venv/bin/python] [--out DIR]

Runs `streamlit run app.py` with the given interpreter (say, a fresh venv that has only
requirements.txt), with no Fashion-MNIST where the app looks: an empty $FMNIST_DATA_DIR, no ./data,
and, where Debian's package is installed, an empty folder mounted over it in a private mount
namespace (Linux, root: `unshare -m`). A loopback mirror ($FMNIST_DATA_MIRROR) stands in for the
internet. Headless Chromium then draws trousers on Predict, and presses Home's download button.
Screenshots go to --out. Exits non-zero if a step fails.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fmnist.data import SYSTEM_DIR  # noqa: E402
from mirror import LoopbackMirror  # noqa: E402
from scripts.browser import draw_trousers, launch, serve_app, wait_idle  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs streamlit (default: this one)")
    ap.add_argument("--out", default="runs/no-dataset", help="folder for the screenshots")
    a = ap.parse_args()
    out, work = Path(a.out), Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    if (ROOT / "data").exists():
        print(f"error: {ROOT / 'data'} holds a dataset; move it away for this check", file=sys.stderr)
        return 2
    wrap = None
    if SYSTEM_DIR.exists():  # hide Debian's copy from the server only
        if not shutil.which("unshare") or os.geteuid() != 0:
            print(f"error: {SYSTEM_DIR} exists; hiding it needs root and unshare", file=sys.stderr)
            return 2
        (work / "empty").mkdir()
        mount = f"mount --bind {shlex.quote(str(work / 'empty'))} {shlex.quote(str(SYSTEM_DIR))}"
        wrap = lambda argv: ["unshare", "-m", "sh", "-c", f"{mount} && exec {shlex.join(argv)}"]
    home = work / "home"
    home.mkdir()
    ok = True
    with LoopbackMirror() as mirror:
        env = {"HOME": str(home), "FMNIST_DATA_DIR": str(work / "data"), "FMNIST_DATA_MIRROR": mirror.url}
        with serve_app(env, timeout=90, python=a.python, wrap=wrap) as (url, _):
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = launch(pw)
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                page.set_default_timeout(90_000)
                page.goto(url)
                page.get_by_text("not on this server yet").first.wait_for()
                wait_idle(page)
                page.screenshot(path=str(out / "home-no-dataset.png"), full_page=True)
                print("Home: offers the download")

                page.goto(f"{url}/predict")
                page.get_by_text("Draw something on the black canvas").wait_for()
                draw_trousers(page)
                page.get_by_text("5. Centred on 28x28").first.wait_for()
                wait_idle(page)
                verdict = page.locator("h3").filter(has_text="%").first.inner_text()
                page.screenshot(path=str(out / "predict-no-dataset.png"), full_page=True)
                print(f"Predict without the dataset: {verdict!r}")
                ok &= "Trouser" in verdict and sum(mirror.requests.values()) == 0

                page.goto(url)
                page.get_by_role("button", name="Download Fashion-MNIST").click()
                t_click = time.time()
                page.get_by_text("Fashion-MNIST is ready").wait_for()
                took = time.time() - t_click
                wait_idle(page)
                page.screenshot(path=str(out / "home-downloaded.png"), full_page=True)
                where = page.get_by_text("Fashion-MNIST is ready").first.inner_text()
                print(f"Home after the button ({took:.1f} s): {where!r}; files fetched: {dict(mirror.requests)}")
                ok &= sorted(mirror.requests.values()) == [1, 1, 1, 1] and str(work / "data") in where
                ok &= len(list((work / "data").glob("*.gz"))) == 4
                browser.close()
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
