"""Train-page support: the hyperparameter form, the session's run, and saving its model.

The form's widgets are derived from fmnist.config's option descriptions (label, help, choices);
WIDGETS below only says how each option is offered here. A new option is its field in
fmnist.config plus one line in WIDGETS and LAYOUT.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app_support import keys
from app_support.classroom import board
from app_support.leases import release_sweeps
from app_support.links import hidden
from app_support.state import ModelRef, checkpoint_dir, select_model, session_models, settings
from fmnist.artifacts import build_card, save_trained
from fmnist.checkpoints import (
    Checkpoint,
    CheckpointExists,
    FolderLimits,
    checkpoint_path,
    to_bytes,
)
from fmnist.config import PRESETS, ConfigError, Described, TrainConfig, options, preset_config, trainable_models
from fmnist.jobs import Job, JobManager, format_queue

PRESET_LABELS: dict[str, str] = {
    "student": "Student run (5,000 images: seconds, for a whole class)",
    "quick": "Quick demo (about a minute on any CPU: 55 s of training at most)",
    "best": "Best: pre-activation ResNet-20, 200 epochs (hours on a CPU, minutes on a GPU)",
    "resnet64": "ResNet, 64 epochs (an hour or more on a CPU)",
    "photo": "Photo model: ResNet trained on photo-like images (an hour or more on a CPU)",
}
PRESET_LABELS |= {k: f"Public recipe: {k}" for k in PRESETS if k not in PRESET_LABELS}
# How each option is offered on this page; its range is the option's own (fmnist.config's Opt):
# "options" makes a select slider, "slider" a slider with that step, otherwise a number input.
WIDGETS: dict[str, dict[str, Any]] = {
    "epochs": {},
    "batch_size": {"options": [16, 32, 64, 128, 256, 512, 1024]},
    "lr": {"format": "%.5f"},
    "optimizer": {},
    "schedule": {},
    "val_fraction": {"options": [0.0, 0.05, 0.1, 0.2, 0.3]},
    "subset": {"step": 1000},
    "erase": {"slider": 0.1},
    "erase_size": {"slider": 2},
    "erase_value": {"format": "%.3f"},
    "crop": {"slider": 1},
    "photo": {"slider": 0.1},
    "flip": {},
    "shift": {"slider": 0.05},
    "rotate": {"slider": 5.0},
    "zoom": {"slider": 0.05},
    "weight_decay": {"format": "%.5f"},
    "label_smoothing": {"slider": 0.05},
    "patience": {},
    "seed": {},
    "restore_best": {},
    "monitor": {},
    "precision": {},
    "time_budget": {"step": 10.0},
}
LAYOUT = [  # rows of the form; the second group sits in an expander
    ["epochs", "batch_size", "lr"],
    ["optimizer", "schedule", "val_fraction", "subset"],
]
MORE = [
    ["erase", "erase_size", "erase_value", "crop", "photo"],
    ["flip", "shift", "rotate", "zoom"],
    ["weight_decay", "label_smoothing", "patience", "seed"],
    ["restore_best", "monitor", "precision", "time_budget"],
]

_SAVE_LOCK = threading.Lock()  # guards the check-and-claim of a run's saved name
_SAVED: dict[int, str] = {}  # job id -> the name its model was saved as (one save per run)


def option_widget(d: Described, value: Any, key: str, disabled: bool) -> Any:
    """The widget for option `d`, prefilled with `value`; returns the chosen value (None = off)."""
    o, w = d.opt, WIDGETS[d.name]
    common = {"key": key, "disabled": disabled, "help": o.help}
    label = o.label or d.name.replace("_", " ").capitalize()
    if d.kind is bool:
        return st.toggle(label, value, **common)
    if o.choices:
        return st.selectbox(label, o.choices, index=o.choices.index(value), **common)
    if "options" in w:
        return st.select_slider(label, sorted({*w["options"], value}), value, **common)
    optional = d.field.default is None  # 0 means off
    lo, hi = (0 if optional else o.lo), o.hi
    start = d.kind(value if value is not None else 0)
    if "slider" in w:
        return st.slider(label, d.kind(lo), d.kind(hi), start, d.kind(w["slider"]), **common)
    extra = {"format": w["format"]} if "format" in w else {}
    chosen = st.number_input(label, d.kind(lo), d.kind(hi), start, step=w.get("step"), **extra, **common)
    return (chosen or None) if optional else chosen


def _rows(rows: list[list[str]], base: dict[str, Any], prefix: str, disabled: bool) -> dict[str, Any]:
    values = {}
    for row in rows:
        for col, name in zip(st.columns(len(row)), row):
            with col:
                values[name] = option_widget(options()[name], base[name], prefix + name, disabled)
    return values


def config_form(disabled: bool) -> TrainConfig | None:
    """Preset picker plus the hyperparameters, prefilled from the preset. None if invalid."""
    room = board().limits  # the teacher's limits: only what the room allows is offered
    presets = [p for p in PRESET_LABELS if not room.presets or p in room.presets]
    preset = st.selectbox("Preset", presets, format_func=PRESET_LABELS.get, key="tr_preset", disabled=disabled)
    base_cfg = preset_config(preset)
    base = base_cfg.flat()
    prefix = f"tr_{preset}_"  # per-preset keys: switching preset resets the fields to its recipe
    archs = [a for a in trainable_models() if not room.archs or a in room.archs or a == base_cfg.arch]
    arch = st.selectbox("Architecture", archs, archs.index(base_cfg.arch), key=prefix + "arch", disabled=disabled)
    values = _rows(LAYOUT, base, prefix, disabled)
    if hidden("advanced"):  # a lesson link keeps the class on the few settings that matter
        values.update({n: st.session_state.get(prefix + n, base[n]) for row in MORE for n in row})
    else:
        with st.expander("Augmentation, regularisation, early stopping, seed, precision"):
            values.update(_rows(MORE, base, prefix, disabled))
    try:  # another architecture than the preset's drops the preset's architecture options (fmnist.config)
        return preset_config(preset, arch=arch, log_every=5, **values)
    except ConfigError as e:
        st.error(f"Invalid setting: {e}")
        return None


@dataclass(frozen=True)
class Runs:
    """The server's one job manager, and what the app says about where runs train."""

    manager: JobManager
    note: str | None  # why runs train here and not on the lab's cluster, when it is down


@st.cache_resource(show_spinner=False)
def _runs() -> Runs:
    """Runs train in worker processes, FMNIST_MAX_TRAININGS at once (fmnist.settings).

    A closed tab's run is cancelled after FMNIST_ORPHAN_GRACE_S seconds: a dropped connection that
    comes back within that time keeps its run. With FMNIST_RAY_ADDRESS set, runs train on that Ray
    cluster instead (docs/DEPLOY.md: A lab of PCs).
    """
    from fmnist.ray_backend import make_manager  # imports ray only when FMNIST_RAY_ADDRESS is set

    s = settings()
    return Runs(*make_manager(s, s.ray_address, fall_back=True))  # the lab's cluster down: train here


def job_manager() -> JobManager:
    return _runs().manager


def backend_note() -> str | None:
    """Why runs train on this server although a cluster was named (None when all is as set)."""
    return _runs().note


def heartbeat() -> None:
    """This tab is still here: its run is not orphaned."""
    job_manager().touch(owner())


def owner() -> str:
    """This browser session's token for the job manager; registers the session's goodbye once."""
    if keys.OWNER not in st.session_state:
        st.session_state[keys.OWNER] = uuid.uuid4().hex
    token = st.session_state[keys.OWNER]
    _presence(token)
    return token


def _owner_gone(token: str) -> None:
    job_manager().orphan(token)  # cancelled after the grace period unless the session comes back
    release_sweeps(token)  # the same for its sweep


@st.cache_resource(scope="session", on_release=_owner_gone, show_spinner=False)
def _presence(token: str) -> str:
    """A session-scoped entry: Streamlit releases it when the session ends (a closed tab)."""
    return token


def current_run() -> Job | None:
    """This session's latest run (queued, running or ended); touching it tells the manager we are here."""
    job = st.session_state.get(keys.RUN)
    if job is not None:
        job_manager().touch(owner())
    return job


def start_run(cfg: TrainConfig, preset: str, nickname: str = "", share: bool = False) -> Job:
    """Queue this session's run (one at a time: a live one is returned as it is); share it on the class board.

    Raises:
        LimitError: the room's limits (set by the teacher on the board) do not allow `cfg`.
    """
    live = current_run()
    if live is not None and live.snapshot().active:
        return live
    board().limits.check(cfg, preset)  # the server enforces the room's limits, whatever the page sent
    n = st.session_state.get(keys.RUN_COUNT, 0) + 1
    st.session_state[keys.RUN_COUNT] = n
    job = job_manager().submit(cfg, owner=owner(), label=f"{cfg.arch}-run{n}")
    st.session_state[keys.RUN] = job
    st.session_state[keys.RUN_PRESET] = preset
    if share:
        board().share(job, nickname, preset)
    return job


def publish(run: Job) -> str:
    """Put a finished run's model into this session's model list (once); return its label."""
    published = st.session_state.setdefault(keys.PUBLISHED_RUNS, set())
    if run.label not in published and run.result and run.result.model is not None:
        session_models()[run.label] = Checkpoint(run.result.model, {**build_card(run.result), "name": run.label})
        published.add(run.label)
    return run.label


def run_status() -> None:
    """The sidebar's line about this session's run, on every page; it keeps the run alive (heartbeat)."""
    job = st.session_state.get(keys.RUN)
    if job is None or not job.snapshot().active:
        return

    @st.fragment(run_every=3.0)
    def line() -> None:
        snap = current_run().snapshot()  # touches the run: this tab is still here
        if snap.state == "queued":
            st.caption(f":material/hourglass_top: Your run: queued, position {snap.position}: {format_queue(snap)}")
        elif snap.pending:
            st.caption(":material/hourglass_top: Your run: pending on the cluster")
        elif snap.active:
            last = snap.batches[-1] if snap.batches else None
            where = f"epoch {last.epoch}/{job.config.epochs}, {last.progress:.0%}" if last else "starting"
            st.caption(f":material/model_training: Your run: {where}")
        else:
            st.rerun()  # it just ended: redraw the page, so the picker lists the new model

    line()


def publish_finished() -> None:
    """Called before the model picker is drawn, so a run that just ended is listed at once."""
    run = current_run()
    if run is not None and run.result is not None:
        publish(run)


def save_run(run: Job, name: str) -> str:
    """Evaluate on the test set and save into the checkpoint folder; return the saved name.

    One save per run. The file is created exclusively, so when two students pick the same name
    at the same moment one wins and the other is told; the folder's quota (FMNIST_MAX_SAVED_*)
    is checked under the folder's lock.

    Raises:
        ValueError: an unusable name.
        CheckpointError: the name exists, the folder is full, or the run was already saved.
    """
    with _SAVE_LOCK:  # claim the run: a second click or tab cannot save it twice
        if run.id in _SAVED:
            raise CheckpointExists(f"this run is already saved as {_SAVED[run.id]!r}")
        _SAVED[run.id] = name
    try:
        path = checkpoint_path(name, checkpoint_dir())  # raises ValueError on unusable names
        extra = {"name": path.stem, "saved_from": "Train page", "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        limits = FolderLimits.from_settings(settings())
        save_trained(run.result, path, command=None, overwrite=False, limits=limits, **extra)
    except BaseException:
        with _SAVE_LOCK:
            _SAVED.pop(run.id, None)
        raise
    with _SAVE_LOCK:
        _SAVED[run.id] = path.stem
    session_models().pop(run.label, None)
    select_model(ModelRef.file(path))
    return path.stem


def saved_name(run: Job) -> str | None:
    """The name this run's model was saved as, if it was."""
    return _SAVED.get(run.id)


def download_bytes(run: Job) -> bytes:
    return to_bytes(run.result.model, {**build_card(run.result), "name": run.label})
