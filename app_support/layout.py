"""The frame every page shares: page config, sidebar navigation and the model picker.

Pages live in pages/ (Streamlit's multipage folder); each one starts with `page_setup(...)`.
This works the same for a deep link (e.g. /predict on a fresh server) and for AppTest.
"""

from __future__ import annotations

import streamlit as st

from app_support.state import ModelEntry, model_picker
from app_support.training import publish_finished

NAV = [
    ("app.py", "Home: the dataset", ":material/home:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/evaluate.py", "Evaluate", ":material/analytics:"),
    ("pages/predict.py", "Predict", ":material/draw:"),
    ("pages/misclassified.py", "Misclassified", ":material/report:"),
]


def page_setup(title: str) -> ModelEntry | None:
    """Configure the page and draw the sidebar; return the selected model, if any."""
    st.set_page_config(page_title=f"{title} · Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")
    with st.sidebar:
        st.title("Fashion-MNIST Studio")
        for path, label, icon in NAV:
            st.page_link(path, label=label, icon=icon)
        st.divider()
        publish_finished()  # a run that just ended joins the picker in this very rerun
        entry = model_picker()
        st.caption("Shipped checkpoints, your saved models, and this session's runs.")
    return entry
