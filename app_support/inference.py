"""Single-image inference for the Predict and Misclassified pages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app_support.plots import heat_overlay
from app_support.state import (
    ModelEntry,
    available_models,
    checkpoint_dir,
    file_version,
    folder_signature,
    get_checkpoint,
    session_models,
)
from fmnist.calibrate import calibrated_probs
from fmnist.checkpoints import Checkpoint, CheckpointError
from fmnist.data import CLASSES
from fmnist.explain import grad_cam, saliency
from fmnist.preprocess import MAX_PIXELS, ImageError, Preprocessed, preprocess
from fmnist.runtime import predict_logits


@st.cache_data(max_entries=64, show_spinner=False)
def preprocessed(data: bytes, max_pixels: int = MAX_PIXELS) -> Preprocessed:
    """fmnist.preprocess of an upload's or a drawing's bytes, once per distinct image (keyed by its hash).

    Raises:
        ImageError: as preprocess (errors are not cached).
    """
    return preprocess(data, max_pixels=max_pixels)


# Predict's models for photos, in order of preference (docs/RESULTS.md, "Photos from a phone"): the first one
# saved answers a photo, and the page gives each one's reason. A cut-out garment is not a catalogue image.
PHOTO_MODELS = {
    "photo-vote": (
        "it is the soft vote of the photo model (trained on images made to look like that) and resnet64 (the same "
        "network trained on catalogue images), which got more photos right together than either alone"
    ),
    "photo": "this model was trained on images made to look like that",
}


def photo_model(selected: ModelEntry) -> ModelEntry | None:
    """The first saved model of PHOTO_MODELS, unless the selected model is one of them already."""
    if selected.name in PHOTO_MODELS and selected.ref.kind == "file":
        return None
    saved = {e.name: e for e in available_models() if e.ref.kind == "file"}
    return next((saved[name] for name in PHOTO_MODELS if name in saved), None)


def drawing_bytes(result: Any) -> bytes:
    """The PNG bytes the canvas sent, undecoded: they go through the same checked path as an upload.

    The canvas's own `image_data` would decode whatever the browser sent, at any size, on every
    access. Empty canvas: b"" (preprocess calls that blank). Raises ImageError if the payload is
    not a data URL.
    """
    try:
        return (result.image_bytes or b"") if result is not None else b""
    except Exception:  # a tampered payload: not a string, not base64, no ';base64,'
        raise ImageError("the drawing sent by the browser could not be read") from None


def probs(ckpt: Checkpoint, image: np.ndarray) -> np.ndarray:
    """Class probabilities (10,) for one uint8 28x28 image, through the model's predict path,
    temperature-scaled when the model card has a temperature (fmnist.calibrate)."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).reshape(1, 28, 28)
    logits = predict_logits(ckpt.model, x, tta_flip=ckpt.tta_flip)
    return calibrated_probs(logits, ckpt.temperature)[0]  # calibrated where the card says how


def _file_model(ckpt: Checkpoint) -> tuple[str, int, int] | None:
    """(path, size, mtime) of a model loaded from a file: a key that is the same for every session."""
    try:
        return (str(ckpt.path), *file_version(ckpt.path)) if ckpt.path else None
    except OSError:
        return None


@st.cache_data(max_entries=256, show_spinner=False)
def _file_votes(image: bytes, folder: str, signature: tuple) -> list[dict[str, Any]]:
    rows = []
    for e in available_models():
        if e.ref.kind != "file":
            continue
        try:
            p = probs(get_checkpoint(e.ref), np.frombuffer(image, np.uint8).reshape(28, 28))
        except (CheckpointError, OSError):
            continue
        top = int(p.argmax())
        rows.append({"model": e.label, "prediction": CLASSES[top], "confidence": float(p[top])})
    return rows


def all_votes(image: np.ndarray) -> pd.DataFrame:
    """What every available model predicts for the same image. The saved models' votes are computed
    once per image and folder state; this session's unsaved models are asked each time."""
    folder = checkpoint_dir()
    rows = list(_file_votes(np.ascontiguousarray(image, np.uint8).tobytes(), str(folder), folder_signature(folder)))
    for name, ck in session_models().items():
        p = probs(ck, image)
        top = int(p.argmax())
        rows.append(
            {"model": f"{name} (this session, unsaved)", "prediction": CLASSES[top], "confidence": float(p[top])}
        )
    return pd.DataFrame(rows)


def _explanations(ckpt: Checkpoint, image: np.ndarray, target: int) -> list[tuple[str, np.ndarray]]:
    x = torch.from_numpy(np.array(image, dtype=np.uint8))
    out = [("Saliency: pixels that move the score most", heat_overlay(image, saliency(ckpt.model, x, target)))]
    cam = grad_cam(ckpt.model, x, target)
    if cam is not None:
        out.append(("Grad-CAM: regions the last conv layer used", heat_overlay(image, cam)))
    return out


@st.cache_data(max_entries=256, show_spinner=False)
def _file_explanations(
    _ckpt: Checkpoint, model: tuple[str, int], image: bytes, target: int
) -> list[tuple[str, np.ndarray]]:
    return _explanations(_ckpt, np.frombuffer(image, np.uint8).reshape(28, 28), target)


def explanations(ckpt: Checkpoint, image: np.ndarray, target: int) -> list[tuple[str, np.ndarray]]:
    """(caption, RGB overlay) for saliency and, for conv nets, Grad-CAM; a saved model's are cached
    per image, so a rerun with the same drawing (a new brush width, the layers toggle) costs nothing."""
    key = _file_model(ckpt)
    if key is None:
        return _explanations(ckpt, image, target)
    return _file_explanations(ckpt, key, np.ascontiguousarray(image, np.uint8).tobytes(), target)


def show_explanations(ckpt: Checkpoint, image: np.ndarray, target: int, width: int = 200) -> None:
    cols = st.columns(2)
    for col, (caption, rgb) in zip(cols, explanations(ckpt, image, target)):
        col.image(np.kron(rgb, np.ones((8, 8, 1), dtype=np.uint8)), caption=caption, width=width, alt=caption)
