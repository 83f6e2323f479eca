"""The class board's core (fmnist.room): limits, sharing, the board's rows, the teacher's actions and key."""

import csv
import io
import math
import re
from types import SimpleNamespace

import pytest

from fmnist.config import TrainConfig, preset_config
from fmnist.jobs import JobManager
from fmnist.room import (
    FREE_TRIES,
    MAX_WAIT_S,
    TEACHER_REMOVE,
    TEACHER_STOP,
    Board,
    LimitError,
    RoomLimits,
    TeacherGate,
    changed_settings,
    clean_nickname,
    clock,
    curve,
    leaderboard,
    state_of,
    table_rows,
    to_csv,
    training_images,
)
from fmnist.train import BatchEvent, DoneEvent, EpochEvent

TINY = dict(arch="logreg", epochs=1, subset=300, precision="fp32", log_every=1)
LONG = dict(arch="mlp", epochs=200, subset=2000, precision="fp32", log_every=1)


@pytest.fixture
def manager():
    m = JobManager(max_running=1, threads=1, heartbeat_s=None)
    yield m
    m.shutdown()


def _wait_for(cond, timeout=60.0):
    import time

    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------- limits


def test_training_images_are_the_subset_or_the_split_training_set():
    assert training_images(TrainConfig(subset=5000)) == 5000
    assert training_images(TrainConfig(val_fraction=0.1)) == 54_000
    assert training_images(TrainConfig(val_fraction=0.2)) == 48_000


def test_limits_allow_everything_until_set_and_name_the_limit_broken():
    RoomLimits().check(preset_config("best"), "best")  # no limits: anything goes
    assert RoomLimits().describe() == ""
    room = RoomLimits(presets=("student", "quick"), archs=("quickcnn", "mlp"), max_epochs=5, max_images=10_000)
    room.check(preset_config("student", epochs=5), "student")  # at the limits: allowed
    with pytest.raises(LimitError, match="preset 'best' is not allowed.*student, quick"):
        room.check(preset_config("best"), "best")
    with pytest.raises(LimitError, match="architecture 'cnn2' is not allowed"):
        room.check(preset_config("student", arch="cnn2", model_kwargs={}), "student")
    with pytest.raises(LimitError, match="6 epochs is over this room's limit of 5"):
        room.check(preset_config("student", epochs=6), "student")
    with pytest.raises(LimitError, match="10,001 training images is over this room's limit of 10,000"):
        room.check(preset_config("student", epochs=5, subset=10_001), "student")
    with pytest.raises(LimitError, match="54,000 training images"):  # no subset: the whole split counts
        RoomLimits(max_images=10_000).check(preset_config("quick", subset=None), "quick")
    assert room.describe() == (
        "presets student, quick; architectures quickcnn, mlp; at most 5 epochs; at most 10,000 training images"
    )
    assert RoomLimits(max_epochs=3).describe() == "at most 3 epochs"
    assert isinstance(LimitError("x"), ValueError)  # the Train page's and the CLI's one-line errors


# ---------------------------------------------------------------- sharing and rows


def test_nicknames_are_one_printable_line_of_24_characters_at_most():
    assert clean_nickname("  Ada \n Lovelace\x00 ") == "Ada Lovelace"
    assert clean_nickname("x" * 40) == "x" * 24
    assert clean_nickname(None) == "" and clean_nickname("\t") == ""


def test_changed_settings_are_the_options_that_differ_from_the_preset():
    assert changed_settings(preset_config("student"), "student") == {}
    cfg = preset_config("student", lr=0.01, epochs=3, flip=True, arch="mlp", model_kwargs={})
    assert changed_settings(cfg, "student") == {"arch": "mlp", "lr": 0.01, "epochs": 3, "flip": True}
    assert "log_every" not in changed_settings(preset_config("student", log_every=5), "student")  # not an option


def _snap(state, **kw):
    base = dict(state=state, batches=[], epochs=[], done=None, error=None, position=None, starts_in=None)
    return SimpleNamespace(**{"pending": False, "stopped_by": None, **base, **kw})


def _batch(epoch, eta):
    return BatchEvent(epoch, 3, 10, 0.5, 0.8, 0.001, 100.0, 5.0, eta, 0.3)


def test_each_state_in_the_boards_words():
    assert state_of(_snap("queued", position=3, starts_in=40.0), 5) == ("queued", "position 3", 40.0)
    assert state_of(_snap("running", pending=True), 5) == ("pending", "waiting for a computer of the lab", None)
    assert state_of(_snap("running"), 5) == ("starting", "starting its worker", None)
    three = [_batch(1, 9.0), _batch(2, 6.0), _batch(3, 4.0)]  # the last batch counts
    assert state_of(_snap("running", batches=three), 5) == ("training", "epoch 3/5", 4.0)
    result = SimpleNamespace(best_epoch=3)
    for status, word in [("finished", "finished"), ("early_stopped", "early stopped"), ("stopped", "stopped")]:
        done = DoneEvent(status, f"{status}!", result)
        assert state_of(_snap("finished", done=done), 5) == (word, "best epoch 3", None)
    diverged = DoneEvent("diverged", "The loss became NaN at epoch 2.", result)
    assert state_of(_snap("finished", done=diverged), 5) == ("diverged", "The loss became NaN at epoch 2.", None)
    assert state_of(_snap("finished", done=DoneEvent("finished", "ok", None)), 5) == ("finished", "ok", None)
    by_teacher = _snap("finished", done=DoneEvent("stopped", "Stopped by request.", result), stopped_by="x")
    assert state_of(by_teacher, 5) == ("stopped", "by the teacher", None)
    assert state_of(_snap("failed", error="out of memory"), 5) == ("failed", "out of memory", None)
    assert state_of(_snap("cancelled"), 5) == ("cancelled", "", None)


def test_a_shared_run_is_on_the_board_and_an_unshared_one_is_not(manager):
    board = Board()
    a = manager.submit(TrainConfig(**LONG), owner="a", label="a")
    b = manager.submit(TrainConfig(**TINY), owner="b", label="b")
    manager.submit(TrainConfig(**TINY), owner="c", label="c")  # never shared
    board.share(a, "Ada", "mlp")
    board.share(b, "", "logreg")
    assert [e.job for e in board.entries()] == [a, b] and board.shared(a)
    assert board.share(a, "Ada L.", "mlp") is board.entry(a.id) and board.entry(a.id).nickname == "Ada L."
    _wait_for(lambda: a.snapshot().batches)
    rows = {r.id: r for r in board.rows()}
    assert rows.keys() == {a.id, b.id}
    assert (rows[a.id].nickname, rows[a.id].state) == ("Ada L.", "training")
    assert re.fullmatch(r"epoch \d+/200", rows[a.id].detail)  # an idle machine may be past epoch 1 already
    assert rows[a.id].eta_s > 0 and rows[a.id].live and 0 < rows[a.id].elapsed_s < 120  # since it started
    assert rows[a.id].changes == changed_settings(a.config, "mlp") and rows[a.id].changes["epochs"] == 200
    assert (rows[b.id].nickname, rows[b.id].state, rows[b.id].detail) == (f"anonymous {b.id}", "queued", "position 1")
    board.unshare(b)
    assert [r.id for r in board.rows()] == [a.id] and not board.shared(b)
    board.unshare(b)  # twice is harmless


def test_the_teacher_stops_a_run_and_clears_the_queue_and_the_students_are_told(manager):
    board = Board()
    running = manager.submit(TrainConfig(**LONG), owner="a")
    queued = [manager.submit(TrainConfig(**TINY), owner=o) for o in "bcd"]
    unshared = manager.submit(TrainConfig(**TINY), owner="e")
    for job, name in zip([running, *queued], "ABCD"):
        board.share(job, name, "student")
    _wait_for(lambda: running.snapshot().batches)
    assert board.stop(queued[0].id)
    assert queued[0].state == "cancelled" and queued[0].snapshot().stopped_by == TEACHER_REMOVE
    assert board.clear_queue() == 2 and all(j.state == "cancelled" for j in queued)
    assert unshared.state == "queued" and unshared.snapshot().stopped_by is None  # not on the board: untouched
    assert board.stop(running.id)
    assert running.wait(30) and running.done.status == "stopped" and running.result.model is not None
    assert running.snapshot().stopped_by == TEACHER_STOP
    assert not board.stop(running.id) and not board.stop(12345)  # ended, or not on the board
    assert board.clear_queue() == 0
    assert {r.state for r in board.rows()} == {"stopped", "cancelled"}


def test_a_student_who_stops_first_is_not_told_the_teacher_did(manager):
    job = manager.submit(TrainConfig(**LONG), owner="a")
    _wait_for(lambda: job.snapshot().batches)
    job.stop()
    job.stop(TEACHER_STOP)
    assert job.wait(30) and job.snapshot().stopped_by is None


def test_finished_runs_get_their_test_accuracy_once_a_few_at_a_time(manager):
    board = Board()
    jobs = [manager.submit(TrainConfig(**TINY, seed=i), owner=str(i)) for i in range(3)]
    for j in jobs:
        board.share(j, f"s{j.id}", "logreg")
    calls = []
    assert board.measure(calls.append) == 0  # nothing has ended with a model yet
    assert all(j.wait(60) for j in jobs)
    assert board.measure(lambda m: calls.append(m) or 0.5, limit=2) == 2
    assert board.measure(lambda m: calls.append(m) or 0.7) == 1
    assert board.measure(lambda m: calls.append(m) or 0.9) == 0  # each run measured once
    assert [e.test_acc for e in board.entries()] == [0.5, 0.5, 0.7] and len(calls) == 3
    rows = board.rows()
    assert [r.test_acc for r in leaderboard(rows)] == [0.7, 0.5, 0.5]
    assert all(r.val_acc == j.result.val_acc for r, j in zip(rows, jobs))


def test_the_board_keeps_its_newest_runs_and_live_ones_over_ended(manager):
    board = Board(max_entries=2)
    live = manager.submit(TrainConfig(**LONG), owner="live")
    board.share(live, "live", "mlp")
    ended = [manager.submit(TrainConfig(**TINY), owner=str(i)) for i in range(2)]
    for job in ended:
        job.stop()  # leaves the queue: ended
        board.share(job, str(job.id), "logreg")
    assert [e.job for e in board.entries()] == [live, ended[1]]  # the oldest ended run went, not the live one


def test_curves_are_thinned_with_the_last_point_kept():
    def job(n):
        eps = [EpochEvent(i, n, 1, 0.5, 1, i / n, 0.1, 100, i, 0, False) for i in range(1, n + 1)]
        return SimpleNamespace(snapshot=lambda: SimpleNamespace(epochs=eps))

    assert curve(job(5)) == ([1, 2, 3, 4, 5], [0.2, 0.4, 0.6, 0.8, 1.0])
    for n in (201, 400, 401, 1000):
        epochs, vals = curve(job(n))
        assert len(epochs) <= 200 and epochs[0] == 1 and epochs[-1] == n and vals[-1] == 1.0
        assert epochs == sorted(set(epochs))
    assert len(curve(job(399))[0]) == 200 and len(curve(job(400))[0]) == 134  # every 2nd, every 3rd
    nan = EpochEvent(1, 1, 1, 0.5, math.nan, math.nan, 0.1, 100, 1, 0, False)
    assert curve(SimpleNamespace(snapshot=lambda: SimpleNamespace(epochs=[nan]))) == ([], [])


def test_the_csv_has_a_row_per_run_and_no_formulas():
    from fmnist.room import Row

    rows = [
        Row(1, "=HYPERLINK(1)", "student", "quickcnn", "finished", "done", 65.4, None, 0.9, 0.8812, {"lr": 0.01}),
        Row(2, "Bo", "quick", "quickcnn", "queued", "position 1", 3.0, 12.0, None, None, {}),
        Row(3, "\tTab", "quick", "quickcnn", "queued", "position 2", 3.0, 12.0, None, None, {}),
    ]
    got = list(csv.reader(io.StringIO(to_csv(rows))))
    assert got[0][:4] == ["nickname", "preset", "arch", "state"] and len(got) == 4 and got[3][0] == "'\tTab"
    assert got[1] == [
        "'=HYPERLINK(1)",
        "student",
        "quickcnn",
        "finished",
        "done",
        "65.4",
        "",
        "0.9",
        "0.8812",
        "lr=0.01",
    ]
    assert got[2][5:] == ["3.0", "12.0", "", "", "as the preset"]
    shown = table_rows(rows)
    assert shown[0]["Time"] == "1:05" and shown[1]["ETA"] == "0:12" and shown[0]["ETA"] == ""
    assert (shown[0]["Val acc"], shown[0]["Test acc"], shown[1]["Test acc"]) == ("90.00%", "88.12%", "")
    assert shown[0]["Model"] == "student · quickcnn" and shown[1]["Settings changed"] == "as the preset"
    assert clock(None) == "" and clock(-3) == "0:00" and clock(3599.6) == "60:00"


# ---------------------------------------------------------------- the teacher's key


def test_the_key_opens_the_board_and_wrong_keys_wait_longer_and_longer():
    now = [100.0]
    gate = TeacherGate("s3cret-key", clock=lambda: now[0])
    assert gate.try_key("a", " s3cret-key ") == (True, "Welcome to the class board.")
    for _ in range(FREE_TRIES - 1):
        assert gate.try_key("a", "guess") == (False, "Wrong key.")
    ok, msg = gate.try_key("a", "guess")  # the FREE_TRIES-th wrong key: a wait of 1 s starts
    assert not ok and msg.endswith("try again in 1 s.") and gate.wait_s("a") == 1.0
    assert gate.try_key("a", "s3cret-key") == (False, "Too many wrong keys: try again in 1 s.")  # even the right one
    assert gate.wait_s("b") == 0 and gate.try_key("b", "s3cret-key")[0]  # another client is not held up
    now[0] += 1.0
    assert gate.try_key("a", "guess")[1].endswith("try again in 2 s.")  # doubling
    for _ in range(10):
        now[0] += MAX_WAIT_S
        gate.try_key("a", "guess")
    assert gate.wait_s("a") == MAX_WAIT_S  # capped
    now[0] += MAX_WAIT_S
    assert gate.try_key("a", "s3cret-key")[0]  # the right key, once the wait is over, resets the count
    assert gate.try_key("a", "guess") == (False, "Wrong key.")
    assert TeacherGate(None).try_key("a", "") == (
        False,
        "This server has no class board: FMNIST_TEACHER_KEY is not set.",
    )


def test_curves_are_coloured_by_preset_then_architecture_then_run():
    from fmnist.room import Row, colour_group

    def row(nick, preset, arch):
        return Row(0, nick, preset, arch, "training", "", 0.0, None, None, None, {})

    a, b, c = row("Ada", "student", "quickcnn"), row("Bo", "student", "mlp"), row("Cy", "quick", "quickcnn")
    assert [colour_group(r, [a, b, c]) for r in (a, b, c)] == ["student", "student", "quick"]
    assert [colour_group(r, [a, b]) for r in (a, b)] == ["quickcnn", "mlp"]
    assert [colour_group(r, [a, row("Di", "student", "quickcnn")]) for r in (a,)] == ["Ada"]
