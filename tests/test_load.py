"""A class on one server: 8 real browser tabs press Start at once while a teacher tab works.

Bounded and on loopback: the runs are small (1 epoch, 600 images), so the queue drains in about
a minute. Set FMNIST_LOAD_REPORT=path to write the measured figures as JSON (docs/RELIABILITY.md).
"""

import json
import os
import re
import statistics
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import private_checkpoints
from scripts.browser import CHROMIUM, choose, launch, serve_app, training_workers, wait_idle

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="chromium not installed (make test installs it)"
)
STUDENTS = 8
# The students' tabs stand for 8 laptops, not for load on the server's machine: their browser runs at a
# lower priority, so that drawing them does not take the 2 cores the teacher's pages are timed on (run as
# root, Chromium had raised its browser and GPU processes above the server, to nice -8). In one browser,
# the teacher's Predict page took 5.4-7.0 s in 4 of 11 runs, 3 of them past 3x its idle 2.0 s (one in CI;
# 2026-12-06, 2-core AMD EPYC); with the students' browser at nice 10, 2.1-3.4 s in 6 of 6.
STUDENT_NICE = 10
# What a student sees once the server has taken the run: a queue position, or the run's progress.
TAKEN = re.compile("Position|: starting the worker|: epoch|Finished")


def _open_teacher_page(page, url: str, path: str) -> float:
    """Seconds until the page's main content is drawn and the script has finished."""
    t0 = time.perf_counter()
    page.goto(f"{url}/{path}")
    if path == "evaluate":
        page.locator("[data-testid=stPlotlyChart] .nsewdrag").first.wait_for(timeout=120_000)
    else:
        page.get_by_text("Brush width").wait_for(timeout=120_000)
        page.locator("[data-testid=stBidiComponentIsolated]").first.wait_for(timeout=120_000)
    wait_idle(page, timeout=120)
    return time.perf_counter() - t0 - 1.0  # wait_idle's settling second is not page time


def _teacher_times(page, url: str) -> dict[str, float]:
    return {path: _open_teacher_page(page, url, path) for path in ("evaluate", "predict")}


def _set_numbers(tab, values: dict[str, str]) -> None:
    """Type into the Train form's number fields, one rerun each."""
    for label, value in values.items():
        field = tab.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Enter")
        wait_idle(tab)


def test_a_class_of_eight_and_a_teacher(tmp_path):
    env = {"FMNIST_CHECKPOINT_DIR": str(private_checkpoints(tmp_path / "ck")), "FMNIST_MAX_TRAININGS": "1"}

    with serve_app(env) as (url, server), sync_playwright() as p:
        browser = launch(p)
        teacher = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        _teacher_times(teacher, url)  # warm the caches (dataset, model, evaluation)
        idle = [_teacher_times(teacher, url) for _ in range(2)]

        laptops = launch(p, nice=STUDENT_NICE)
        tabs = []
        for _ in range(STUDENTS):  # each tab is its own browser session, as on 8 laptops
            tab = laptops.new_context(viewport={"width": 1300, "height": 1000}).new_page()
            tab.goto(f"{url}/train")
            tab.get_by_role("button", name="Start training").wait_for(timeout=120_000)
            _set_numbers(tab, {"Epochs": "1", "Training images (0 = all)": "600"})
            tabs.append(tab)

        clicked, taken = [], []
        for tab in tabs:  # all press Start within a few seconds
            tab.get_by_role("button", name="Start training").click()
            clicked.append(time.perf_counter())
        for tab, t_click in zip(tabs, clicked):
            expect(tab.get_by_text(TAKEN).first).to_be_visible(timeout=60_000)
            taken.append(time.perf_counter() - t_click)

        loaded = _teacher_times(teacher, url)  # while the queue is full

        waits = []
        for i, (tab, t_click) in enumerate(zip(tabs, clicked)):  # every run starts and finishes, in order
            try:
                expect(tab.locator("[data-testid=stAlert]").filter(has_text="Finished 1 epochs")).to_be_visible(
                    timeout=60_000
                )
            except AssertionError:
                (tmp_path / f"student{i}.txt").write_text(tab.locator("[data-testid=stApp]").inner_text())
                raise
            waits.append(time.perf_counter() - t_click)
        errors = sum(t.locator("[data-testid=stException]").count() for t in [*tabs, teacher])
        time.sleep(1.0)  # the last worker is reaped within the pump's next tick
        workers = training_workers(server.pid)
        laptops.close()
        browser.close()

    figures = {
        "students": STUDENTS,
        "cores": os.cpu_count(),
        "max_trainings": 1,
        "taken_s": {"max": max(taken), "p50": statistics.median(taken)},
        "idle_s": {k: statistics.median(t[k] for t in idle) for k in ("evaluate", "predict")},
        "loaded_s": loaded,
        "finished_after_s": {"p50": statistics.median(waits), "max": max(waits)},
        "errors": errors,
        "workers_left": len(workers),
    }
    if os.environ.get("FMNIST_LOAD_REPORT"):
        with open(os.environ["FMNIST_LOAD_REPORT"], "w") as f:
            json.dump(figures, f, indent=1)
    print(json.dumps(figures), [round(t, 1) for t in taken], [round(t, 1) for t in waits])
    assert errors == 0
    assert max(taken) <= 10  # every tab saw its queue position or its progress within 10 s
    for k in ("evaluate", "predict"):  # the teacher's pages stay usable: at most 3x their idle time
        assert loaded[k] <= 3 * max(figures["idle_s"][k], 1.0), figures
    assert workers == [], figures  # no worker process outlives its run


def test_closing_a_tab_cancels_its_run_after_the_grace_period(tmp_path):
    """Streamlit releases a closed tab's session; its run stops and its worker process exits."""
    env = {"FMNIST_CHECKPOINT_DIR": str(private_checkpoints(tmp_path / "ck")), "FMNIST_ORPHAN_GRACE_S": "2"}

    with serve_app(env) as (url, server), sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        tab = context.new_page()
        tab.goto(f"{url}/train")
        _set_numbers(tab, {"Epochs": "200"})  # far longer than the test
        tab.get_by_role("button", name="Start training").click()
        expect(tab.get_by_text(TAKEN).first).to_be_visible(timeout=30_000)
        t0 = time.monotonic()
        while not training_workers(server.pid):
            assert time.monotonic() - t0 < 30, "the run never started"
            time.sleep(0.2)
        context.close()  # the student closes the tab
        t_closed = time.monotonic()
        while training_workers(server.pid):
            assert time.monotonic() - t_closed < 30, "the closed tab's run is still training"
            time.sleep(0.2)
        gone_after = time.monotonic() - t_closed
        browser.close()
    assert gone_after >= 1.5  # not before the grace period: a dropped connection may come back


def _metric(page, label: str) -> int:
    """The value of the board's metric `label`, 0 while it is not drawn."""
    box = page.locator("[data-testid=stMetric]").filter(has_text=label)
    return int(box.locator("[data-testid=stMetricValue]").inner_text()) if box.count() else 0


def test_the_class_board_follows_eight_students_and_stops_one(tmp_path):
    """8 students share their runs, a 9th does not; the teacher's board follows them live and stops one."""
    from fmnist.room import TEACHER_STOP

    shots = os.environ.get("FMNIST_BOARD_SHOTS") or str(tmp_path)
    env = {
        "FMNIST_CHECKPOINT_DIR": str(private_checkpoints(tmp_path / "ck")),
        "FMNIST_MAX_TRAININGS": "1",
        "FMNIST_TEACHER_KEY": "chalk-and-talk",
    }
    with serve_app(env) as (url, _), sync_playwright() as p:
        browser, laptops = launch(p), launch(p, nice=STUDENT_NICE)  # the projector is a laptop too
        new_tab = lambda: laptops.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        probe = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        _open_teacher_page(probe, url, "evaluate")  # a student's other page, timed idle and while the board refreshes
        idle = statistics.median(_open_teacher_page(probe, url, "evaluate") for _ in range(2))

        teacher = laptops.new_context(viewport={"width": 1400, "height": 2100}).new_page()  # the projector
        teacher.goto(f"{url}/class")
        teacher.get_by_role("textbox", name="Teacher's key").fill("chalk-and-talk")
        teacher.get_by_role("button", name="Open the class board").click()
        teacher.get_by_text("No shared runs yet").wait_for(timeout=60_000)

        tabs = []
        for i in range(STUDENTS + 1):  # the last one keeps its run to itself
            tab = new_tab()
            tab.goto(f"{url}/train")
            tab.get_by_role("button", name="Start training").wait_for(timeout=120_000)
            name = "Hidden" if i == STUDENTS else f"Student {i + 1}"
            field = tab.get_by_role("textbox", name="Nickname (optional)")
            field.fill(name)
            field.press("Enter")
            wait_idle(tab)
            if i == STUDENTS:
                tab.get_by_text("Share with the class").click()
                wait_idle(tab)
            images = str(600 + 300 * i)  # a class tries different amounts of data
            _set_numbers(tab, {"Epochs": "200" if i == 0 else "2", "Training images (0 = all)": images})
            tabs.append(tab)
        for tab in tabs:
            tab.get_by_role("button", name="Start training").click()

        seen: list[tuple[int, int, int, int]] = []
        t0 = time.monotonic()
        while _metric(teacher, "Shared runs") < STUDENTS or _metric(teacher, "Training") == 0:
            assert time.monotonic() - t0 < 120, "the board never showed the class training"
            time.sleep(0.5)
        loaded = _open_teacher_page(probe, url, "evaluate")  # the board refreshing, the queue full
        teacher.screenshot(path=f"{shots}/class-board-queue.png", full_page=True)

        # the runaway may have reached the queue behind others: stop it once it trains, as the test means to
        expect(tabs[0].get_by_text(re.compile(r": epoch \d+/200"))).to_be_visible(timeout=180_000)
        choose(teacher, "Run", "Student 1")
        wait_idle(teacher)
        teacher.get_by_role("button", name="Stop", exact=True).click()
        expect(tabs[0].get_by_text(TEACHER_STOP)).to_be_visible(timeout=60_000)

        board = lambda: tuple(_metric(teacher, k) for k in ("Shared runs", "Queued", "Training", "Finished"))
        while _metric(teacher, "Finished") < STUDENTS:
            assert time.monotonic() - t0 < 300, "the class's runs did not all finish"
            seen.append(board())
            time.sleep(0.5)
        wait_idle(teacher)
        # the board once every run is done: read after the loop, since the last queued runs (a few seconds each)
        # can start and finish between two of its refreshes, so no sample above need show the queue empty
        seen.append(board())
        with teacher.expect_download() as download:
            teacher.get_by_role("button", name="Export (CSV)").click()
        exported = download.value.path().read_text()
        teacher.screenshot(path=f"{shots}/class-board.png", full_page=True)
        teacher.get_by_text("Room limits: what students may train").click()
        epochs = teacher.get_by_role("spinbutton", name="Most epochs per run (0: no limit)")
        epochs.fill("5")
        epochs.press("Tab")
        teacher.get_by_role("button", name="Apply to the room").click()
        try:
            teacher.get_by_text("Applied: at most 5 epochs").wait_for()
        finally:
            teacher.screenshot(path=f"{shots}/class-board-limits.png")
        student = tabs[1]
        student.locator("[data-testid=stSidebar]").get_by_role("link", name="Train").click()
        expect(student.get_by_text("limits for this room: at most 5 epochs")).to_be_visible(timeout=60_000)
        student.screenshot(path=f"{shots}/train-room-limits.png")
        errors = sum(t.locator("[data-testid=stException]").count() for t in [*tabs, teacher, probe])
        laptops.close()
        browser.close()

    rows = exported.strip().splitlines()
    print(json.dumps({"idle_s": idle, "loaded_s": loaded, "states": seen[:: max(1, len(seen) // 12)]}))
    assert errors == 0
    assert len(rows) == 1 + STUDENTS and "Hidden" not in exported  # the unshared run never appears
    assert rows[1].startswith("Student 1,") and ",stopped," in rows[1]
    assert all(",finished," in r for r in rows[2:])
    assert all(s[0] == STUDENTS for s in seen)  # 8 runs, nothing more
    queued = [s[1] for s in seen]
    assert max(queued) >= 3 and [s[3] for s in seen] == sorted(s[3] for s in seen)
    assert seen[-1] == (STUDENTS, 0, 0, STUDENTS)  # drained: nothing queued, nothing training, every run finished
    assert loaded <= 3 * max(idle, 1.0), (idle, loaded)  # the board's refresh leaves the students' pages usable
