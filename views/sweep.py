"""Sweep: let Optuna try many settings, watch the trials arrive, and open the best model."""

import pandas as pd
import streamlit as st

from app_support.nav import EVALUATE
from app_support.state import ModelRef, require_dataset, select_model
from app_support.sweeps import current_sweep, optuna_figures, start_sweep
from fmnist.config import options, trainable_models
from fmnist.sweep import MAX_TRIALS, Param, SweepError, load_summary

st.title("Sweep: which settings work best?")
require_dataset()
st.caption(
    "A sweep trains the same network many times with different settings, chosen by Optuna: after a few "
    "random tries it proposes settings near the best ones so far. A trial that is clearly worse than the "
    "others after an epoch is stopped early (pruned), which saves time for better ones. Every trial waits "
    "its turn in the server's training queue, like any other run."
)

LR, EPOCHS = options()["lr"].opt, options()["epochs"].opt  # the options' own ranges
run = current_sweep()
active = run is not None and run.active
archs = trainable_models()
with st.form("sw_form", border=True):
    c = st.columns(4)
    arch = c[0].selectbox("Architecture", archs, index=archs.index("cnn2"), key="sw_arch", disabled=active)
    trials = c[1].number_input("Trials", 2, MAX_TRIALS, 8, key="sw_trials", disabled=active)
    epochs = c[2].number_input("Epochs per trial", 1, int(EPOCHS.hi), 2, key="sw_epochs", disabled=active)
    subset = c[3].select_slider(
        "Training images", [1000, 2000, 3000, 5000, 10000, 20000, 54000], 3000, key="sw_subset", disabled=active
    )
    c = st.columns(4)
    lr_low = c[0].number_input(
        "Learning rate from", float(LR.lo), float(LR.hi), 1e-4, format="%.5f", key="sw_lr_low", disabled=active
    )
    lr_high = c[1].number_input(
        "Learning rate to", float(LR.lo), float(LR.hi), 1e-1, format="%.5f", key="sw_lr_high", disabled=active
    )
    batches = c[2].multiselect(
        "Batch sizes", [16, 32, 64, 128, 256, 512], [32, 64, 128], key="sw_batch", disabled=active
    )
    optimizers = c[3].multiselect("Optimizers", ["adam", "adamw", "sgd"], ["adam"], key="sw_opt", disabled=active)
    pruner = st.radio(
        "Stop poor trials early",
        ["median", "halving"],
        horizontal=True,
        key="sw_pruner",
        disabled=active,
        format_func={"median": "below the median (Optuna's MedianPruner)", "halving": "successive halving"}.get,
    )
    go = st.form_submit_button("Start the sweep", type="primary", icon=":material/play_arrow:", disabled=active)

if go:
    try:
        params = [Param("lr", lr_low, lr_high, log=True)]
        if len(batches) > 1:
            params.append(Param("batch_size", choices=tuple(batches)))
        if len(optimizers) > 1:
            params.append(Param("optimizer", choices=tuple(optimizers)))
        fixed = {"epochs": int(epochs), "subset": int(subset), "seed": 0}
        if len(batches) == 1:
            fixed["batch_size"] = batches[0]
        if len(optimizers) == 1:
            fixed["optimizer"] = optimizers[0]
        if not batches or not optimizers:
            raise SweepError("pick at least one batch size and one optimizer")
        run = start_sweep(arch, params, int(trials), fixed, pruner)
        active = True
    except SweepError as e:
        st.error(f"Cannot start this sweep: {e}")

if run is not None and active and st.button("Stop the sweep", icon=":material/stop:", key="sw_stop"):
    run.stop()


def _note(t: dict) -> str:
    if t["state"] == "pruned":
        return f"stopped early: below the others after epoch {max(1, t['epochs'] - 1)}"
    if t["state"] == "fail":
        return (t["error"] or "failed").split(". ")[0]
    return ""


@st.fragment(run_every=2.0 if active else None)
def live() -> None:
    if run is None:
        st.info(
            "Pick the ranges and press **Start the sweep**. The default (8 trials of 2 epochs on 3,000 images) "
            "takes a few minutes when the server is free."
        )
        return
    try:
        res = load_summary(run.spec.study, run.spec.storage)
    except SweepError:
        st.progress(0.0, text="Starting the sweep ...")
        return
    trials = res["trials"]
    done = [t for t in trials if t["state"] != "running"]
    st.progress(
        min(1.0, len(done) / run.spec.trials),
        text=f"Study `{res['study']}`: {len(done)} of {run.spec.trials} trials done"
        + (" (running)" if run.active else " (stopped)" if run.stopped else ""),
    )
    if run.error:
        st.error(f"The sweep stopped: {run.error}")
    if res.get("save_error"):
        st.warning(f"The best model could not be saved: {res['save_error']}")
    best = res["best"]
    if best:
        c1, c2 = st.columns([3, 1])
        params = ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best["params"].items()
        )
        c1.success(f"**Best so far: trial {best['number']}**, validation accuracy {best['value']:.2%} with {params}.")
        if res["checkpoint"] and c2.button("Open the best model", icon=":material/open_in_new:", key="sw_open"):
            select_model(ModelRef.file(res["checkpoint"]))
            st.switch_page(EVALUATE.path)
    rows = [
        {
            "trial": t["number"],
            "state": t["state"],
            "validation accuracy": float("nan") if t["value"] is None else t["value"],
            "epochs": t["epochs"],
            **t["params"],
            "note": _note(t),
        }
        for t in trials
    ]
    if rows:
        st.dataframe(
            pd.DataFrame(rows).style.format({"validation accuracy": "{:.2%}", "lr": "{:.2e}"}, na_rep="-"),
            hide_index=True,
            key="sw_table",
        )
    figures = optuna_figures(run.spec.study)
    for i in range(0, len(figures), 2):
        cols = st.columns(2)
        for col, (title, fig) in zip(cols, figures[i : i + 2]):
            col.markdown(f"**{title}**")
            col.plotly_chart(fig, key=f"sw_fig_{i}_{title[:12]}")
    if not run.active and active:
        st.rerun()  # the sweep just ended: redraw the form and the picker (the best model is in it)


live()
