"""Train: pick a preset or your own hyperparameters and watch the network learn, live."""

import math

import streamlit as st

from app_support import keys
from app_support.classroom import limits, share_controls
from app_support.links import apply_train_link, copy_link, say_ignored, train_params
from app_support.nav import TRAIN
from app_support.plots import curves_fig
from app_support.state import require_dataset
from app_support.training import (
    backend_note,
    config_form,
    current_run,
    download_bytes,
    heartbeat,
    job_manager,
    publish,
    save_run,
    saved_name,
    start_run,
)
from fmnist.checkpoints import CheckpointError
from fmnist.jobs import format_queue
from fmnist.room import LimitError
from fmnist.train import describe_val

st.title("Train a network")
require_dataset()
st.caption(
    "Your run trains in a worker process on the server, for your browser session only: switch pages and "
    "come back, the curves will still be here. When the class trains at once, runs wait in a queue. "
    "**Stop** ends the run within one batch and keeps the best weights."
)
if backend_note():
    st.warning(backend_note(), icon=":material/lan:")
if keys.TRAIN_FLASH in st.session_state:
    st.success(st.session_state.pop(keys.TRAIN_FLASH))
say_ignored(apply_train_link())  # a lesson link's settings, before the form is drawn
run = current_run()
active = run is not None and run.snapshot().active
nickname, share = share_controls(run)
if limits().describe():
    st.info(f"**Your teacher's limits for this room:** {limits().describe()}.", icon=":material/rule:")
cfg = config_form(disabled=active)

c1, c2, _, c4 = st.columns([3, 2, 3, 4])  # wide enough for "Start training" on a 1280 px screen
with c4:
    copy_link(TRAIN, train_params(st.session_state["tr_preset"]), key="tr_link")
if c1.button(
    "Start training", type="primary", icon=":material/play_arrow:", disabled=active or cfg is None, key="tr_start"
):
    try:
        run = start_run(cfg, st.session_state["tr_preset"], nickname, share)
        active = True
    except LimitError as e:
        st.error(f"Not allowed in this room: {e}.", icon=":material/block:")
snap0 = run.snapshot() if active else None
queued = snap0 is not None and (snap0.state == "queued" or snap0.pending)
if c2.button("Leave the queue" if queued else "Stop", icon=":material/stop:", disabled=not active, key="tr_stop"):
    run.stop()


@st.fragment(run_every=(3.0 if queued else 1.0) if active else None)  # a queue position changes slowly
def live_view() -> None:
    with st.container():
        _live_view()


def _live_view() -> None:
    if run is None:
        st.info("Choose a preset (the quick demo trains for 55 s at most) and press **Start training**.")
        return
    snap = run.snapshot()
    if snap.active:
        heartbeat()  # this tab is still here
    last = snap.batches[-1] if snap.batches else None
    if snap.state == "queued":
        st.progress(0.0, text=f"{run.label}: waiting in the queue")
        busy = job_manager().status()
        st.info(
            f"**Position {snap.position} in the queue.** {busy['running']} run(s) are training now "
            f"(at most {busy['max_running']} at once on this server). Your run {format_queue(snap)}.",
            icon=":material/hourglass_top:",
        )
    elif last:
        st.progress(
            last.progress,
            text=f"{run.label}: epoch {last.epoch}/{run.config.epochs}, batch {last.batch}/{last.batches} | "
            f"{last.images_per_s:,.0f} images/s | elapsed {last.elapsed:.0f}s | ETA {last.eta:.0f}s",
        )
    elif snap.pending:
        st.progress(0.0, text=f"{run.label}: pending on the cluster")
        st.info(
            "**Pending on the cluster.** Every computer of the lab is busy; Ray starts your run as soon as one "
            "has room.",
            icon=":material/hourglass_top:",
        )
    elif snap.state == "running":
        st.progress(0.0, text=f"{run.label}: starting the worker ...")
    if snap.epochs:
        e = snap.epochs[-1]
        m = st.columns(4)
        m[0].metric("Epoch", f"{e.epoch}/{e.epochs}")
        m[1].metric("Train accuracy", f"{e.train_acc:.2%}")
        no_split = math.isnan(e.val_acc)
        m[2].metric("Validation accuracy", "no validation split" if no_split else f"{e.val_acc:.2%}")
        m[3].metric("Validation loss", "–" if no_split else f"{e.val_loss:.4f}")
    if snap.state != "queued" and not snap.pending:
        history = [vars(e) for e in snap.epochs]
        st.plotly_chart(curves_fig(history, snap.batches, run.config.epochs), key="tr_curves")
    if snap.active != active:  # the run just ended: redraw the whole page (buttons, model picker)
        st.rerun()
    if not snap.active:
        outcome(snap)


def outcome(snap) -> None:
    """How the run ended; for a finished run, the save and download controls."""
    if snap.stopped_by:
        st.warning(snap.stopped_by, icon=":material/school:")
    if snap.state == "cancelled":
        st.info(snap.error or "The run left the queue before it started.", icon=":material/cancel:")
    elif snap.error:
        st.error(f"Training failed: {snap.error}")
    elif snap.done and snap.done.status == "diverged":
        st.error(f"**Training diverged.** {snap.done.message}", icon=":material/warning:")
    elif snap.done:
        label = publish(run)
        res = snap.done.result
        st.success(f"**{snap.done.status.replace('_', ' ').capitalize()}.** {snap.done.message}")
        st.caption(f"`{label}` is now in the model picker for this session. Save it to keep it and share it.")
        if saved_name(run):
            st.caption(
                f":material/check_circle: Saved as **{saved_name(run)}**: it is in the model picker for everyone."
            )
        else:
            c1, c2 = st.columns([3, 1])
            name = c1.text_input("Save as", value=label, key="tr_save_name", max_chars=64)
            if c2.button("Save model", icon=":material/save:", key="tr_save"):
                try:
                    saved = save_run(run, name)
                    st.session_state[keys.TRAIN_FLASH] = (
                        f"Saved as **{saved}**. It is now selected in the model picker on every page."
                    )
                    st.rerun()
                except (ValueError, CheckpointError) as e:
                    st.error(f"Could not save: {e}")
                except OSError as e:  # its text holds the server's paths: only the reason is shown
                    st.error(f"Could not save: the server could not write the file ({e.strerror or 'I/O error'}).")
        st.download_button(
            "Download checkpoint",
            download_bytes(run),
            file_name=f"{label}.safetensors",
            mime="application/octet-stream",
            key="tr_download",
            icon=":material/download:",
        )
        st.caption(
            f"Best epoch {res.best_epoch}: {describe_val(res.val_acc)}. Training time {res.train_time_s:.0f}s "
            f"({res.device}, {res.precision})."
        )


live_view()
