"""Predict: draw, upload or pick an image, see what the model says, every preprocessing step, and why.

Drawing reruns only the canvas fragment (st.fragment): a stroke does not rerun the sidebar or the
source picker. Within a run the verdict is drawn first; the steps, saliency and votes follow.
"""

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app_support.inference import (
    PHOTO_MODELS,
    all_votes,
    drawing_bytes,
    photo_model,
    preprocessed,
    probs,
    show_explanations,
)
from app_support.layers import show_layers
from app_support.links import apply_predict_link, say_ignored
from app_support.plots import pixel_img, prob_bars_html, step_tiles
from app_support.state import ModelEntry, dataset, get_checkpoint, require_model
from fmnist.checkpoints import Checkpoint, CheckpointError
from fmnist.data import CLASSES, N_TEST
from fmnist.preprocess import CANVAS_MAX_PIXELS, EXTENSIONS, FORMAT_NAMES, BlankImageError, ImageError, Preprocessed


def show_answer(
    entry: ModelEntry, ckpt: Checkpoint, image: np.ndarray, truth: int | None = None, pre: Preprocessed | None = None
) -> None:
    """The verdict and the 28x28 input first, then the steps, the layers, saliency and every model's vote."""
    p = probs(ckpt, image)
    top = int(p.argmax())
    c1, c2 = st.columns([1, 2])
    with c1:
        seen = f"The 28 by 28 image the model sees; it predicts {CLASSES[top]}"
        if truth is not None:
            seen += f"; true class {CLASSES[truth]}"
        st.markdown(pixel_img(image, 224, seen), unsafe_allow_html=True)
        st.caption("28x28 input" + (f" (true class: {CLASSES[truth]})" if truth is not None else ""))
    with c2:
        verdict = f"### {CLASSES[top]}  ({p[top]:.1%})"
        if truth is not None:
            verdict += "  ✔ correct" if top == truth else f"  ✘ wrong: the true class is {CLASSES[truth]}"
        st.markdown(verdict)
        st.markdown(prob_bars_html(p, 5, f"Top-5 probabilities: {entry.label}"), unsafe_allow_html=True)
        if ckpt.temperature:
            st.caption(
                f"Calibrated probabilities: the scores are divided by a temperature of {ckpt.temperature:.2f}, "
                'fitted on this run\'s validation images, so that "80% sure" is right about 80% of the time. '
                "The ranking, and so the prediction, is the same as without it."
            )
    if pre is not None:
        st.subheader("How the image became 28x28")
        st.image(
            step_tiles([s for _, s in pre.steps]),
            caption=[c for c, _ in pre.steps],
            width=140,
            alt=[f"Step {c}" for c, _ in pre.steps],
        )
        for note in pre.notes:
            st.caption(f"• {note}")
    if st.toggle("Look inside the network: feature maps and one convolution step", key="pr_layers_on"):
        show_layers(ckpt, image)
    st.subheader("Why? Saliency and Grad-CAM")
    show_explanations(ckpt, image, top)
    st.subheader("What every model says")
    votes = all_votes(image)
    votes["confidence"] = votes["confidence"].map("{:.1%}".format)
    st.table(votes.set_index("model"))  # a plain HTML table: a stroke re-renders it at once


@st.fragment
def draw(entry: ModelEntry, ckpt: Checkpoint) -> None:
    """The canvas and its answer: a stroke reruns only this."""
    c1, c2 = st.columns([2, 3])
    with c2:
        width = st.slider("Brush width", 5, 60, 28, key="pr_brush")
        st.markdown(
            "Draw **one filled piece of clothing**, large and centred, the way it would lie in a catalogue photo. "
            "Fill shapes in: the dataset's images are solid silhouettes, not outlines. "
            "Use the canvas toolbar to undo, redo or clear."
        )
    with c1:
        drawn = st_canvas(
            stroke_width=width,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=300,
            width=300,
            drawing_mode="freedraw",
            return_image_data=True,
            key="pr_canvas",
        )
    try:
        pre = preprocessed(drawing_bytes(drawn), CANVAS_MAX_PIXELS)
    except BlankImageError:
        st.info("Draw something on the black canvas to see the prediction.")
        return
    except ImageError as e:
        st.warning(f"Cannot use this drawing: {e}")
        return
    show_answer(entry, ckpt, pre.image, None, pre)


def answer_photo(entry: ModelEntry, ckpt: Checkpoint, pre: Preprocessed) -> None:
    """A photo is answered by the photo model when there is one (a toggle gives it back to the selected
    model); a drawing or a dataset-style image, by the selected model. The page says which, and why."""
    photo = photo_model(entry) if pre.inverted else None
    if photo is not None and st.toggle(
        f"Answer photos with the photo model ({photo.label})",
        value=True,
        key="pr_photo_model",
        help="Trained on images made to look like what a phone photo leaves after the garment is cut out",
    ):
        try:
            photo_ckpt = get_checkpoint(photo.ref)
        except (CheckpointError, OSError) as e:
            st.warning(f"The photo model cannot be loaded ({e}); {entry.label} answers instead.")
        else:
            st.info(
                f"Answered by **{photo.label}**, not {entry.label}: a garment cut out of a photo is not a "
                "catalogue image (its fill is uneven, its edges soft, a light fabric comes out faint), and "
                f"{PHOTO_MODELS[photo.name]}. Switch the toggle off to ask {entry.label}."
            )
            show_answer(photo, photo_ckpt, pre.image, None, pre)
            return
    show_answer(entry, ckpt, pre.image, None, pre)


st.title("Predict")
entry, ckpt = require_model()
say_ignored(apply_predict_link(N_TEST))  # drawing, uploads and the camera need no dataset
source = st.radio("Input", ["Draw", "Upload an image", "Camera", "Test sample"], horizontal=True, key="pr_source")

if source == "Draw":
    draw(entry, ckpt)
elif source in ("Upload an image", "Camera"):
    if source == "Camera":
        st.markdown(
            "Lay **one garment** flat on a plain table or bed, step back so there is table all around it, "
            "and take the photo from above. (Browsers allow the camera only on `localhost` or over HTTPS.)"
        )
        up = st.camera_input("Take a photo of one garment", key="pr_camera")
    else:
        up = st.file_uploader(FORMAT_NAMES, type=EXTENSIONS, key="pr_upload")
    if up is not None:
        try:
            pre = preprocessed(up.getvalue())
        except ImageError as e:
            st.error(f"**{up.name}** cannot be used: {e}.")
        else:
            answer_photo(entry, ckpt, pre)
else:
    ds = dataset()  # a test sample does: without it, one line and a link to Home
    c1, c2 = st.columns([3, 1])
    if c2.button("Random sample", icon=":material/casino:", key="pr_random"):
        st.session_state["pr_index"] = int(np.random.default_rng().integers(len(ds.test_labels)))
    idx = c1.number_input("Test image index", 0, len(ds.test_labels) - 1, key="pr_index")
    show_answer(entry, ckpt, ds.test_images[int(idx)].numpy(), int(ds.test_labels[int(idx)]))
