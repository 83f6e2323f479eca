"""Map: where the model puts each test image, flattened to 2-D; select points to see the images."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_support import keys
from app_support.nav import MISCLASSIFIED
from app_support.plots import CLASS_COLORS, LAYOUT, upscale
from app_support.state import dataset, get_checkpoint, require_model
from fmnist.data import CLASSES
from fmnist.embedding import EmbeddingError, EmbeddingMap, embedding_map, neighbourhood_purity

st.title("The embedding map")
st.caption(
    "Each dot is a test image, placed by what the network's last layer sees (its features), flattened to two "
    "dimensions. Images the network finds alike land close together. Crosses are its mistakes. Switch to raw "
    "pixels to see the same images before any learning: the classes overlap far more."
)
entry, ckpt = require_model()
ds = dataset()
c1, c2 = st.columns([2, 2])
method = c1.radio(
    "Projection", ["pca", "tsne"], horizontal=True, key="map_method",
    format_func={"pca": "PCA (instant, linear)", "tsne": "t-SNE (2,000 images, clusters; about half a minute once)"}.get,
)  # fmt: skip
pixels = c2.toggle("Raw pixels instead of the network's features", key="map_pixels")


@st.cache_data(max_entries=16, show_spinner="Projecting the test images ... (once per model)")
def _cached_map(path: str, mtime: float, method: str, pixels: bool) -> EmbeddingMap:
    return embedding_map(get_checkpoint(entry.ref).model, ds, method, pixels)


try:
    if entry.ref.kind == "file":
        from pathlib import Path

        emap = _cached_map(entry.ref.path, Path(entry.ref.path).stat().st_mtime, method, pixels)
    else:
        with st.spinner("Projecting the test images ..."):
            emap = embedding_map(ckpt.model, ds, method, pixels)
except EmbeddingError as e:
    st.info(f"{entry.label}: {e}.")
    st.stop()

wrong = emap.labels != emap.preds
fig, traces = go.Figure(), []  # traces[k]: the test indices of trace k, in point order
for c in range(10):
    for err in (False, True):
        m = (emap.labels == c) & (wrong == err)
        if not m.any():
            continue
        fig.add_scatter(
            x=emap.xy[m, 0], y=emap.xy[m, 1], mode="markers", name=CLASSES[c] + (" (wrong)" if err else ""),
            legendgroup=CLASSES[c], showlegend=not err,
            marker=dict(color=CLASS_COLORS[c], size=9 if err else 5, symbol="x" if err else "circle",
                        line=dict(width=1, color="#222") if err else None),
            customdata=np.stack([emap.index[m], np.array(CLASSES)[emap.preds[m]]], 1),
            hovertemplate=f"true {CLASSES[c]}, predicted %{{customdata[1]}}<br>test image #%{{customdata[0]}}<extra></extra>",
        )  # fmt: skip
        traces.append(emap.index[m])
fig.update_layout(
    height=620, xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"),
    legend=dict(itemsizing="constant"), **LAYOUT,
)  # fmt: skip
what = f"raw pixels ({emap.dims} values)" if pixels else f"the network's features ({emap.dims} values)"
purity = neighbourhood_purity(emap.xy, emap.labels)
st.markdown(
    f"**{len(emap.index):,} test images**, {method.upper() if method == 'pca' else 't-SNE'} of {what}. "
    f"Of each dot's 10 nearest dots, **{purity:.0%}** share its class."
)
event = st.plotly_chart(fig, key="map_plot", on_select="rerun", selection_mode=("points", "box", "lasso"))
st.caption("Drag a lasso or a box around dots (or click one) to see their images.")

points = (event.selection.get("points", []) if event else []) or []
chosen = [int(traces[p["curve_number"]][p["point_index"]]) for p in points if "point_index" in p][:32]
if chosen:
    st.subheader(f"{len(points)} selected" + (", the first 32" if len(points) > 32 else ""))
    lookup = {int(i): k for k, i in enumerate(emap.index)}
    cols = st.columns(8)
    for n, i in enumerate(chosen):
        k = lookup[i]
        t, p = int(emap.labels[k]), int(emap.preds[k])
        with cols[n % 8]:
            st.image(
                upscale(ds.test_images[i].numpy(), 3),
                caption=f"#{i} {CLASSES[t]}" + ("" if t == p else f" → {CLASSES[p]}"),
            )
            if t != p and st.button("Open", key=f"map_open_{i}", help="Open this mistake on the Misclassified page"):
                st.session_state[keys.MIS_FILTER] = (t, p)
                st.session_state["mis_selected"] = i
                st.switch_page(MISCLASSIFIED.path)
