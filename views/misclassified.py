"""Misclassified: browse the test images the selected model got wrong."""

import math

import numpy as np
import streamlit as st

from app_support import keys
from app_support.inference import show_explanations
from app_support.links import apply_misclassified_link, copy_link, misclassified_params, say_ignored
from app_support.nav import MISCLASSIFIED
from app_support.plots import prob_bars, upscale
from app_support.state import dataset, get_eval_or_stop, require_model, take_mistakes_filter
from fmnist.data import CLASSES
from fmnist.neighbors import nearest

st.title("Misclassified test images")
entry, ckpt = require_model()
res, ds = get_eval_or_stop(entry), dataset()

say_ignored(apply_misclassified_link())  # a lesson link's filter
cell = take_mistakes_filter()  # set by a confusion-matrix cell on Evaluate
if cell:
    st.session_state["mis_true"], st.session_state["mis_pred"] = cell
options = [None, *range(10)]
label = lambda i: "any" if i is None else CLASSES[i]
c1, c2, c3, c4 = st.columns(4)
t = c1.selectbox("True class", options, format_func=label, key="mis_true")
p = c2.selectbox("Predicted class", options, format_func=label, key="mis_pred")
order = c3.selectbox(
    "Sort by", ["Most confident mistakes first", "Least confident first", "Test index"], key="mis_sort"
)
per_page = c4.select_slider("Per page", [16, 32, 64, 96], 32, key="mis_per_page")
copy_link(MISCLASSIFIED, misclassified_params(), key="mis_link")

wrong = res.error_indices  # most confident first
if t is not None:
    wrong = wrong[res.labels[wrong] == t]
if p is not None:
    wrong = wrong[res.preds[wrong] == p]
if order == "Least confident first":
    wrong = wrong[::-1]
elif order == "Test index":
    wrong = np.sort(wrong)
st.markdown(
    f"**{len(wrong)} errors** match this filter ({int((res.preds != res.labels).sum())} in total, {entry.label})."
)
if len(wrong) == 0:
    st.success("No mistakes here.")
    st.stop()

pages = math.ceil(len(wrong) / per_page)
# The key depends on the filter, so a new filter starts again at page 1.
page_key = f"mis_page_{t}_{p}_{order}_{per_page}"
page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=page_key) if pages > 1 else 1
shown = wrong[(page - 1) * per_page : page * per_page]
cols = st.columns(8)
for k, i in enumerate(shown):
    with cols[k % 8]:
        st.image(
            upscale(ds.test_images[int(i)].numpy(), 4),
            width="stretch",
            alt=f"Test image {i}: true {CLASSES[res.labels[i]]}, predicted {CLASSES[res.preds[i]]}, "
            f"{res.confidence[i]:.0%}",
        )
        st.markdown(
            f"<small>#{i}<br>true <b>{CLASSES[res.labels[i]]}</b><br>pred <b>{CLASSES[res.preds[i]]}</b> "
            f"({res.confidence[i]:.0%})</small>",
            unsafe_allow_html=True,
        )
        if st.button("Details", key=f"mis_detail_{i}"):
            st.session_state[keys.MIS_SELECTED] = int(i)

sel = st.session_state.get(keys.MIS_SELECTED)
if sel is not None:
    st.divider()
    st.subheader(f"Test image #{sel}: true {CLASSES[res.labels[sel]]}, predicted {CLASSES[res.preds[sel]]}")
    img = ds.test_images[sel].numpy()
    c1, c2 = st.columns([1, 2])
    c1.image(
        upscale(img, 8), alt=f"Test image {sel}: true {CLASSES[res.labels[sel]]}, predicted {CLASSES[res.preds[sel]]}"
    )
    c2.plotly_chart(prob_bars(res.probs[sel], 5, "Top-5 probabilities"), key="mis_bars")
    show_explanations(ckpt, img, int(res.preds[sel]))
    st.markdown(
        "**Most similar training images** (pixel space) - does the training set hold look-alikes with the other label?"
    )
    idx, sim = nearest(ds.train_images, ds.test_images[sel], k=8)
    cols = st.columns(8)
    for col, j, s in zip(cols, idx, sim):
        label = f"{CLASSES[int(ds.train_labels[j])]} ({s:.2f})"
        col.image(upscale(ds.train_images[j].numpy(), 3), caption=label, alt=f"Training image {j}: {label} similar")
