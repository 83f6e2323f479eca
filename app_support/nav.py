"""The app's pages, listed once (app_support/frame.py draws the frame they share).

Adding a page is one line in PAGES plus its script in views/. Code moves between pages with
`st.switch_page(EVALUATE.path)`, never a typed path. Fresh `st.Page` objects are built on every
run: Streamlit forbids sharing them between sessions. This module imports nothing else of the
app, so any module of app_support may name a page.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


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
CLASS = PageSpec("views/classroom.py", "Class board", ":material/groups:", "class")  # with FMNIST_TEACHER_KEY only
PAGES = (HOME, TRAIN, EVALUATE, PREDICT, MISCLASSIFIED, MAP, SWEEP, CLASS)
