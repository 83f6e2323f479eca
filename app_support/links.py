"""Lesson links: a page's key settings in its URL, so a teacher can send one link that opens an exercise.

    /train?preset=student&arch=mlp&epochs=30&flip=false&hide=advanced
    /misclassified?model=quick&true=Shirt&pred=T-shirt/top
    /predict?source=sample&index=2

The names are the options' own (fmnist.config) and class names, not widget keys. A link's values
are checked like any other input; a bad one is ignored with a note, never an error. They are
applied when the page opens with a new query string, so the student can change everything
afterwards. `hide=advanced` hides the advanced settings, as TF Playground's `_hide` flags do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import streamlit as st

from app_support import keys
from app_support.nav import PageSpec
from fmnist.config import PRESETS, ConfigError, options, parse_value, trainable_models
from fmnist.data import CLASSES

# (title, page, link parameters, what to notice): the Home page lists them.
LESSONS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "MLP vs CNN on the same 5,000 images",
        "train",
        {"preset": "student", "arch": "mlp", "hide": "advanced"},
        "Train the MLP, then set Architecture to cnn2 and train again: same images, same epochs. "
        "Compare the validation curves: what does a convolution know that a dense layer does not?",
    ),
    (
        "Why shirts are hard",
        "misclassified",
        {"model": "best", "true": "Shirt", "pred": "any"},
        "Even the best model mixes shirts up with T-shirts, pullovers and coats. Could you tell them apart at 28x28?",
    ),
    (
        "Watch overfitting happen",
        "train",
        {
            "preset": "student",
            "arch": "mlp",
            "subset": 1000,
            "epochs": 30,
            "time_budget": 0,
            "label_smoothing": 0,
            "weight_decay": 0,
        },
        "No augmentation, 1,000 images, 30 epochs: training accuracy climbs towards 100% while validation "
        "accuracy stalls and its loss turns upwards. That gap is overfitting.",
    ),
    (
        "A learning rate 10x too high",
        "train",
        {"preset": "student", "lr": 0.04, "hide": "advanced"},
        "The student preset uses 0.004. At 0.04 the loss jumps about, or the run diverges: each step overshoots.",
    ),
    (
        "Early stopping too eager",
        "train",
        {"preset": "keras3", "patience": 1, "epochs": 50, "subset": 10000},
        "Keras's EarlyStopping stops at the first epoch without a lower validation loss (patience 0 in Keras, "
        "1 here). Where does the run stop? Then set patience to 0 (off) and train all 50 epochs: how much "
        "accuracy did stopping early leave on the table?",
    ),
    (
        "Draw something the model has never seen",
        "predict",
        {"source": "draw"},
        "Draw a filled sneaker, then a hat. What does the model say about a class it was never taught?",
    ),
]


def hidden(control: str) -> bool:
    """True if the URL asks to hide `control` (`?hide=advanced`, several comma-separated)."""
    return control in {x.strip() for v in st.query_params.get_all("hide") for x in v.split(",")}


def _fresh(page: str) -> dict[str, str] | None:
    """This page's query parameters, once per distinct query string (None when already applied)."""
    params = {k: st.query_params.get(k) for k in st.query_params}
    stamp = (page, tuple(sorted(params.items())))
    if not params or st.session_state.get(keys.APPLIED_LINK) == stamp:
        return None
    st.session_state[keys.APPLIED_LINK] = stamp
    return params


def apply_train_link() -> list[str]:
    """Set the Train form from the URL (before its widgets are drawn); returns what was ignored."""
    params = _fresh("train")
    if params is None:
        return []
    ignored = []
    preset = params.get("preset", "student")
    if preset not in PRESETS:
        ignored.append(f"preset={preset}")
        preset = "student"
    st.session_state["tr_preset"] = preset
    prefix = f"tr_{preset}_"
    for name, text in params.items():
        if name in ("preset", "hide", "model"):
            continue
        try:
            if name == "arch":
                if text not in trainable_models():
                    raise ConfigError(text)
                st.session_state[prefix + "arch"] = text
            elif name in options():
                st.session_state[prefix + name] = parse_value(options()[name], text)
            else:
                raise ConfigError(name)
        except (ConfigError, ValueError):
            ignored.append(f"{name}={text}")
    return ignored


def apply_misclassified_link() -> list[str]:
    params = _fresh("misclassified")
    if params is None:
        return []
    ignored = []
    for name, key in (("true", "mis_true"), ("pred", "mis_pred")):
        if name in params:
            text = params[name]
            if text in CLASSES:
                st.session_state[key] = CLASSES.index(text)
            elif text == "any":
                st.session_state[key] = None
            else:
                ignored.append(f"{name}={text}")
    return ignored


def apply_predict_link(n_test: int) -> list[str]:
    params = _fresh("predict")
    if params is None:
        return []
    ignored = []
    sources = {"draw": "Draw", "upload": "Upload an image", "camera": "Camera", "sample": "Test sample"}
    if "source" in params:
        if params["source"] in sources:
            st.session_state["pr_source"] = sources[params["source"]]
        else:
            ignored.append(f"source={params['source']}")
    if "index" in params:
        try:
            i = int(params["index"])
            if not 0 <= i < n_test:
                raise ValueError
            st.session_state["pr_index"], st.session_state["pr_source"] = i, "Test sample"
        except ValueError:
            ignored.append(f"index={params['index']}")
    return ignored


def say_ignored(ignored: list[str]) -> None:
    if ignored:
        st.caption(f":material/link_off: This link's setting(s) {', '.join(ignored)} were not valid and were ignored.")


def train_params(preset: str) -> dict[str, Any]:
    """The Train form's current values as link parameters (the options' own names)."""
    prefix = f"tr_{preset}_"
    out: dict[str, Any] = {"preset": preset}
    for k, v in st.session_state.items():
        if isinstance(k, str) and k.startswith(prefix) and v is not None:
            name = k.removeprefix(prefix)
            if name == "arch" or name in options():
                out[name] = str(v).lower() if isinstance(v, bool) else v
    return out


def misclassified_params() -> dict[str, Any]:
    out = {}
    for name, key in (("true", "mis_true"), ("pred", "mis_pred")):
        v = st.session_state.get(key)
        out[name] = "any" if v is None else CLASSES[v]
    return out


def setup_link(page: PageSpec, params: dict[str, Any]) -> str:
    """An absolute link to `page` with `params` and the selected model."""
    ref = st.session_state.get(keys.MODEL)
    params = {**({"model": ref.name} if ref is not None and ref.kind == "file" else {}), **params}
    url = st.context.url or "http://localhost:8501/"
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "http://localhost:8501"
    return f"{base}/{page.url_path or ''}?{urlencode(params)}"


def copy_link(page: PageSpec, params: dict[str, Any], key: str) -> None:
    """A "Copy link to this setup" popover: the link in a code box (with its copy button)."""
    with st.popover("Copy link to this setup", icon=":material/link:", key=key):
        st.code(setup_link(page, params), language=None, wrap_lines=True)
        st.caption(
            "Anyone who opens it gets this page with these settings. "
            "Add `&hide=advanced` to hide the advanced settings."
        )
