"""The class board as the app serves it: the server's one Board, the teacher's key, sharing a run.

The board (fmnist.room) exists when FMNIST_TEACHER_KEY is set. Students share their runs from
Train (on by default then); the Class page is the teacher's, behind the key, asked once per browser
session. The board lives in this server process: a restart clears it.
"""

from __future__ import annotations

import time
import uuid

import streamlit as st

from app_support import keys
from app_support.state import ModelRef, dataset, select_model, session_models, settings
from fmnist.artifacts import build_card
from fmnist.checkpoints import Checkpoint
from fmnist.evaluate import evaluate_test
from fmnist.jobs import Job
from fmnist.room import Board, Entry, RoomLimits, TeacherGate, clean_nickname


@st.cache_resource(show_spinner=False)
def board() -> Board:
    """The server's one board: every session shares it; a restart clears it."""
    return Board()


@st.cache_resource(show_spinner=False)
def _gate(key: str | None) -> TeacherGate:
    return TeacherGate(key)


def board_open() -> bool:
    """This server has a class board (FMNIST_TEACHER_KEY is set): classroom mode."""
    return settings().teacher_key is not None


def is_teacher() -> bool:
    """This browser session gave the teacher's key (the current one)."""
    key = settings().teacher_key
    return key is not None and st.session_state.get(keys.TEACHER) == key


def _client() -> str:
    """Who is trying keys: the browser's address (a new tab does not reset its wrong tries), else the session."""
    address = st.context.ip_address
    if isinstance(address, str) and address:
        return address
    return st.session_state.setdefault(keys.KEY_CLIENT, f"session {uuid.uuid4().hex}")


def teacher_login() -> None:
    """The key form; a right key opens the board for this browser session."""
    with st.form("cl_login"):
        given = st.text_input("Teacher's key", type="password", key="cl_key")
        if st.form_submit_button("Open the class board", icon=":material/lock_open:"):
            ok, message = _gate(settings().teacher_key).try_key(_client(), given)
            if ok:
                st.session_state[keys.TEACHER] = settings().teacher_key
                st.rerun()
            st.error(message)


def limits() -> RoomLimits:
    return board().limits


def share_controls(run: Job | None) -> tuple[str, bool]:
    """Train's nickname field and "Share with the class" toggle; a live run follows the toggle."""
    room = board_open()
    c1, c2 = st.columns([2, 3])
    nickname = c1.text_input(
        "Nickname (optional)",
        key=keys.NICKNAME,
        max_chars=24,
        disabled=not room,
        help="How the class board names your run; kept for this browser session only, no account.",
    )
    with c2:
        st.write("")  # aligns the toggle with the text field
        share = st.toggle(
            "Share with the class",
            value=room,
            key=keys.SHARE,
            disabled=not room,
            help="Your teacher sees your run's curves, settings and accuracy on the class board, under your "
            "nickname, and can open your model."
            if room
            else "This server has no class board (its FMNIST_TEACHER_KEY is not set).",
        )
    share = room and share
    if run is not None:
        follow_share(run, nickname, share)
        if share:
            st.caption(f":material/groups: Your run is on the class board as **{board().entry(run.id).name}**.")
    return nickname, share


def follow_share(run: Job, nickname: str, share: bool) -> None:
    """Put the run on the board or take it off, as the student chose."""
    b = board()
    if share:
        b.share(run, nickname, st.session_state.get(keys.RUN_PRESET, "custom"))
    elif b.shared(run):
        b.unshare(run)


def measure(limit: int = 2) -> int:
    """The test accuracy of runs that ended since the last look (a couple per refresh, so a draw stays quick)."""
    return board().measure(lambda model: evaluate_test(model, data=dataset()).accuracy, limit=limit)


def open_model(entry: Entry, page_path: str) -> None:
    """Put a student's model into this (the teacher's) session's picker, select it, and go to `page_path`."""
    result = entry.job.result
    label = f"class {entry.job.id}: {clean_nickname(entry.name)}"
    session_models()[label] = Checkpoint(result.model, {**build_card(result), "name": label})
    select_model(ModelRef.session(label))
    st.switch_page(page_path)


def started_text() -> str:
    return time.strftime("%H:%M", time.localtime(board().started))
