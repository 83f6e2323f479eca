"""Cached data and models, and the one model picker shared by every page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from fmnist.checkpoints import (
    CHECKPOINT_DIR,
    Checkpoint,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    read_card,
    test_accuracy,
)
from fmnist.data import DatasetError, FashionMNIST, load_dataset
from fmnist.evaluate import EvalResult, evaluate

MODEL_KEY = "model_key"  # session_state key of the selected model, shared by all pages
SESSION_MODELS = "session_models"  # label -> Checkpoint trained in this session, not saved yet


def checkpoint_dir() -> Path:
    """Where saved models live; tests point FMNIST_CHECKPOINT_DIR at a temp folder."""
    import os

    return Path(os.environ.get("FMNIST_CHECKPOINT_DIR", CHECKPOINT_DIR))


@st.cache_resource(show_spinner="Loading Fashion-MNIST ...")
def _dataset() -> FashionMNIST:
    return load_dataset()


def dataset() -> FashionMNIST:
    """The dataset, loaded once per server; a missing dataset stops the page with instructions."""
    try:
        return _dataset()
    except DatasetError as e:
        st.error(f"**The Fashion-MNIST dataset is not available.**\n\n{e}")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_resource(max_entries=24, show_spinner="Loading model ...")
def _load(path: str, mtime: float) -> Checkpoint:
    return load_checkpoint(path)


@st.cache_data(max_entries=24, show_spinner="Evaluating on the 10,000 test images ...")
def _evaluate_file(path: str, mtime: float) -> EvalResult:
    ck = _load(path, mtime)
    ds = _dataset()
    return evaluate(ck.model, ds.test_images, ds.test_labels, tta_flip=ck.tta_flip)


@dataclass(frozen=True)
class ModelEntry:
    key: str  # "file:<path>" or "session:<label>"
    label: str
    card: dict


def available_models() -> list[ModelEntry]:
    """Saved checkpoints (shipped or saved from Train) plus this session's unsaved models."""
    entries = []
    for p in list_checkpoints(checkpoint_dir()):
        try:
            card = read_card(p)
        except CheckpointError:
            continue  # a damaged file is listed nowhere; load errors are shown when picked
        acc = test_accuracy(card)
        label = f"{p.stem} ({acc:.1%})" if acc is not None else p.stem
        entries.append(ModelEntry(f"file:{p}", label, card))
    for name, ck in st.session_state.get(SESSION_MODELS, {}).items():
        entries.append(ModelEntry(f"session:{name}", f"{name} (this session, unsaved)", ck.card))
    return entries


def get_checkpoint(key: str) -> Checkpoint:
    kind, _, ref = key.partition(":")
    if kind == "session":
        return st.session_state[SESSION_MODELS][ref]
    p = Path(ref)
    return _load(str(p), p.stat().st_mtime)


def get_eval(key: str) -> EvalResult:
    """Test-set evaluation of a model, computed once and cached."""
    kind, _, ref = key.partition(":")
    if kind == "session":
        cache = st.session_state.setdefault("session_evals", {})
        if ref not in cache:
            ck, ds = get_checkpoint(key), dataset()
            with st.spinner("Evaluating on the 10,000 test images ..."):
                cache[ref] = evaluate(ck.model, ds.test_images, ds.test_labels, tta_flip=ck.tta_flip)
        return cache[ref]
    dataset()
    p = Path(ref)
    return _evaluate_file(str(p), p.stat().st_mtime)


def get_eval_or_stop(key: str, label: str) -> EvalResult:
    """get_eval, but a model that cannot be loaded shows a clear error instead of a traceback."""
    try:
        return get_eval(key)
    except (CheckpointError, OSError) as e:
        st.error(f"Cannot evaluate **{label}**: {e}")
        st.stop()
        raise


def default_index(entries: list[ModelEntry]) -> int:
    for i, e in enumerate(entries):  # a fast, good model first: the classroom demo
        if e.key.endswith("/quick.safetensors"):
            return i
    return 0


def model_picker() -> ModelEntry | None:
    """The sidebar's model selector; its choice (st.session_state[MODEL_KEY]) is shared by all pages.

    The choice lives in a plain session key, not in the widget's own state, so it survives
    moving between pages and can be changed by code (e.g. after saving on Train).
    """
    entries = available_models()
    if not entries:
        st.info("No trained models yet. Train one on the **Train** page.")
        return None
    keys = [e.key for e in entries]
    if st.session_state.get("pending_model_key") in keys:  # e.g. a model just saved on Train
        st.session_state[MODEL_KEY] = st.session_state.pop("pending_model_key")
    if st.session_state.get(MODEL_KEY) not in keys:
        st.session_state[MODEL_KEY] = keys[default_index(entries)]
    labels = {e.key: e.label for e in entries}
    choice = st.selectbox(
        "Model", keys, index=keys.index(st.session_state[MODEL_KEY]), format_func=labels.get, help="Used by every page"
    )
    st.session_state[MODEL_KEY] = choice
    return entries[keys.index(choice)]


def selected_model() -> ModelEntry | None:
    entries = {e.key: e for e in available_models()}
    return entries.get(st.session_state.get(MODEL_KEY, ""))


def require_model() -> tuple[ModelEntry, Checkpoint]:
    """The selected model and its checkpoint; without one, say so, link to Train and stop."""
    entry = selected_model()
    if entry is None:
        st.info("This page needs a trained model. Train one first - it takes under a minute.")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    try:
        return entry, get_checkpoint(entry.key)
    except (CheckpointError, OSError) as e:
        st.error(f"Cannot load model **{entry.label}**: {e}")
        st.stop()
        raise
