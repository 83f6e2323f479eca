"""Class board: the teacher sees every run the class shares, live; sets the room's limits; stops, compares, opens."""

import pandas as pd
import streamlit as st

from app_support.classroom import board, board_open, is_teacher, measure, open_model, started_text, teacher_login
from app_support.nav import EVALUATE, MAP, MISCLASSIFIED, PREDICT
from app_support.plots import board_curves_fig
from app_support.training import PRESET_LABELS
from fmnist.config import options, trainable_models
from fmnist.data import N_TRAIN
from fmnist.room import RoomLimits, colour_group, curve, leaderboard, table_rows, to_csv

st.title("Class board")
if not board_open():
    st.info(
        "This server has no class board. Start it with a teacher's key, for example "
        "`FMNIST_TEACHER_KEY=choose-a-key make classroom` (docs/DEPLOY.md).",
        icon=":material/lock:",
    )
    st.stop()
if not is_teacher():
    st.caption("The class board shows the runs your students share with you, live. Give the teacher's key.")
    teacher_login()
    st.stop()
st.caption(
    f"Every run a student shares, under their nickname, since this server started at {started_text()} "
    "(a restart clears the board). Runs not shared never appear here."
)

with st.expander("Room limits: what students may train", icon=":material/rule:"):
    current = board().limits
    with st.form("cl_limits", border=False):
        c = st.columns(2)
        presets = c[0].multiselect(
            "Presets allowed (none chosen: all)", list(PRESET_LABELS), list(current.presets or ()), key="cl_presets"
        )
        archs = c[1].multiselect(
            "Architectures allowed (none chosen: all)", trainable_models(), list(current.archs or ()), key="cl_archs"
        )
        c = st.columns(2)
        epochs_hi = int(options()["epochs"].opt.hi)
        max_epochs = c[0].number_input("Most epochs per run (0: no limit)", 0, epochs_hi, current.max_epochs or 0)
        max_images = c[1].number_input(
            "Most training images per run (0: no limit)", 0, N_TRAIN, current.max_images or 0, step=1000
        )
        if st.form_submit_button("Apply to the room", icon=":material/check:"):
            chosen = RoomLimits(tuple(presets) or None, tuple(archs) or None, max_epochs or None, max_images or None)
            board().limits = chosen
            st.success(f"Applied: {board().limits.describe() or 'no limits'}. Students see them on Train.")


@st.fragment(run_every=2.0)
def live_board() -> None:
    """The part that changes: refreshed every 2 s without re-running the page."""
    measure()  # test accuracy of runs that just ended, two per refresh
    rows = board().rows()
    if not rows:
        st.info("No shared runs yet. Students share a run from **Train** (on by default in this room).")
        return
    m = st.columns(5)
    for col, (label, states) in zip(
        m,
        [
            ("Shared runs", None),
            ("Queued", ("queued",)),
            ("Training", ("training", "starting", "pending")),
            ("Finished", ("finished", "early stopped", "stopped")),
            ("Diverged or failed", ("diverged", "failed")),
        ],
    ):
        col.metric(label, len(rows) if states is None else sum(r.state in states for r in rows))
    st.dataframe(
        pd.DataFrame(table_rows(rows)),
        hide_index=True,
        column_config={
            "Time": st.column_config.TextColumn(help="Waiting so far while queued; training time after"),
            "ETA": st.column_config.TextColumn(help="Until it starts (queued) or ends (training)"),
            "Val acc": st.column_config.TextColumn(help="Best validation accuracy so far"),
            "Test acc": st.column_config.TextColumn(help="On the 10,000 test images, once the run has ended"),
        },
        key="cl_table",
    )

    names = {r.id: f"{r.nickname} · {r.arch}" for r in rows}
    with_curves = [r.id for r in rows if r.val_acc is not None or r.state == "training"]
    chosen = st.multiselect(
        "Compare validation curves (none chosen: every run)", list(names), format_func=names.get, key="cl_compare"
    )
    shown = [r for r in rows if r.id in (chosen or with_curves)]
    series = []
    for r in shown:
        epochs, vals = curve(board().entry(r.id).job)
        if epochs:
            series.append({"name": names[r.id], "group": colour_group(r, shown), "epochs": epochs, "val_acc": vals})
    if series:
        st.plotly_chart(board_curves_fig(series), key="cl_curves")

    best = leaderboard(rows)
    if best:
        st.subheader("Leaderboard: test accuracy")
        st.dataframe(
            pd.DataFrame(table_rows(best))[["Nickname", "Model", "Test acc", "Val acc", "Settings changed"]],
            hide_index=True,
            key="cl_leaders",
        )
    controls(rows, names)


def controls(rows, names) -> None:
    """Stop or remove one run, clear the queue, open a model, export the board."""
    st.subheader("Teacher's controls")
    c = st.columns([3, 1, 1])
    pick = c[0].selectbox("Run", list(names), format_func=names.get, key="cl_pick")
    row = next(r for r in rows if r.id == pick)
    if c[1].button("Remove from queue" if row.state == "queued" else "Stop", disabled=not row.live, key="cl_stop"):
        board().stop(pick)
        st.toast(f"{names[pick]}: stopped. Its student's page says so.")
    queued = sum(r.state == "queued" for r in rows)
    if c[2].button(f"Clear the queue ({queued})", disabled=not queued, key="cl_clear"):
        st.toast(f"{board().clear_queue()} queued runs removed.")
    entry = board().entry(pick)
    has_model = entry is not None and entry.job.result is not None and entry.job.result.model is not None
    c = st.columns(5)
    for col, page in zip(c, (EVALUATE, PREDICT, MISCLASSIFIED, MAP)):
        if col.button(f"Open on {page.title}", disabled=not has_model, key=f"cl_open_{page.url_path}", icon=page.icon):
            open_model(entry, page.path)
    c[4].download_button(
        "Export (CSV)", to_csv(rows), "class_board.csv", "text/csv", key="cl_csv", icon=":material/download:"
    )


live_board()
