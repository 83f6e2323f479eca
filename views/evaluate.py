"""Evaluate: test-set metrics, confusion matrix, per-class table, curves, calibration, comparison."""

import pandas as pd
import streamlit as st

from app_support.plots import clicked_cell, confusion_diff_fig, confusion_fig, curves_fig, reliability_fig
from app_support.state import available_models, get_eval_or_stop, open_mistakes, require_model
from fmnist.data import CLASSES
from fmnist.evaluate import reliability_curve
from fmnist.export import onnx_bytes

st.title("Evaluate")
entry, ckpt = require_model()
res = get_eval_or_stop(entry)
others = {e.ref: e for e in available_models() if e.ref != entry.ref}
other_ref = st.selectbox(
    "Compare with",
    [None, *others],
    format_func=lambda r: "(no comparison)" if r is None else others[r].label,
    key="ev_compare",
)
other = get_eval_or_stop(others[other_ref]) if other_ref else None
name_a = entry.name
name_b = others[other_ref].name if other_ref else ""

m = st.columns(4)
for col, title, attr, fmt, better_low in (
    (m[0], "Test accuracy", "accuracy", "{:.2%}", False),
    (m[1], "Test loss", "loss", "{:.4f}", True),
    (m[2], "Macro-F1", "macro_f1", "{:.4f}", False),
    (m[3], "Calibration error (ECE)", "ece", "{:.4f}", True),
):
    v = getattr(res, attr)
    delta = None if other is None else f"{v - getattr(other, attr):+.4f} vs {name_b}"
    col.metric(title, fmt.format(v), delta, delta_color="inverse" if better_low else "normal")
st.caption(f"{name_a}: {int((res.preds != res.labels).sum())} of {len(res.labels):,} test images wrong.")
if ckpt.temperature:
    st.caption(
        f"Calibration: with temperature scaling (T = {ckpt.temperature:.2f}, fitted on the validation split) the "
        f"ECE goes from {res.ece:.4f} to **{res.calibrated_ece(ckpt.temperature):.4f}**. "
        + (
            "T < 1: the raw model was underconfident."
            if ckpt.temperature < 1
            else "T > 1: the raw model was overconfident."
        )
    )

st.subheader("Confusion matrix")
norm = st.radio("Show", ["Counts", "Row-normalised (recall per class)"], horizontal=True, key="ev_norm") != "Counts"
left, right = st.columns(2) if other is not None else (st.container(), None)
event = left.plotly_chart(
    confusion_fig(res.confusion, norm, f"{name_a}: click a cell to see its images"),
    key="ev_cm",
    on_select="rerun",
    selection_mode="points",
)
cell = clicked_cell(event)
if cell is not None and cell[0] != cell[1]:
    open_mistakes(*cell)
if right is not None:
    right.plotly_chart(confusion_diff_fig(res.confusion, other.confusion, name_a, name_b), key="ev_cm_diff")

st.markdown("**See the mistakes behind a cell**: click it above, or pick a true and a predicted class.")
c1, c2, c3 = st.columns([2, 2, 1])
t = c1.selectbox("True class", range(10), 6, format_func=lambda i: CLASSES[i], key="ev_cell_true")
p = c2.selectbox("Predicted as", range(10), 0, format_func=lambda i: CLASSES[i], key="ev_cell_pred")
c3.write("")
if c3.button(f"Show {int(res.confusion[t, p])} images", key="ev_cell_go", disabled=t == p):
    open_mistakes(t, p)

st.subheader("Per class")
table = pd.DataFrame(res.per_class_rows()).set_index("class")
if other is not None:
    ot = pd.DataFrame(other.per_class_rows()).set_index("class")
    for col in ("accuracy", "precision", "f1"):
        table[f"{col} {name_b}"] = ot[col]
        table[f"Δ {col}"] = table[col] - ot[col]  # same sign as the metric deltas above: A - B
st.dataframe(table.style.format(precision=3), key="ev_table", width="stretch")
c1, c2 = st.columns(2)
c2.download_button(
    "Download the model as ONNX",
    lambda: onnx_bytes(ckpt),
    f"{name_a}.onnx",
    "application/octet-stream",
    key="ev_onnx",
    icon=":material/deployed_code:",
    help="float32 pixels (N, 1, 28, 28) in [0, 1] in, logits out; normalisation inside; the model card in the metadata",
)
c1.download_button(
    "Download metrics (CSV)",
    table.to_csv().encode(),
    f"{name_a}-metrics.csv",
    "text/csv",
    key="ev_csv",
    icon=":material/download:",
)

c1, c2 = st.columns(2)
with c1:
    st.subheader("Training curves")
    history = ckpt.card.get("history") or []
    if history:
        st.plotly_chart(curves_fig(history), key="ev_curves")
    else:
        st.info("This model has no stored training history (ensembles have none).")
with c2:
    st.subheader("Calibration")
    curves = {name_a: reliability_curve(res.probs, res.labels)}
    if ckpt.temperature:
        curves[f"{name_a}, calibrated"] = reliability_curve(res.calibrated_probs(ckpt.temperature), res.labels)
    if other is not None:
        curves[name_b] = reliability_curve(other.probs, other.labels)
    st.plotly_chart(reliability_fig(curves), key="ev_calib")
    st.caption("Points below the diagonal: the model is more confident than it is right.")
