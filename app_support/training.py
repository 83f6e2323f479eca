"""Train-page support: the hyperparameter form, the session's run, and saving its model."""

from __future__ import annotations

import time

import streamlit as st

from app_support.runner import TrainingRun
from app_support.state import SESSION_MODELS, checkpoint_dir, dataset
from fmnist.checkpoints import Checkpoint, build_card, checkpoint_path, save_trained, to_bytes
from fmnist.models import list_models
from fmnist.train import PRESETS, ConfigError, TrainConfig, preset_config

RUN_KEY = "train_run"  # this session's TrainingRun
PRESET_LABELS = {
    "quick": "Quick demo (under a minute)",
    "best": "Best: ResNet (about half an hour)",
    **{k: f"Public recipe: {k}" for k in PRESETS if k not in ("quick", "best")},
}


def config_form(disabled: bool) -> TrainConfig | None:
    """Preset picker plus every hyperparameter, prefilled from the preset. None if invalid."""
    preset = st.selectbox(
        "Preset", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key="tr_preset", disabled=disabled
    )
    base = preset_config(preset)
    k = f"tr_{preset}_"  # per-preset keys: switching preset resets the fields to its recipe
    c1, c2, c3, c4 = st.columns(4)
    arch = c1.selectbox(
        "Architecture", list_models(), index=list_models().index(base.arch), key=k + "arch", disabled=disabled
    )
    epochs = c2.number_input("Epochs", 1, 200, base.epochs, key=k + "epochs", disabled=disabled)
    batch = c3.select_slider(
        "Batch size", [16, 32, 64, 128, 256, 512, 1024], base.batch_size, key=k + "batch", disabled=disabled
    )
    lr = c4.number_input("Learning rate", 1e-5, 10.0, base.lr, format="%.4f", key=k + "lr", disabled=disabled)
    c1, c2, c3, c4 = st.columns(4)
    opt = c1.selectbox(
        "Optimizer",
        ["adam", "adamw", "sgd"],
        ["adam", "adamw", "sgd"].index(base.optimizer),
        key=k + "opt",
        disabled=disabled,
    )
    sched = c2.selectbox(
        "LR schedule",
        ["constant", "onecycle", "cosine"],
        ["constant", "onecycle", "cosine"].index(base.schedule),
        key=k + "sched",
        disabled=disabled,
    )
    val = c3.select_slider(
        "Validation split", [0.05, 0.1, 0.2, 0.3], base.val_fraction, key=k + "val", disabled=disabled
    )
    subset = c4.number_input(
        "Training images (0 = all)", 0, 60000, base.subset or 0, step=1000, key=k + "subset", disabled=disabled
    )
    with st.expander("Augmentation, regularisation, early stopping, seed"):
        c0, c1, c2, c3, c4 = st.columns(5)
        erase = c0.slider("Random erasing (p)", 0.0, 1.0, base.augment.erase, 0.1, key=k + "erase", disabled=disabled)
        flip = c1.toggle("Random flip", base.augment.flip, key=k + "flip", disabled=disabled)
        shift = c2.slider("Shift (fraction)", 0.0, 0.3, base.augment.shift, 0.05, key=k + "shift", disabled=disabled)
        rotate = c3.slider(
            "Rotation (degrees)", 0.0, 30.0, base.augment.rotate, 5.0, key=k + "rotate", disabled=disabled
        )
        zoom = c4.slider("Zoom (fraction)", 0.0, 0.3, base.augment.zoom, 0.05, key=k + "zoom", disabled=disabled)
        c1, c2, c3, c4 = st.columns(4)
        wd = c1.number_input(
            "Weight decay", 0.0, 0.5, base.weight_decay, format="%.5f", key=k + "wd", disabled=disabled
        )
        ls = c2.slider("Label smoothing", 0.0, 0.3, base.label_smoothing, 0.05, key=k + "ls", disabled=disabled)
        patience = c3.number_input(
            "Early-stop patience (0 = off)", 0, 50, base.patience or 0, key=k + "pat", disabled=disabled
        )
        seed = c4.number_input("Seed", 0, 2**31 - 1, base.seed, key=k + "seed", disabled=disabled)
    try:
        return TrainConfig(
            arch=arch, epochs=int(epochs), batch_size=int(batch), lr=float(lr), optimizer=opt, schedule=sched,
            val_fraction=float(val), subset=int(subset) or None, weight_decay=float(wd), label_smoothing=float(ls),
            patience=int(patience) or None, seed=int(seed), tta_flip=base.tta_flip, log_every=5,
            augment={"flip": flip, "shift": shift, "rotate": rotate, "zoom": zoom, "erase": erase},
            model_kwargs=base.model_kwargs if arch == base.arch else {},
        )  # fmt: skip
    except ConfigError as e:
        st.error(f"Invalid setting: {e}")
        return None


def current_run() -> TrainingRun | None:
    return st.session_state.get(RUN_KEY)


def start_run(cfg: TrainConfig) -> TrainingRun:
    """Start this session's run (one at a time: a live run is returned as it is)."""
    live = current_run()
    if live is not None and live.running:
        return live
    n = st.session_state.get("train_count", 0) + 1
    st.session_state["train_count"] = n
    run = TrainingRun(cfg, dataset(), label=f"{cfg.arch}-run{n}").start()
    st.session_state[RUN_KEY] = run
    return run


def publish(run: TrainingRun) -> str:
    """Put a finished run's model into this session's model list (once); return its label."""
    models = st.session_state.setdefault(SESSION_MODELS, {})
    published = st.session_state.setdefault("published_runs", set())
    if run.label not in published and run.result and run.result.model is not None:
        models[run.label] = Checkpoint(run.result.model, {**build_card(run.result), "name": run.label})
        published.add(run.label)
    return run.label


def publish_finished() -> None:
    """Called before the model picker is drawn, so a run that just ended is listed at once."""
    run = current_run()
    if run is not None and not run.running:
        publish(run)


def save_run(run: TrainingRun, name: str) -> str:
    """Evaluate on the test set, write atomically into the checkpoint folder, select it."""
    path = checkpoint_path(name, checkpoint_dir())  # raises ValueError on unusable names
    if path.exists():
        raise FileExistsError(f"a model named {path.stem!r} already exists; choose another name")
    extra = {"name": path.stem, "saved_from": "Train page", "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_trained(run.result, path, command=None, **extra)
    st.session_state.get(SESSION_MODELS, {}).pop(run.label, None)
    st.session_state["pending_model_key"] = f"file:{path}"
    return str(path)


def download_bytes(run: TrainingRun) -> bytes:
    return to_bytes(run.result.model, {**build_card(run.result), "name": run.label})
