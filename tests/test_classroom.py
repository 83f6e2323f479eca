"""The class board in the app (AppTest): sharing from Train, the teacher's key, limits, stop, open a model."""

import time

import pytest
from streamlit.testing.v1 import AppTest
from test_app import TIMEOUT, app, goto, text

from app_support import keys
from app_support.classroom import _gate, board
from app_support.nav import CLASS, EVALUATE, TRAIN
from fmnist.room import TEACHER_STOP, RoomLimits

KEY = "chalk-and-talk"


@pytest.fixture
def room(ckpt_dir, monkeypatch):
    """Classroom mode: a teacher's key is set; the board starts empty (it lives as long as the server)."""
    monkeypatch.setenv("FMNIST_TEACHER_KEY", KEY)
    board.clear()
    _gate.clear()
    yield board()
    board.clear()


def _student(nickname: str = "", arch: str = "logreg", epochs: int = 1, start: bool = True) -> AppTest:
    at = goto(app(), TRAIN)
    if nickname:
        at.text_input(key=keys.NICKNAME).set_value(nickname)
    at.selectbox(key="tr_student_arch").set_value(arch)
    at.number_input(key="tr_student_epochs").set_value(epochs)
    at.number_input(key="tr_student_subset").set_value(600)
    if start:
        at.button(key="tr_start").click().run()
    return at


def _teacher(key: str = KEY) -> AppTest:
    at = goto(app(), CLASS)
    at.text_input(key="cl_key").set_value(key)
    return at.button[0].click().run()  # the form's submit button


def test_without_a_key_there_is_no_board_and_sharing_is_off(ckpt_dir, monkeypatch):
    monkeypatch.delenv("FMNIST_TEACHER_KEY", raising=False)
    at = goto(app(), TRAIN)
    assert not at.exception
    assert at.toggle(key=keys.SHARE).value is False and at.toggle(key=keys.SHARE).disabled
    assert at.text_input(key=keys.NICKNAME).disabled
    assert "Class board" not in [link.label for link in at.sidebar.get("page_link")]


def test_the_board_is_refused_without_the_right_key(room):
    at = goto(app(), CLASS)
    assert not at.exception and "Give the teacher's key" in text(at) and not at.dataframe
    at = _teacher("wrong-key")
    assert [e.value for e in at.error] == ["Wrong key."] and not at.dataframe
    assert "Class board" in [link.label for link in at.sidebar.get("page_link")]
    for _ in range(2):
        at.text_input(key="cl_key").set_value("still-wrong")
        at.button[0].click().run()
    assert "try again in 1 s" in at.error[0].value
    at.text_input(key="cl_key").set_value(KEY)
    at.button[0].click().run()  # right, but within the wait: still refused
    assert "Too many wrong keys" in at.error[0].value and not at.dataframe
    ok = _teacher()
    assert not ok.exception and not ok.error and "No shared runs yet" in text(ok)
    goto(ok, TRAIN)
    goto(ok, CLASS)
    assert "No shared runs yet" in text(ok)  # asked once per browser session


def test_a_shared_run_appears_under_its_nickname_and_an_unshared_one_never(room):
    ada = _student("Ada")
    assert ada.toggle(key=keys.SHARE).value is True  # on by default in classroom mode
    assert "Your run is on the class board as **Ada**." in text(ada.run())
    bob = _student("Bob", start=False)
    bob.toggle(key=keys.SHARE).set_value(False)
    bob.button(key="tr_start").click().run()
    for at in (ada, bob):
        assert at.session_state[keys.RUN].wait(TIMEOUT)
    teacher = _teacher()
    table = teacher.dataframe[0].value
    assert list(table["Nickname"]) == ["Ada"] and list(table["State"]) == ["finished"]
    assert table["Settings changed"][0] == "arch=logreg, epochs=1, subset=600"
    teacher.run()  # the test accuracy is measured after the draw that listed the run ended
    leaders = teacher.dataframe[1].value
    assert list(leaders["Nickname"]) == ["Ada"] and 30 < float(leaders["Test acc"][0].rstrip("%")) < 100
    ada.toggle(key=keys.SHARE).set_value(False).run()  # the student changes her mind
    assert "No shared runs yet" in text(teacher.run())


def test_the_rooms_limits_are_shown_on_train_and_enforced(room):
    room.limits = RoomLimits(archs=("logreg", "quickcnn"), max_epochs=2)
    at = _student("Cy", epochs=3)
    assert not at.exception and "at most 2 epochs" in text(at)
    assert any("Not allowed in this room: 3 epochs is over this room's limit of 2" in e.value for e in at.error)
    assert keys.RUN not in at.session_state and not room.rows()
    assert at.selectbox(key="tr_student_arch").options == ["logreg", "quickcnn"]
    at.number_input(key="tr_student_epochs").set_value(2)
    at.button(key="tr_start").click().run()
    assert at.session_state[keys.RUN].config.epochs == 2 and len(room.rows()) == 1


def test_the_teacher_sets_limits_stops_a_run_and_opens_a_model(room):
    teacher = _teacher()
    teacher.multiselect(key="cl_presets").set_value(["student"])
    teacher.button[0].click().run()  # the limits form
    assert room.limits.presets == ("student",) and "Applied: presets student" in text(teacher)

    done = _student("Dee")
    assert done.session_state[keys.RUN].wait(TIMEOUT)
    long = _student("Eve", arch="mlp", epochs=200, start=False)
    long.number_input(key="tr_student_subset").set_value(5000)
    long.button(key="tr_start").click().run()
    job = long.session_state[keys.RUN]
    t0 = time.monotonic()
    while not job.snapshot().batches:  # training, not queued
        assert time.monotonic() - t0 < TIMEOUT
        time.sleep(0.05)
    teacher.run()
    assert list(teacher.dataframe[0].value["Nickname"]) == ["Dee", "Eve"]
    teacher.selectbox(key="cl_pick").set_value(job.id).run()
    teacher.button(key="cl_stop").click().run()
    assert job.wait(60) and job.done.status == "stopped"
    long.run()
    assert TEACHER_STOP in [w.value for w in long.warning]  # the student is told who stopped it

    teacher.run()
    assert teacher.get("download_button")  # the CSV export
    teacher.selectbox(key="cl_pick").set_value(done.session_state[keys.RUN].id).run()
    teacher.button(key=f"cl_open_{EVALUATE.url_path}").click().run()
    assert not teacher.exception
    assert teacher.sidebar.selectbox[0].value.name.startswith("class ")  # the student's model, selected
    assert "Dee" in teacher.sidebar.selectbox[0].value.name
