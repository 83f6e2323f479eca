"""Map: where the model puts each test image, flattened to 2-D.

Hover a dot to see its image; select dots to list them.
"""

import base64
import io

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app_support.plots import CLASS_COLORS, upscale
from app_support.state import dataset, file_version, get_checkpoint, open_mistakes, require_model
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
    "Projection",
    ["pca", "tsne"],
    horizontal=True,
    key="map_method",
    format_func={
        "pca": "PCA (instant, linear)",
        "tsne": "t-SNE (2,000 images, clusters; about half a minute once)",
    }.get,
)
pixels = c2.toggle("Raw pixels instead of the network's features", key="map_pixels")


@st.cache_data(max_entries=4, show_spinner=False)
def thumbnails(index: tuple[int, ...]) -> list[str]:
    """A small PNG data URL of each test image, for the hover tooltips (56x56, light on black)."""
    out = []
    for i in index:
        buf = io.BytesIO()
        Image.fromarray(upscale(ds.test_images[i].numpy(), 2)).save(buf, "PNG", optimize=True)
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def selected(event, frame: pd.DataFrame) -> list[int]:
    """Test indices of the clicked dot(s) or of the dots inside the dragged box."""
    sel = (event or {}).get("selection", {}) if isinstance(event, dict) else getattr(event, "selection", {}) or {}
    picked = [int(p["test image"]) for p in sel.get("picked") or [] if "test image" in p]
    if picked:
        return picked
    b = sel.get("box") or {}
    if "x" in b and "y" in b:
        inside = frame["x"].between(*sorted(b["x"])) & frame["y"].between(*sorted(b["y"]))
        return frame.loc[inside, "test image"].astype(int).tolist()
    return []


@st.cache_data(max_entries=16, show_spinner="Projecting the test images ... (once per model)")
def _cached_map(path: str, version: tuple[int, int], method: str, pixels: bool) -> EmbeddingMap:
    return embedding_map(get_checkpoint(entry.ref).model, ds, method, pixels)


try:
    if entry.ref.kind == "file":
        emap = _cached_map(entry.ref.path, file_version(entry.ref.path), method, pixels)
    else:
        with st.spinner("Projecting the test images ..."):
            emap = embedding_map(ckpt.model, ds, method, pixels)
except EmbeddingError as e:
    st.info(f"{entry.label}: {e}.")
    st.stop()

wrong = emap.labels != emap.preds
frame = pd.DataFrame(
    {
        "x": emap.xy[:, 0],
        "y": emap.xy[:, 1],
        "true": np.array(CLASSES)[emap.labels],
        "predicted": np.array(CLASSES)[emap.preds],
        "mistake": np.where(wrong, "wrong", "right"),
        "test image": emap.index,
        "image": thumbnails(tuple(int(i) for i in emap.index)),
    }
)
click = alt.selection_point(name="picked", fields=["test image"], on="click")
box = alt.selection_interval(name="box", encodings=["x", "y"])
chart = (
    alt.Chart(frame)
    .mark_point(filled=True, opacity=0.75)
    .encode(
        x=alt.X("x:Q", axis=None),
        y=alt.Y("y:Q", axis=None),
        color=alt.Color("true:N", scale=alt.Scale(domain=CLASSES, range=CLASS_COLORS), title="true class"),
        shape=alt.Shape("mistake:N", scale=alt.Scale(domain=["right", "wrong"], range=["circle", "cross"]), title=None),
        size=alt.condition(alt.datum.mistake == "wrong", alt.value(70), alt.value(22)),
        tooltip=["image", "true", "predicted", "test image"],  # vega-tooltip draws the "image" field as a picture
    )
    .add_params(click, box)
    # Drawn on a canvas (vega-embed reads usermeta.embedOptions): 2,000 dots draw faster than as SVG, and
    # the selection box's SVG rectangles would be unnamed images to a screen reader (axe-core: svg-img-alt).
    # The text above and the list below say in words what the map shows.
    .properties(height=620, usermeta={"embedOptions": {"renderer": "canvas"}})
)
what = f"raw pixels ({emap.dims} values)" if pixels else f"the network's features ({emap.dims} values)"
purity = neighbourhood_purity(emap.xy, emap.labels)
st.markdown(
    f"**{len(emap.index):,} test images**, {method.upper() if method == 'pca' else 't-SNE'} of {what}. "
    f"Of each dot's 10 nearest dots, **{purity:.0%}** share its class."
)
event = st.altair_chart(chart, key="map_plot", on_select="rerun", width="stretch")
st.caption("Hover over a dot to see its image. Click a dot, or drag a box around several, to list them below.")

chosen = selected(event, frame)
if chosen:
    st.subheader(f"{len(chosen)} selected" + (", the first 32" if len(chosen) > 32 else ""))
    lookup = {int(i): k for k, i in enumerate(emap.index)}
    cols = st.columns(8)
    for n, i in enumerate(chosen[:32]):
        k = lookup[i]
        t, p = int(emap.labels[k]), int(emap.preds[k])
        with cols[n % 8]:
            st.image(
                upscale(ds.test_images[i].numpy(), 3),
                caption=f"#{i} {CLASSES[t]}" + ("" if t == p else f" → {CLASSES[p]}"),
                alt=f"Test image {i}: true {CLASSES[t]}, predicted {CLASSES[p]}",
            )
            if t != p and st.button("Open", key=f"map_open_{i}", help="Open this mistake on the Misclassified page"):
                open_mistakes(t, p, image=i)
