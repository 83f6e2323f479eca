"""The frame every page shares: routing, page config, the sidebar, and the server's per-request set-up.

app.py calls `run_app()`; the pages themselves are listed in app_support/nav.py.
"""

from __future__ import annotations

import gc
import threading

import streamlit as st
import torch

from app_support.classroom import board_open
from app_support.nav import CLASS, PAGES, TRAIN
from app_support.state import model_picker, settings
from app_support.training import publish_finished, run_status
from fmnist.settings import SettingsError


def run_app() -> None:
    """Route to the requested page, draw the shared frame, then run the page."""
    try:
        one_thread_per_request()
    except SettingsError as e:  # a teacher's typo in an FMNIST_* variable: one line, on every page
        st.error(f"The server's settings are wrong: {e}. Fix it and restart the app.")
        st.stop()
    pages = [p for p in PAGES if p is not CLASS or board_open()]  # no teacher's key, no class board
    current = st.navigation([p.page() for p in pages], position="hidden")  # our own links below
    st.set_page_config(
        page_title=f"{current.title} · Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide"
    )
    with st.sidebar:
        st.title("Fashion-MNIST Studio")
        for p in pages:
            st.page_link(p.path, label=p.title, icon=p.icon)
        st.divider()
        publish_finished()  # a run that just ended joins the picker in this very rerun
        model_picker()
        st.caption("Shipped checkpoints, your saved models, and this session's runs.")
        if current.url_path != TRAIN.url_path:  # the Train page shows the run itself
            run_status()
    try:
        current.run()
    finally:
        freeze_imported_heap(current.url_path or "")


def one_thread_per_request() -> None:
    """Torch in the server uses FMNIST_SERVER_THREADS threads per operation (default 1).

    The server's work is many small requests from many tabs (one image, one saliency map), each on
    its own thread: splitting each across the cores only added wake-up delays (Predict's answers
    to a stroke, measured: median 385 -> 340 ms with everything drawn). Training runs in worker
    processes with torch's own default.
    """
    n = settings().server_threads
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


_frozen_after: set[str] = set()
_freeze_lock = threading.Lock()


def freeze_imported_heap(page: str) -> None:
    """After the first run of each page in this server: collect, then move everything alive (mostly the
    libraries that page imported) out of the garbage collector's sight (gc.freeze).

    Python's full collections otherwise walk every object of torch, plotly, pandas and Streamlit:
    measured on Predict, a 160 ms pause every few strokes. What is frozen is never collected, so
    this runs at most once per page (7 times per server), not per session.
    """
    with _freeze_lock:
        if page in _frozen_after:
            return
        _frozen_after.add(page)
    gc.collect()
    gc.freeze()
