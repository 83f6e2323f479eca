"""Train: pick a preset or your own hyperparameters and watch the network learn, live."""

import streamlit as st

from app_support import keys
from app_support.plots import curves_fig
from app_support.training import (
    config_form,
    current_run,
    download_bytes,
    publish,
    save_run,
    start_run,
)

st.title("Train a network")
st.caption(
    "Training runs in the background for your browser session only: switch pages and come back, "
    "the curves will still be here. **Stop** ends the run within one batch and keeps the best weights."
)
if keys.TRAIN_FLASH in st.session_state:
    st.success(st.session_state.pop(keys.TRAIN_FLASH))
run = current_run()
running = run is not None and run.running
cfg = config_form(disabled=running)

c1, c2, _ = st.columns([1, 1, 4])
if c1.button(
    "Start training", type="primary", icon=":material/play_arrow:", disabled=running or cfg is None, key="tr_start"
):
    run = start_run(cfg)
    running = True
if c2.button("Stop", icon=":material/stop:", disabled=not running, key="tr_stop"):
    run.stop()


@st.fragment(run_every=1.0 if running else None)
def live_view() -> None:
    if run is None:
        st.info("Choose a preset (the quick demo takes a minute or two) and press **Start training**.")
        return
    snap = run.snapshot()
    last = snap.batches[-1] if snap.batches else None
    if last:
        st.progress(
            last.progress,
            text=f"{run.label}: epoch {last.epoch}/{run.config.epochs}, batch {last.batch}/{last.batches} | "
            f"{last.images_per_s:,.0f} images/s | elapsed {last.elapsed:.0f}s | ETA {last.eta:.0f}s",
        )
    elif snap.running:
        st.progress(0.0, text=f"{run.label}: starting ...")
    if snap.epochs:
        e = snap.epochs[-1]
        m = st.columns(4)
        m[0].metric("Epoch", f"{e.epoch}/{e.epochs}")
        m[1].metric("Train accuracy", f"{e.train_acc:.2%}")
        m[2].metric("Validation accuracy", f"{e.val_acc:.2%}")
        m[3].metric("Validation loss", f"{e.val_loss:.4f}")
    history = [vars(e) for e in snap.epochs]
    st.plotly_chart(curves_fig(history, snap.batches, run.config.epochs), key="tr_curves")
    if snap.running != running:  # the run just ended: redraw the whole page (save form)
        st.rerun()


live_view()

if run is not None and not run.running:
    snap = run.snapshot()
    if snap.error:
        st.error(f"Training failed: {snap.error}")
    elif snap.done and snap.done.status == "diverged":
        st.error(f"**Training diverged.** {snap.done.message}", icon=":material/warning:")
    elif snap.done:
        label = publish(run)
        res = snap.done.result
        st.success(f"**{snap.done.status.replace('_', ' ').capitalize()}.** {snap.done.message}")
        st.caption(f"`{label}` is now in the model picker for this session. Save it to keep it and share it.")
        c1, c2 = st.columns([3, 1])
        name = c1.text_input("Save as", value=label, key="tr_save_name", max_chars=64)
        if c2.button("Save model", icon=":material/save:", key="tr_save"):
            try:
                path = save_run(run, name)
                st.session_state[keys.TRAIN_FLASH] = (
                    f"Saved to `{path}`. It is now selected in the model picker on every page."
                )
                st.rerun()
            except (ValueError, FileExistsError, OSError) as e:
                st.error(f"Could not save: {e}")
        st.download_button(
            "Download checkpoint", download_bytes(run), file_name=f"{label}.safetensors",
            mime="application/octet-stream", key="tr_download", icon=":material/download:",
        )  # fmt: skip
        st.caption(
            f"Validation accuracy {res.val_acc:.2%} (best epoch {res.best_epoch}), training time {res.train_time_s:.0f}s."
        )
