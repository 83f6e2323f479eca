"""The job manager: worker processes, a server-wide limit, a FIFO queue, stop, orphans."""

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
import torch

from conftest import ROOT
from fmnist import jobs
from fmnist.config import TrainConfig
from fmnist.data import split_indices
from fmnist.jobs import JobManager, default_max_running, format_wait, threads_per_run
from fmnist.runtime import predict_logits

TINY = dict(arch="logreg", epochs=1, subset=300, precision="fp32", log_every=1)
LONG = dict(arch="mlp", epochs=200, subset=2000, precision="fp32", log_every=1)


@pytest.fixture
def manager():
    m = JobManager(max_running=1, threads=1, orphan_grace_s=0.5, heartbeat_s=None)
    yield m
    m.shutdown()
    assert m.status()["workers_alive"] == 0


def _wait_for(cond, timeout=60.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie awaiting its parent counts as gone
        return f.read().split()[2] == "Z"


def test_run_in_a_worker_returns_a_working_model(manager, ds):
    cfg = TrainConfig(**TINY)
    job = manager.submit(cfg, owner="a", label="tiny")
    assert job.wait(60) and job.state == "finished"
    snap = job.snapshot()
    assert snap.batches and [e.epoch for e in snap.epochs] == [1] and snap.done.status == "finished"
    # the weights came back from the worker: the model scores what the worker measured
    _, val_idx = split_indices(cfg, ds.train_labels)
    logits = predict_logits(job.result.model, ds.train_images[val_idx])
    acc = (logits.argmax(1) == ds.train_labels[val_idx]).float().mean().item()
    assert acc == pytest.approx(job.result.val_acc) and acc > 0.2  # chance is 0.1


def test_limit_and_fifo_queue(manager):
    a = manager.submit(TrainConfig(**LONG), owner="a")
    b = manager.submit(TrainConfig(**TINY), owner="b")
    c = manager.submit(TrainConfig(**TINY), owner="c")
    _wait_for(lambda: a.snapshot().batches)
    assert a.state == "running" and (b.state, c.state) == ("queued", "queued")
    assert (b.snapshot().position, c.snapshot().position) == (1, 2)
    assert 0 < b.snapshot().starts_in <= c.snapshot().starts_in
    assert b.snapshot().run_s > 0 and a.snapshot().run_s is None  # a queued run's own expected length
    assert manager.status() | {"workers_alive": 1} == manager.status() and manager.status()["running"] == 1
    b.stop()  # leave the queue
    assert b.state == "cancelled" and c.snapshot().position == 1
    a.stop()
    assert a.wait(30) and a.done.status == "stopped" and a.result.model is not None
    assert c.wait(60) and c.state == "finished" and c.started >= a.ended
    # c's pace is measured: another run of its config is expected to take as long as c did
    assert manager.queue.expected_s(c.config) == pytest.approx(c.ended - c.started, abs=0.2)


def test_a_worker_killed_from_outside_fails_its_run_with_the_reason(manager):
    job = manager.submit(TrainConfig(**LONG), owner="a")
    _wait_for(lambda: job.snapshot().batches)
    t0 = time.monotonic()
    assert job.wait(0.3) is False and time.monotonic() - t0 >= 0.3  # still running: wait gives up on time
    job._proc.kill()  # as the system's out-of-memory killer would
    assert job.wait(30) and job.state == "failed" and job.error.startswith("the worker ended (exit code")
    assert manager.status()["running"] == 0 and manager.submit(TrainConfig(**TINY), owner="b").wait(60)  # slot free


def test_stop_ends_the_worker_within_a_batch_and_frees_it(manager):
    job = manager.submit(TrainConfig(**LONG), owner="a")
    _wait_for(lambda: job.snapshot().batches)
    pid = job._proc.pid
    t0 = time.monotonic()
    job.stop()
    assert job.wait(30) and job.done.status == "stopped" and time.monotonic() - t0 < 5
    assert len(job.snapshot().batches) < 200 * 16 and "Stopped by request" in job.done.message
    _wait_for(lambda: _gone(pid), 10)  # the worker process and its memory are gone


def test_one_active_job_per_owner(manager):
    a1 = manager.submit(TrainConfig(**LONG), owner="a")
    assert manager.submit(TrainConfig(**TINY), owner="a") is a1
    assert manager.active_job("a") is a1
    a1.stop()
    assert a1.wait(30) and manager.active_job("a") is None
    a2 = manager.submit(TrainConfig(**TINY), owner="a")
    assert a2 is not a1 and a2.wait(60)


def test_orphaned_jobs_are_cancelled_after_the_grace_period(manager):
    running = manager.submit(TrainConfig(**LONG), owner="gone")
    queued = manager.submit(TrainConfig(**TINY), owner="also-gone")
    kept = manager.submit(TrainConfig(**TINY), owner="back")
    _wait_for(lambda: running.snapshot().batches)
    manager.orphan("gone")
    manager.orphan("also-gone")
    manager.orphan("back")
    manager.touch("back")  # the tab reconnected within the grace period
    assert running.wait(30) and queued.wait(5)
    assert queued.state == "cancelled" and "tab was closed" in queued.error
    assert running.done.status == "stopped" and "tab was closed" in running.error
    assert kept.wait(60) and kept.state == "finished"


def test_silent_owner_is_cancelled_by_the_heartbeat():
    m = JobManager(max_running=1, threads=1, orphan_grace_s=0.0, heartbeat_s=0.5)
    try:
        job = m.submit(TrainConfig(**LONG), owner="a")
        assert job.wait(30), job
        assert job.state in ("cancelled", "finished") and "tab was closed" in job.error, job
        assert job.done is None or job.done.status == "stopped"
    finally:
        m.shutdown()


def test_worker_error_is_reported_not_raised(manager):
    job = manager.submit(TrainConfig(**{**TINY, "device": "cuda" if not torch.cuda.is_available() else "mps"}))
    assert job.wait(60) and job.state == "failed"
    assert job.error.startswith("ConfigError: device") and "requested but" in job.error


def test_threads_and_workers_do_not_grow_run_after_run(manager):
    manager.submit(TrainConfig(**TINY)).wait(60)  # the pump thread and the forkserver exist now
    threads = threading.active_count()
    for _ in range(6):
        assert manager.submit(TrainConfig(**TINY)).wait(60)
    assert threading.active_count() <= threads and manager.status()["workers_alive"] == 0


def test_defaults_follow_the_cores(monkeypatch):
    monkeypatch.delenv("FMNIST_MAX_TRAININGS", raising=False)
    assert default_max_running(2, gpus=0) == 2 and default_max_running(8, gpus=0) == 8  # one run per core
    assert default_max_running(1, gpus=0) == 1
    # with GPUs, several runs share each one, but never more runs than cores
    assert default_max_running(16, gpus=1) == 8 and default_max_running(64, gpus=2) == 16
    assert default_max_running(4, gpus=1) == 4 and default_max_running(1, gpus=1) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert default_max_running(40) == 16  # the GPUs this machine has: 2 x 8 (40 on its cores alone)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_max_running(40) == 40  # no usable CUDA: the cores
    monkeypatch.setenv("FMNIST_MAX_TRAININGS", "3")
    assert default_max_running(2) == 3 and default_max_running(64, gpus=1) == 3
    monkeypatch.setenv("FMNIST_MAX_TRAININGS", "lots")
    with pytest.raises(ValueError, match="FMNIST_MAX_TRAININGS"):
        default_max_running()
    assert threads_per_run(1, 2) == 2 and threads_per_run(2, 8) == 4 and threads_per_run(3, 2) == 1
    assert format_wait(12) == "about 10 s" and format_wait(200) == "about 4 min"


def test_live_curve_points_stay_bounded_and_even():
    """200 epochs at batch 16 send 135k batch events: the snapshot carries at most ~2,000 of them."""
    from fmnist.jobs import MAX_CURVE_POINTS, Thinned

    t = Thinned()
    for i in range(135_000):
        t.append(i)
        if i in (10, 4_000):
            assert t.points()[-1] == i  # the latest is always there: the progress bar is current
    pts = t.points()
    assert MAX_CURVE_POINTS // 2 <= len(pts) <= MAX_CURVE_POINTS + 1
    assert pts[0] == 0 and pts[-1] == 134_999
    gaps = {b - a for a, b in zip(pts[:-2], pts[1:-1])}
    assert gaps == {t.stride}  # evenly spaced


def test_the_same_seed_gives_the_same_curves_in_worker_processes():
    """A lesson link's run is reproducible: workers share no global RNG, and the seed fixes split, init and batches."""
    from fmnist.jobs import JobManager

    m = JobManager(max_running=1, heartbeat_s=None)  # the app's thread count
    try:
        cfg = TrainConfig(
            arch="mlp", epochs=2, subset=1000, seed=7, precision="fp32", augment={"flip": True, "shift": 0.1}
        )
        runs = [m.submit(cfg, label=f"r{i}") for i in range(2)]
        assert all(r.wait(120) for r in runs)
        a, b = ([(e.train_loss, e.val_acc, e.val_loss) for e in r.snapshot().epochs] for r in runs)
        assert len(a) == 2 and a == b
        other = m.submit(TrainConfig(**{**cfg.to_dict(), "seed": 8}), label="r3")
        assert other.wait(120)
        assert [(e.train_loss, e.val_acc) for e in other.snapshot().epochs] != [x[:2] for x in a]
    finally:
        m.shutdown()


def test_the_run_queue_is_fifo_within_its_slots():
    from types import SimpleNamespace

    from fmnist.jobs import RunQueue

    q = RunQueue(max_running=2)
    jobs = [SimpleNamespace(name=n, started=None, batches=SimpleNamespace(latest=None)) for n in "abcd"]
    q.queued.extend(jobs)
    assert [q.position(j) for j in jobs] == [1, 2, 3, 4]
    first = q.next_to_start()
    q.started(first)
    second = q.next_to_start()
    q.started(second)
    assert (first.name, second.name) == ("a", "b") and q.next_to_start() is None  # no third slot
    assert [q.position(j) for j in jobs] == [None, None, 1, 2]  # a started job is not queued
    assert q.live() == [first, second, jobs[2], jobs[3]]
    q.ended(first, finished=False)
    third = q.next_to_start()
    q.started(third)
    assert third.name == "c" and q.next_to_start() is None and q.live() == [second, third, jobs[3]]


def test_the_run_queue_estimates_starts_from_finished_runs(monkeypatch):
    from types import SimpleNamespace

    from fmnist import jobs as jobs_mod
    from fmnist.jobs import DEFAULT_RUN_S, RunQueue

    now = [1000.0]
    monkeypatch.setattr(jobs_mod.time, "monotonic", lambda: now[0])
    cfg = TrainConfig(arch="cnn2", epochs=2, subset=5000)

    def job(started=None, eta=None, c=cfg, result=None, epochs=()):
        latest = SimpleNamespace(eta=eta) if eta is not None else None
        return SimpleNamespace(
            started=started, config=c, batches=SimpleNamespace(latest=latest), result=result, epochs=list(epochs)
        )

    q = RunQueue(max_running=1)
    assert q.starts_in(1) == 0.0  # a free slot
    q.queued.extend([job(), job(), job()])
    assert q.starts_in(3) == 2 * DEFAULT_RUN_S  # nothing measured yet: two assumed runs ahead
    a = job(started=1000.0)
    q.started(a)
    now[0] = 1010.0
    assert q.starts_in(1) == DEFAULT_RUN_S - 10  # the assumed length, 10 s of it done
    a.batches.latest = SimpleNamespace(eta=20.0)  # a's own estimate: 10 s done + 20 s left, a 30 s run
    assert q.starts_in(1) == 20.0 and q.starts_in(2) == 50.0
    now[0] = 1030.0
    q.ended(a, finished=True)  # a 30 s run without a result (no pace): the typical length from now on
    b = job(started=1030.0, eta=12.0)
    q.started(b)
    assert q.starts_in(1) == 12.0 and q.starts_in(2) == 42.0  # b's own estimate, then one typical run
    q.ended(b, finished=False)  # a cancelled run is not a measurement
    c = job(started=1030.0)
    q.started(c)
    now[0] = 1040.0
    assert q.starts_in(1) == 20.0  # typical 30 s, 10 s already done
    now[0] = 1080.0
    assert q.starts_in(1) == 0.0  # running past the typical length: any moment now
    # c ends after 50 s, 40 of them training 2 epochs of 5,000 images: 4 ms an image, 10 s outside training
    c.result = SimpleNamespace(train_time_s=40.0)
    c.epochs = [1, 2]
    q.ended(c, finished=True)
    assert q.expected_s(cfg) == pytest.approx(50.0)
    assert q.expected_s(TrainConfig(arch="cnn2", epochs=3, subset=5000)) == pytest.approx(70.0)  # 3 epochs
    full = TrainConfig(arch="cnn2", epochs=1, val_fraction=0.1)  # 54,000 images
    assert q.expected_s(full) == pytest.approx(10 + 54000 * 0.004)
    assert q.expected_s(TrainConfig(arch="cnn2", epochs=1, time_budget=30)) == pytest.approx(40.0)  # its budget
    assert q.expected_s(TrainConfig(arch="mlp", epochs=9)) == pytest.approx(40.0)  # unmeasured: mean of 30 and 50
    q.queued.clear()
    q.queued.extend([job(c=TrainConfig(arch="cnn2", epochs=3, subset=5000)), job(c=full), job()])
    d = job(started=1080.0, eta=0.4)
    q.started(d)
    assert q.starts_in(1) == pytest.approx(0.4) and q.starts_in(2) == pytest.approx(70.4)
    assert q.starts_in(3) == pytest.approx(70.4 + 10 + 216)  # each job ahead at its own expected length
    q.max_running = 2  # a second slot: the third waits only for the first job ahead
    assert q.starts_in(1) == 0.0 and q.starts_in(2) == pytest.approx(0.4) and q.starts_in(3) == pytest.approx(70.0)


def test_train_images_and_the_queue_line():
    from fmnist.jobs import JobSnapshot, format_queue, train_images

    assert train_images(TrainConfig(val_fraction=0.1)) == 54000
    assert train_images(TrainConfig(val_fraction=0.0)) == 60000
    assert train_images(TrainConfig(subset=5000)) == 5000
    assert train_images(TrainConfig(subset=60000, val_fraction=0.2)) == 48000  # a subset cannot exceed the split
    snap = JobSnapshot("queued", [], [], None, None, position=2, starts_in=40.0, run_s=200.0)
    assert format_queue(snap) == "starts in about 40 s, then takes about 4 min"
    assert format_queue(replace(snap, run_s=None)) == "starts in about 40 s"


def test_one_way_to_build_a_job_manager_local_cluster_or_falling_back(tmp_path):
    from fmnist.ray_backend import make_manager
    from fmnist.settings import Settings

    s = Settings(max_trainings=3, orphan_grace_s=7.0, data_dir=tmp_path)
    m, note = make_manager(s, None)
    try:
        assert note is None and m.backend.name == "local" and m.backend.data_dir == str(tmp_path)
        assert (m.max_running, m.orphan_grace_s, m.heartbeat_s) == (3, 7.0, 180.0)
    finally:
        m.shutdown()
    m, note = make_manager(s, "127.0.0.1:1", fall_back=True, heartbeat_s=None)  # nothing listens there
    try:
        assert m.backend.name == "local" and m.heartbeat_s is None and m.backend.data_dir == str(tmp_path)
        assert note.startswith("cannot reach the Ray cluster at 127.0.0.1:1") and note.endswith(
            "on this server instead."
        )
    finally:
        m.shutdown()
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster"):
        make_manager(s, "127.0.0.1:1")


def test_workers_read_the_data_folder_they_are_given(tmp_path, ds):
    from fmnist.jobs import LocalBackend

    cfg = TrainConfig(arch="logreg", epochs=1, subset=500, precision="fp32")
    empty = JobManager(max_running=1, threads=1, heartbeat_s=None, backend=LocalBackend(tmp_path))
    there = JobManager(max_running=1, threads=1, heartbeat_s=None, backend=LocalBackend(ds.root))
    try:
        bad, good = empty.submit(cfg), there.submit(cfg)
        assert bad.wait(60) and good.wait(120)
        assert bad.state == "failed" and bad.error.startswith(f"Fashion-MNIST files missing in {tmp_path}")
        assert good.state == "finished" and good.result.data_checksum == ds.checksum
    finally:
        empty.shutdown()
        there.shutdown()


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "about 5 s"),
        (2, "about 5 s"),
        (30, "about 30 s"),
        (89, "about 90 s"),
        (90, "about 2 min"),
        (181, "about 4 min"),
        (3600, "about 60 min"),
    ],
)
def test_format_wait_rounds_to_5_s_then_whole_minutes(seconds, text):
    assert format_wait(seconds) == text


def test_a_local_worker_is_alive_only_while_its_process_runs():
    import multiprocessing
    from types import SimpleNamespace

    from fmnist.jobs import LocalBackend

    backend = LocalBackend()
    job = SimpleNamespace(_proc=None)
    assert backend.alive(job) is False  # never started
    job._proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0.2,))
    job._proc.start()
    assert backend.alive(job) is True
    job._proc.join(10)
    assert backend.alive(job) is False  # ended


def test_workers_fork_from_a_server_that_trained_a_few_steps_on_one_thread_and_no_cuda():
    """The fork server imports fmnist.warmup: a worker starts with PyTorch's one-time set-up done."""
    import subprocess
    import sys

    from fmnist.jobs import WORKER_PRELOAD

    assert "fmnist.warmup" in WORKER_PRELOAD and "fmnist.train" in WORKER_PRELOAD
    code = (
        "import torch, fmnist.warmup as w, fmnist.data as d; "
        "print(w.seconds is not None and w.seconds > 0, torch.get_num_threads(), torch.cuda.is_initialized(), "
        "w.data_loaded, d._load.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "1", "False", "True", "1"], out.stderr[-500:]  # the dataset loaded, once


def test_a_fork_server_whose_dataset_is_broken_still_starts_and_leaves_the_error_to_the_worker(tmp_path):
    from fmnist.data import FILES

    for img, lab, _ in FILES.values():
        for name in (img, lab):
            (tmp_path / name).write_bytes(b"not gzip")
    code = "import fmnist.warmup as w; print(w.seconds is not None, w.data_loaded)"
    env = {**os.environ, "FMNIST_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.split() == ["True", "False"], out.stderr[-500:]


FORKSERVER_PID = """
import sys, time
from multiprocessing import forkserver
from fmnist import jobs
if sys.argv[1] == "backend":
    jobs.LocalBackend()
t0 = time.monotonic()
while forkserver._forkserver._forkserver_pid is None and time.monotonic() - t0 < float(sys.argv[2]):
    time.sleep(0.05)
print(forkserver._forkserver._forkserver_pid is not None)
"""


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="POSIX only")
def test_the_fork_server_starts_in_the_background_when_the_backend_is_made():
    """A class's first Start must not wait for the fork server (torch's import and the warm-up, with the
    manager's lock held, froze every tab for 8 s): making the backend starts it, and nothing else does."""
    made = subprocess.run(
        [sys.executable, "-c", FORKSERVER_PID, "backend", "60"], capture_output=True, text=True, cwd=ROOT
    )
    assert made.stdout.split()[0] == "True", made.stderr[-2000:]
    alone = subprocess.run(
        [sys.executable, "-c", FORKSERVER_PID, "none", "1"], capture_output=True, text=True, cwd=ROOT
    )
    assert alone.stdout.split()[0] == "False", alone.stderr[-2000:]


def test_only_a_fork_server_backend_starts_the_fork_server(monkeypatch):
    """In this process (mutmut sees it): the backend starts `_start_forkserver` in a thread when its start
    method is forkserver, and not when it is spawn (macOS, Windows)."""
    started = threading.Event()
    monkeypatch.setattr(jobs, "_start_forkserver", started.set)
    monkeypatch.setattr(jobs, "_context", lambda: multiprocessing.get_context("spawn"))
    jobs.LocalBackend()
    assert not started.wait(0.5)
    if "forkserver" in multiprocessing.get_all_start_methods():
        monkeypatch.setattr(jobs, "_context", lambda: multiprocessing.get_context("forkserver"))
        jobs.LocalBackend()
        assert started.wait(10)


def test_app_py_runs_the_app_as_main_and_does_nothing_when_a_worker_imports_it(monkeypatch):
    """multiprocessing re-imports the parent's __main__ file in a worker under the name __mp_main__."""
    import runpy

    import app_support.frame

    calls = []
    monkeypatch.setattr(app_support.frame, "run_app", lambda: calls.append(1))
    runpy.run_path(str(ROOT / "app.py"), run_name="__mp_main__")
    assert calls == []
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    assert calls == [1]


def test_a_worker_started_while_a_script_run_made_app_py_main_still_trains(monkeypatch):
    """A tab's script run sets sys.modules["__main__"] to app.py's module in its own thread, so it can
    undo `_plain_main` just before a worker starts (it failed a CI run: the worker ran the whole app)."""
    import contextlib
    import types

    script = types.ModuleType("__main__")
    script.__file__ = str(ROOT / "app.py")
    monkeypatch.setattr(jobs, "_plain_main", contextlib.nullcontext)
    monkeypatch.setitem(sys.modules, "__main__", script)
    m = JobManager(max_running=1, threads=1, heartbeat_s=None)
    try:
        job = m.submit(TrainConfig(**TINY), owner="a", label="tiny")
        assert job.wait(120) and job.state == "finished", job.snapshot().done
    finally:
        m.shutdown()


def test_preload_data_loads_the_default_dataset_once_and_never_raises(monkeypatch):
    """In this process: what the fork server does at import, with the loader replaced."""
    from fmnist import warmup
    from fmnist.data import DatasetError

    calls = []
    monkeypatch.setattr(warmup, "load_dataset", lambda *a: calls.append(a))
    assert warmup.preload_data() is True and calls == [()]  # where load_dataset looks by default

    def broken(*a):
        raise DatasetError("Fashion-MNIST not found")

    monkeypatch.setattr(warmup, "load_dataset", broken)
    assert warmup.preload_data() is False
