"""The app's pages, listed once, and the frame they share (page config and sidebar).

Adding a page is one line in PAGES plus its script in views/. Code moves between pages with
`st.switch_page(EVALUATE.path)`, never a typed path. Fresh `st.Page` objects are built on every
run: Streamlit forbids sharing them between sessions.
"""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass

import streamlit as st
import torch


@dataclass(frozen=True)
class PageSpec:
    path: str  # the script, relative to app.py
    title: str
    icon: str
    url_path: str | None = None  # None: the home page, at /

    def page(self) -> st.Page:
        return st.Page(
            self.path, title=self.title, icon=self.icon, url_path=self.url_path, default=self.url_path is None
        )


HOME = PageSpec("views/home.py", "Home: the dataset", ":material/home:")
TRAIN = PageSpec("views/train.py", "Train", ":material/model_training:", "train")
EVALUATE = PageSpec("views/evaluate.py", "Evaluate", ":material/analytics:", "evaluate")
PREDICT = PageSpec("views/predict.py", "Predict", ":material/draw:", "predict")
MISCLASSIFIED = PageSpec("views/misclassified.py", "Misclassified", ":material/report:", "misclassified")
MAP = PageSpec("views/embedding.py", "Map", ":material/scatter_plot:", "map")
SWEEP = PageSpec("views/sweep.py", "Sweep", ":material/tune:", "sweep")
PAGES = (HOME, TRAIN, EVALUATE, PREDICT, MISCLASSIFIED, MAP, SWEEP)


def run_app() -> None:
    """Route to the requested page, draw the shared frame, then run the page."""
    one_thread_per_request()
    from app_support.state import model_picker
    from app_support.training import publish_finished, run_status

    current = st.navigation([p.page() for p in PAGES], position="hidden")  # our own links below
    st.set_page_config(
        page_title=f"{current.title} · Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide"
    )
    with st.sidebar:
        st.title("Fashion-MNIST Studio")
        for p in PAGES:
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
    n = int(os.environ.get("FMNIST_SERVER_THREADS", "1"))
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
