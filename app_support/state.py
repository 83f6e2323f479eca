"""Cached data and models, the model reference type, and the one model picker shared by every page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import streamlit as st

from app_support import keys
from app_support.nav import HOME, MISCLASSIFIED, TRAIN
from fmnist.checkpoints import (
    Checkpoint,
    CheckpointError,
    card_test_accuracy,
    list_checkpoints,
    load_checkpoint,
    scan_cards,
)
from fmnist.data import DatasetError, FashionMNIST, download, download_dir, find_data_dir, load_dataset
from fmnist.evaluate import EvalResult, evaluate_test
from fmnist.settings import Settings

DEFAULT_MODEL = "quick"  # a fast, good model first: the classroom demo


@dataclass(frozen=True)
class ModelRef:
    """Which model: a checkpoint file, or a run of this session that is not saved yet."""

    kind: Literal["file", "session"]
    name: str  # the file's stem, or the run's label
    path: str = ""  # kind == "file" only

    @classmethod
    def file(cls, path: str | os.PathLike) -> ModelRef:
        return cls("file", Path(path).stem, str(path))

    @classmethod
    def session(cls, label: str) -> ModelRef:
        return cls("session", label)


@dataclass(frozen=True)
class ModelEntry:
    ref: ModelRef
    label: str  # what the picker shows: name plus test accuracy, or "(this session, unsaved)"
    card: dict

    @property
    def name(self) -> str:
        return self.ref.name


def settings() -> Settings:
    """The server's FMNIST_* settings, read afresh (cheap); frame.run_app reports a bad value in one line."""
    return Settings.from_env()


def checkpoint_dir() -> Path:
    """Where saved models live ($FMNIST_CHECKPOINT_DIR; tests point it at a temp folder)."""
    return settings().checkpoint_dir


@st.cache_resource(show_spinner="Loading Fashion-MNIST ...")
def _dataset() -> FashionMNIST:
    return load_dataset()


def dataset() -> FashionMNIST:
    """The dataset, loaded once per server; without it the page stops with one line and a link to Home."""
    try:
        return _dataset()
    except DatasetError as e:
        _say_missing(e)
        st.stop()
        raise  # unreachable: st.stop() raises


def dataset_present() -> bool:
    """Are the four files where the data is looked for? (A cheap check: nothing is loaded.)"""
    try:
        find_data_dir()
        return True
    except DatasetError:
        return False


def require_dataset() -> None:
    """Stop a page that trains (Train, Sweep) with one line and a link to Home when the dataset is missing."""
    if not dataset_present():
        _say_missing(None)
        st.stop()


def _say_missing(error: DatasetError | None) -> None:
    if error is not None and dataset_present():  # the files are there but broken: say what is wrong
        st.error(f"**The Fashion-MNIST dataset cannot be read.** {error}")
        return
    st.info("This page needs the Fashion-MNIST dataset, which is not on this server yet: one button on Home gets it.")
    st.page_link(HOME.path, label="Home: get the dataset", icon=":material/download:")


def offer_download() -> None:
    """Home's download: one button, a progress bar, and where the files went (said again after the rerun)."""
    done = st.session_state.pop(keys.DATASET_DOWNLOADED, None)
    if done:
        st.success(f"Fashion-MNIST is ready: the four files are in `{done}`.")
    if dataset_present():
        return
    dest = download_dir()
    st.warning(
        "**The Fashion-MNIST dataset is not on this server yet.** Training, evaluating, the map and this "
        "gallery need it; drawing, uploading and the camera on Predict work without it."
    )
    if not st.button(f"Download Fashion-MNIST (30 MB, checksummed) into {dest}", key="home_download", type="primary"):
        return
    bar = st.progress(0.0, text="Downloading Fashion-MNIST ...")
    shown = [-1]

    def progress(frac: float, name: str) -> None:
        if int(frac * 100) != shown[0]:  # one update per percent, not per chunk
            shown[0] = int(frac * 100)
            bar.progress(frac, text=f"Downloading {name} ... {frac:.0%}")

    try:
        path = download(dest, progress=progress)  # each file checked by its content's sha256
    except DatasetError as e:
        bar.empty()
        st.error(f"The download failed: {e}")
        return
    st.session_state[keys.DATASET_DOWNLOADED] = str(path.resolve())
    st.rerun()


@st.cache_resource(max_entries=24, show_spinner="Loading model ...")
def _load(path: str, version: tuple[int, int]) -> Checkpoint:
    return load_checkpoint(path)


@st.cache_data(max_entries=24, show_spinner="Evaluating on the 10,000 test images ...")
def _evaluate_file(path: str, version: tuple[int, int]) -> EvalResult:
    ck = _load(path, version)
    return evaluate_test(ck.model, tta_flip=ck.tta_flip, data=_dataset())


def session_models() -> dict[str, Checkpoint]:
    """This session's unsaved models (run label -> Checkpoint); a fresh dict per session."""
    if keys.SESSION_MODELS not in st.session_state:
        st.session_state[keys.SESSION_MODELS] = {}
    return st.session_state[keys.SESSION_MODELS]


def file_version(path: str | os.PathLike) -> tuple[int, int]:
    """(size, mtime in ns) of a model file: the one cache key for "this file, as it is now".

    Raises:
        OSError: the file is gone.
    """
    st_ = Path(path).stat()
    return st_.st_size, st_.st_mtime_ns


def folder_signature(folder: Path) -> tuple:
    """(name, size, mtime) of every checkpoint in `folder`: it changes when a model is saved, replaced or deleted."""
    sig = []
    for p in list_checkpoints(folder):
        try:
            sig.append((p.name, *file_version(p)))
        except OSError:
            continue
    return tuple(sig)


@st.cache_resource(max_entries=8, show_spinner=False)
def _file_entries(folder: str, signature: tuple) -> tuple[ModelEntry, ...]:
    """The folder's models, read once per change of the folder (not on every rerun). Do not mutate."""
    entries = []
    for p, card in scan_cards(folder):  # a bad file is listed nowhere; load errors show when picked
        acc = card_test_accuracy(card)
        entries.append(ModelEntry(ModelRef.file(p), f"{p.stem} ({acc:.1%})" if acc is not None else p.stem, card))
    return tuple(entries)


def available_models() -> list[ModelEntry]:
    """Saved checkpoints (shipped or saved from Train) plus this session's unsaved models."""
    folder = checkpoint_dir()
    entries = list(_file_entries(str(folder), folder_signature(folder)))
    for name, ck in session_models().items():
        entries.append(ModelEntry(ModelRef.session(name), f"{name} (this session, unsaved)", ck.card))
    return entries


def get_checkpoint(ref: ModelRef) -> Checkpoint:
    if ref.kind == "session":
        return session_models()[ref.name]
    return _load(ref.path, file_version(ref.path))


def get_eval(ref: ModelRef) -> EvalResult:
    """Test-set evaluation of a model, computed once and cached."""
    if ref.kind == "session":
        cache = st.session_state.setdefault(keys.SESSION_EVALS, {})
        if ref.name not in cache:
            ck = get_checkpoint(ref)
            with st.spinner("Evaluating on the 10,000 test images ..."):
                cache[ref.name] = evaluate_test(ck.model, tta_flip=ck.tta_flip, data=dataset())
        return cache[ref.name]
    dataset()  # a missing dataset stops here with instructions
    return _evaluate_file(ref.path, file_version(ref.path))


def get_eval_or_stop(entry: ModelEntry) -> EvalResult:
    """get_eval, but a model that cannot be loaded shows a clear error instead of a traceback."""
    try:
        return get_eval(entry.ref)
    except (CheckpointError, OSError) as e:
        st.error(f"Cannot evaluate **{entry.label}**: {e}")
        st.stop()
        raise


def select_model(ref: ModelRef) -> None:
    """Make `ref` the selected model from the next sidebar draw on (e.g. after saving it)."""
    st.session_state[keys.PENDING_MODEL] = ref


def model_picker() -> ModelEntry | None:
    """The sidebar's model selector; its choice (st.session_state[keys.MODEL]) is shared by all pages.

    The choice lives in a plain session key, not in the widget's own state, so it survives
    moving between pages (st.switch_page clears widget state) and can be changed by code.
    """
    entries = available_models()
    if not entries:
        st.info("No trained models yet. Train one on the **Train** page.")
        return None
    refs = [e.ref for e in entries]
    linked = st.query_params.get("model")  # a lesson link names its model: applied once per value
    if linked and linked != st.session_state.get(keys.LINKED_MODEL):
        st.session_state[keys.LINKED_MODEL] = linked
        match = [r for r in refs if r.kind == "file" and r.name == linked]
        if match:
            st.session_state[keys.MODEL] = match[0]
    if st.session_state.get(keys.PENDING_MODEL) in refs:
        st.session_state[keys.MODEL] = st.session_state.pop(keys.PENDING_MODEL)
    if st.session_state.get(keys.MODEL) not in refs:
        default = ModelRef.file(checkpoint_dir() / f"{DEFAULT_MODEL}.safetensors")
        st.session_state[keys.MODEL] = default if default in refs else refs[0]
    labels = {e.ref: e.label for e in entries}
    choice = st.selectbox(
        "Model", refs, index=refs.index(st.session_state[keys.MODEL]), format_func=labels.get, help="Used by every page"
    )
    st.session_state[keys.MODEL] = choice
    return entries[refs.index(choice)]


def selected_model() -> ModelEntry | None:
    entries = {e.ref: e for e in available_models()}
    return entries.get(st.session_state.get(keys.MODEL))


def require_model() -> tuple[ModelEntry, Checkpoint]:
    """The selected model and its checkpoint; without one, say so, link to Train and stop."""
    entry = selected_model()
    if entry is None:
        st.info("This page needs a trained model. Train one first - the quick demo takes a minute or two.")
        st.page_link(TRAIN.path, label="Go to Train", icon=TRAIN.icon)
        st.stop()
    try:
        return entry, get_checkpoint(entry.ref)
    except (CheckpointError, OSError) as e:
        st.error(f"Cannot load model **{entry.label}**: {e}")
        st.stop()
        raise


def open_mistakes(true: int, pred: int, image: int | None = None) -> None:
    """Open Misclassified filtered to one confusion cell (true class, predicted class), with `image` selected."""
    st.session_state[keys.MIS_FILTER] = (true, pred)
    if image is not None:
        st.session_state[keys.MIS_SELECTED] = image
    st.switch_page(MISCLASSIFIED.path)


def take_mistakes_filter() -> tuple[int, int] | None:
    """The (true, pred) cell that open_mistakes handed over, once."""
    return st.session_state.pop(keys.MIS_FILTER, None)
