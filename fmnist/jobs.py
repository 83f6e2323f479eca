"""Training jobs: each run in its own worker process, at most N at once, the rest in a FIFO queue.

    manager = JobManager()                    # FMNIST_MAX_TRAININGS, else derived from the cores
    job = manager.submit(cfg, owner="tab-1")  # queued, or started at once when a slot is free
    job.snapshot()                            # events so far, state, queue position, estimated start
    job.stop()                                # leave the queue, or end the run within one batch

A worker process runs `fmnist.train.iter_training` and sends its events back through a
multiprocessing queue; the manager's pump thread collects them, starts queued jobs as slots free
up, and reaps finished workers, so a run's memory goes with its process. Nothing here knows of
Streamlit. Where runs train is a backend: `LocalBackend` (worker processes here, the default) or
`fmnist.ray_backend.RayBackend` (a Ray cluster); `fmnist.ray_backend.make_manager` builds either.
`follow(job)` yields a job's events as `iter_training` does, so the CLI prints a cluster run like a
local one.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import TrainConfig
from .data import N_TRAIN
from .models import create_model
from .settings import Settings
from .train import BatchEvent, DoneEvent, EpochEvent, TrainResult

JobState = Literal["queued", "running", "finished", "cancelled", "failed"]
WORKER_NICE = 10  # workers yield the CPU to the server process (pages stay responsive)
STOP_GRACE_S = 10.0  # a worker that has not ended this long after stop() is terminated
GPU_RUNS = 8  # runs sharing one GPU at once
DEFAULT_RUN_S = 60.0  # assumed length of a queued run before any run has finished
WORKER_PRELOAD = ("fmnist.train", "fmnist.warmup")  # imported once by the fork server the workers fork from
CLUSTER_MAX_RUNNING = 1000  # on Ray, runs handed to the cluster at once (its scheduler queues them)


def cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cuda_devices() -> int:
    """CUDA devices this machine's runs would train on (device "auto" picks CUDA first)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_max_running(n_cores: int | None = None, settings: Settings | None = None, gpus: int | None = None) -> int:
    """$FMNIST_MAX_TRAININGS, else GPU_RUNS per GPU (at most one per core), else one run per core.

    A student run is too small to keep a GPU busy (its steps wait on kernel launches), so several runs,
    each its own process, share one. On CPUs, runs with one thread each finished a class's 30 student
    runs 1.3x sooner than one run at a time with every thread (scripts/class_throughput.py, 2 cores).
    """
    chosen = (settings or Settings.from_env()).max_trainings
    if chosen:
        return chosen
    n = n_cores or cores()
    g = cuda_devices() if gpus is None else gpus
    return max(1, min(GPU_RUNS * g, n) if g else n)  # on CPUs one thread a run: docs/RELIABILITY.md


def threads_per_run(max_running: int, n_cores: int | None = None) -> int:
    """Torch threads for each run: the cores split between the runs that may train at once.

    Workers also run at a lower priority (WORKER_NICE), so the server answers pages first.
    """
    return max(1, (n_cores or cores()) // max_running)


# ---------------------------------------------------------------- the worker process


@dataclass
class _Finished:
    """What a worker sends when its run ends: the result without the model, plus the weights."""

    done: DoneEvent
    state: bytes | None  # safetensors bytes of the final weights; None when diverged


def run_training(cfg: TrainConfig, put: Any, stop: Any, data: Any = None) -> None:
    """Train `cfg`, handing every event to `put`, then the weights; errors become one ("error", line).

    The body of every backend's worker: a local process here, a Ray actor in fmnist.ray_backend.
    """
    from .train import iter_training  # imported in the worker

    try:
        for ev in iter_training(cfg, data, stop=stop):
            if isinstance(ev, DoneEvent):
                model = ev.result.model
                state = None if model is None else st_save({k: v.contiguous() for k, v in model.state_dict().items()})
                put(_Finished(replace(ev, result=replace(ev.result, model=None)), state))
            else:
                put(ev)
    except Exception as e:  # surfaced as the job's error, never a silent dead worker
        put(("error", f"{type(e).__name__}: {e}"))


def _worker(cfg: TrainConfig, threads: int, events: Any, stop: Any, data_dir: str | None = None) -> None:
    """Body of a local worker process: low priority, `threads` torch threads, events into a queue.

    `data_dir`: where the dataset is (default: where `load_dataset` looks).
    """
    if hasattr(os, "nice"):
        os.nice(WORKER_NICE)
    torch.set_num_threads(threads)
    data = None
    if data_dir is not None:
        from .data import DatasetError, load_dataset

        try:
            data = load_dataset(data_dir)
        except DatasetError as e:
            events.put(("error", str(e)))
            return
    run_training(cfg, events.put, stop, data)


@contextlib.contextmanager
def _plain_main():
    """Start workers without the parent's main script: under Streamlit, __main__ is app.py, and
    multiprocessing would re-run it in every worker (and in the forkserver). A tab's script run in
    another thread can put app.py back meanwhile; then app.py's `__name__` guard makes the worker's
    re-import do nothing."""
    stub, old = types.ModuleType("__main__"), sys.modules.get("__main__")
    sys.modules["__main__"] = stub
    try:
        yield
    finally:
        if sys.modules.get("__main__") is stub:  # unless a script run replaced it meanwhile
            sys.modules["__main__"] = old


def _context() -> Any:
    """forkserver on Linux (workers fork from a clean server that has torch imported and warmed up:
    see fmnist.warmup), else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
        return ctx
    return mp.get_context("spawn")


def _start_forkserver() -> None:
    """Start the fork server the workers fork from, if it is not running (it is one per process)."""
    from multiprocessing import forkserver

    with _plain_main():
        forkserver.ensure_running()


class LocalBackend:
    """Each run in a worker process on this machine; the manager's queue decides when it starts.

    A backend starts a job's worker, polls its messages without blocking, asks it to stop, kills
    it and releases it. fmnist.ray_backend.RayBackend is the other one.
    """

    name = "local"
    queues_itself = False  # the manager's FIFO queue and max_running decide what runs

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        """`data_dir`: the dataset's folder for every worker (default: where `load_dataset` looks).

        The fork server starts now, in the background: it imports torch and warms up (seconds on a
        small CPU), and the first run's start waits for it with the manager's lock held, so that a
        class's first Start would otherwise freeze every tab's page until it is up (8 s on a 2-core
        AMD EPYC, 2026-12-02)."""
        self._ctx = _context()
        self.data_dir = None if data_dir is None else str(data_dir)
        if self._ctx.get_start_method() == "forkserver":
            threading.Thread(target=_start_forkserver, name="fmnist-forkserver", daemon=True).start()

    def start(self, job: Job, threads: int) -> None:
        job._events, job._stop = self._ctx.Queue(), self._ctx.Event()
        job._proc = self._ctx.Process(
            target=_worker,
            args=(job.config, threads, job._events, job._stop, self.data_dir),
            name=f"fmnist-job-{job.id}",
            daemon=True,
        )
        with _plain_main():
            job._proc.start()
        job.placed = True

    def poll(self, job: Job) -> tuple[list[Any], str | None]:
        """(messages so far, why the worker is gone or None while it lives)."""
        alive = job._proc.is_alive()  # before draining: a worker that exited has flushed everything it sent
        msgs: list[Any] = []
        try:
            while True:
                msgs.append(job._events.get_nowait())
        except queue.Empty:
            pass
        except (EOFError, OSError, ValueError) as e:  # a broken pipe from a killed worker
            return msgs, f"lost contact with the worker ({type(e).__name__})"
        return msgs, None if alive else f"the worker ended (exit code {job._proc.exitcode})"

    def request_stop(self, job: Job) -> None:
        job._stop.set()

    def alive(self, job: Job) -> bool:
        return job._proc is not None and job._proc.is_alive()

    def kill(self, job: Job) -> None:
        if job._proc.is_alive():
            job._proc.kill()

    def release(self, job: Job) -> None:
        job._proc.join(5)
        if job._proc.is_alive():
            job._proc.kill()
            job._proc.join(5)
        job._proc.close()
        job._events.close()
        job._events.join_thread()
        job._proc = job._events = job._stop = None

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- jobs


MAX_CURVE_POINTS = 2000  # a live chart's batch points: 200 epochs at batch 16 would otherwise be 135k


class Thinned:
    """A growing series kept to at most `limit` evenly spaced points, plus always the latest one.

    Every `stride`-th item is kept; when the kept list is full, every other one is dropped and the
    stride doubles. Memory and every copy stay bounded however long the run.
    """

    def __init__(self, limit: int = MAX_CURVE_POINTS):
        self.limit, self.stride, self.count = limit, 1, 0
        self._kept: list[Any] = []
        self.latest: Any = None

    def append(self, item: Any) -> None:
        self.latest = item
        if self.count % self.stride == 0:
            self._kept.append(item)
            if len(self._kept) > self.limit:
                self._kept = self._kept[::2]
                self.stride *= 2
        self.count += 1

    def points(self) -> list[Any]:
        """The kept points, ending with the latest item."""
        if self._kept and self._kept[-1] is not self.latest:
            return [*self._kept, self.latest]
        return list(self._kept)


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's progress, for drawing."""

    state: JobState
    batches: list[BatchEvent]
    epochs: list[EpochEvent]
    done: DoneEvent | None
    error: str | None
    position: int | None  # 1-based place in the queue; None once started
    starts_in: float | None  # estimated seconds until a queued job starts
    run_s: float | None = None  # and how long it should then take, from this server's measured pace
    pending: bool = False  # handed to a cluster that has not placed it yet
    stopped_by: str | None = None  # why someone else stopped it (the teacher), for its student

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


@dataclass(eq=False)
class Job:
    """One training run managed by a JobManager. Read it through `snapshot()`."""

    id: int
    config: TrainConfig
    owner: str | None
    label: str
    manager: JobManager
    state: JobState = "queued"
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    ended: float | None = None
    batches: Thinned = field(default_factory=Thinned)  # BatchEvents, thinned to MAX_CURVE_POINTS
    epochs: list[EpochEvent] = field(default_factory=list)
    done: DoneEvent | None = None
    error: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    orphaned: float | None = None  # when its owner went away (None: present)
    stop_requested: float | None = None
    stopped_by: str | None = None  # set when someone other than its owner stopped it, and why
    placed: bool = False  # its worker exists (a cluster may keep a run pending until it has room)
    _proc: Any = None  # the backend's handles
    _events: Any = None
    _stop: Any = None

    def stop(self, reason: str | None = None) -> None:
        """Leave the queue, or end the run within one batch (its best weights are kept).

        `reason`: someone else (the teacher) stopped it; its snapshot says so to its student.
        """
        self.manager.stop(self, reason)

    def snapshot(self) -> JobSnapshot:
        return self.manager.snapshot(self)

    @property
    def result(self) -> TrainResult | None:
        return self.done.result if self.done else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended; True if it did within `timeout` seconds."""
        t0 = time.monotonic()
        while self.state in ("queued", "running"):
            if timeout is not None and time.monotonic() - t0 > timeout:
                return False
            time.sleep(0.05)
        return True


def train_images(cfg: TrainConfig) -> int:
    """Training images a run of `cfg` sees each epoch: the 60,000 less its validation split, or its subset."""
    n = N_TRAIN - round(N_TRAIN * cfg.val_fraction)
    return min(cfg.subset, n) if cfg.subset else n


@dataclass(frozen=True)
class Pace:
    """How fast an architecture trained on this server, from a finished run: seconds per training image, and
    the run's seconds outside training (the worker's start, validation, the final test)."""

    per_image_s: float
    fixed_s: float

    @classmethod
    def of(cls, cfg: TrainConfig, epochs_run: int, train_s: float, length_s: float) -> Pace:
        return cls(train_s / (epochs_run * train_images(cfg)), max(0.0, length_s - train_s))

    def expected_s(self, cfg: TrainConfig) -> float:
        """A run of `cfg` at this pace: its epochs' images, stopped at its time budget if it has one."""
        train = cfg.epochs * train_images(cfg) * self.per_image_s
        return self.fixed_s + (min(train, cfg.time_budget) if cfg.time_budget else train)


class RunQueue:
    """The queue and the training slots: FIFO order, at most `max_running` runs at once, and when a
    queued run should start. No threads and no processes: JobManager holds its lock around every call.

    Estimates come from what this server measured: each architecture's pace in its latest finished run
    (`Pace`), else the mean length of recent runs, else the running runs' own ETAs, else DEFAULT_RUN_S.
    """

    def __init__(self, max_running: int):
        self.max_running = max_running
        self.queued: deque[Job] = deque()
        self.running: list[Job] = []
        self._durations: deque[float] = deque(maxlen=20)  # recent run lengths, for the estimates
        self._paces: dict[str, Pace] = {}  # by architecture

    def live(self) -> list[Job]:
        """Running jobs, then queued ones in order."""
        return [*self.running, *self.queued]

    def position(self, job: Job) -> int | None:
        """1-based place of a queued job; None once it started (or ended)."""
        return self.queued.index(job) + 1 if job in self.queued else None

    def next_to_start(self) -> Job | None:
        """Take the first queued job when a slot is free (the caller starts it, then calls `started`)."""
        return self.queued.popleft() if self.queued and len(self.running) < self.max_running else None

    def started(self, job: Job) -> None:
        self.running.append(job)

    def ended(self, job: Job, finished: bool) -> None:
        """A running job ended; a finished one's length and pace feed the estimates."""
        self.running.remove(job)
        if not finished or job.started is None:
            return
        length = time.monotonic() - job.started
        self._durations.append(length)
        result = job.result
        if result is not None and result.train_time_s > 0 and job.epochs:
            self._paces[job.config.arch] = Pace.of(job.config, len(job.epochs), result.train_time_s, length)

    def expected_s(self, cfg: TrainConfig) -> float:
        """Seconds a run of `cfg` should take here, from start to end."""
        pace = self._paces.get(cfg.arch)
        return pace.expected_s(cfg) if pace else self._typical()

    def _typical(self) -> float:
        if self._durations:
            return sum(self._durations) / len(self._durations)
        now = time.monotonic()  # nothing finished yet: the running runs' own elapsed time plus ETA
        guesses = [now - j.started + j.batches.latest.eta for j in self.running if j.batches.latest and j.started]
        return sum(guesses) / len(guesses) if guesses else DEFAULT_RUN_S

    def _left_s(self, job: Job, now: float) -> float:
        latest = job.batches.latest
        if latest is not None:
            return max(0.0, latest.eta)
        return max(0.0, self.expected_s(job.config) - (now - (job.started or now)))

    def starts_in(self, position: int) -> float:
        """Seconds until the job at queue `position` starts: the slots free up as the runs ahead end."""
        now = time.monotonic()
        slots = sorted([self._left_s(j, now) for j in self.running] + [0.0] * (self.max_running - len(self.running)))
        for ahead in list(self.queued)[: position - 1]:  # each job ahead takes the earliest free slot
            slots[0] += self.expected_s(ahead.config)
            slots.sort()
        return slots[0]


class JobManager:
    """Runs jobs in worker processes, through its RunQueue: at most `max_running` at once, FIFO for the rest.

    It owns the workers' lifecycle (start, collect events, stop, reap, through its backend) and the
    owners' presence (a closed tab's job is cancelled after a grace period).

    Args:
        max_running: concurrent runs (default: `default_max_running()`).
        threads: torch threads per run (default: `threads_per_run(max_running)`).
        orphan_grace_s: a job whose owner went away (see `orphan`) is cancelled after this long
            unless the owner comes back (`touch`); default $FMNIST_ORPHAN_GRACE_S.
        heartbeat_s: a job not touched for this long is treated as orphaned (a tab that vanished
            without a goodbye). None disables it.
        backend: where runs train: LocalBackend() (default), or fmnist.ray_backend.RayBackend
            (see `fmnist.ray_backend.make_manager`). A cluster backend queues runs itself: they start at once here
            and stay pending (`JobSnapshot.pending`) until the cluster places them.
        settings: the defaults' source (default: `Settings.from_env()`).
    """

    def __init__(
        self,
        max_running: int | None = None,
        threads: int | None = None,
        orphan_grace_s: float | None = None,
        heartbeat_s: float | None = 180.0,
        backend: Any = None,
        settings: Settings | None = None,
    ):
        settings = settings or Settings.from_env()
        self.backend = backend or LocalBackend()
        if self.backend.queues_itself:  # a cluster's scheduler is the queue: hand every run to it
            max_running = max_running or settings.max_trainings or CLUSTER_MAX_RUNNING
            self.threads = threads or self.backend.cpus_per_run
        else:
            max_running = max_running or default_max_running(settings=settings)
            self.threads = threads or threads_per_run(max_running)
        self.queue = RunQueue(max_running)
        self.orphan_grace_s = settings.orphan_grace_s if orphan_grace_s is None else orphan_grace_s
        self.heartbeat_s = heartbeat_s
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        self._pump = threading.Thread(target=self._pump_loop, name="fmnist-jobs", daemon=True)
        self._pump.start()

    @property
    def max_running(self) -> int:
        return self.queue.max_running

    # ------------------------------------------------------------ interface

    def submit(self, cfg: TrainConfig, owner: str | None = None, label: str = "") -> Job:
        """Queue a run of `cfg`. An owner has one active job at most: its live job is returned as it is."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is shut down")
            live = self.active_job(owner) if owner else None
            if live is not None:
                return live
            job = Job(next(self._ids), cfg, owner, label or f"{cfg.arch}-job", self)
            self.queue.queued.append(job)
        self._wake.set()
        return job

    def stop(self, job: Job, reason: str | None = None) -> None:
        with self._lock:
            if job.state == "queued":
                job.stopped_by = reason
                self.queue.queued.remove(job)
                self._end(job, "cancelled")
            elif job.state == "running" and job.stop_requested is None:
                job.stop_requested, job.stopped_by = time.monotonic(), reason
                if job.placed:
                    self.backend.request_stop(job)
                else:  # still pending on the cluster: nothing has trained, nothing to keep
                    self._kill(job, "cancelled", "left the cluster's queue")
        self._wake.set()

    def snapshot(self, job: Job) -> JobSnapshot:
        with self._lock:
            position = self.queue.position(job)
            return JobSnapshot(
                state=job.state,
                batches=job.batches.points(),
                epochs=list(job.epochs),
                done=job.done,
                error=job.error,
                position=position,
                starts_in=self.queue.starts_in(position) if position else None,
                run_s=self.queue.expected_s(job.config) if position else None,
                pending=job.state == "running" and not job.placed,
                stopped_by=job.stopped_by,
            )

    def active_job(self, owner: str) -> Job | None:
        """The owner's queued or running job, if any."""
        with self._lock:
            return next((j for j in self.queue.live() if j.owner == owner), None)

    def touch(self, owner: str) -> None:
        """The owner is still there (a heartbeat): keep its job, even if it was orphaned."""
        with self._lock:
            for j in self.queue.live():
                if j.owner == owner:
                    j.last_seen, j.orphaned = time.monotonic(), None

    def orphan(self, owner: str) -> None:
        """The owner has gone (e.g. its browser tab closed): cancel its job after the grace period."""
        with self._lock:
            for j in self.queue.live():
                if j.owner == owner and j.orphaned is None:
                    j.orphaned = time.monotonic()
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """Server-wide numbers: slots, running and queued jobs, worker processes alive."""
        with self._lock:
            return {
                "max_running": self.max_running,
                "threads_per_run": self.threads,
                "running": len(self.queue.running),
                "queued": len(self.queue.queued),
                "workers_alive": sum(self.backend.alive(j) for j in self.queue.running),
                "backend": self.backend.name,
            }

    def shutdown(self, timeout: float = STOP_GRACE_S) -> None:
        """Cancel the queue, stop the running jobs and end their processes."""
        with self._lock:
            self._closed = True
            for j in [*self.queue.queued, *self.queue.running]:
                self.stop(j)
        t0 = time.monotonic()
        while self.queue.running and time.monotonic() - t0 < timeout:
            self._wake.set()
            time.sleep(0.05)
        with self._lock:
            for j in list(self.queue.running):
                self._kill(j, "cancelled", "shut down")
        self._wake.set()
        if threading.current_thread() is not self._pump:
            self._pump.join(5)  # it may be polling the backend: let it finish before the backend closes
        self.backend.close()

    # ------------------------------------------------------------ the pump thread

    def _pump_loop(self) -> None:
        while True:
            self._wake.wait(0.1)
            self._wake.clear()
            with self._lock:
                for job in list(self.queue.running):
                    self._drain(job)
                self._expire_orphans()
                while not self._closed and (job := self.queue.next_to_start()) is not None:
                    self._start(job)
                if self._closed and not self.queue.running:
                    return

    def _start(self, job: Job) -> None:
        try:
            self.backend.start(job, self.threads)
        except Exception as e:  # e.g. the cluster went away: the run fails with the reason, the server goes on
            job.error = f"could not start the run on the {self.backend.name} backend: {type(e).__name__}: {e}"
            self._end(job, "failed")
            return
        job.state, job.started = "running", time.monotonic()
        self.queue.started(job)

    def _drain(self, job: Job) -> None:
        """Collect the worker's events; end the job when its result arrived or its worker is gone."""
        msgs, gone = self.backend.poll(job)
        for msg in msgs:
            if isinstance(msg, BatchEvent):
                job.batches.append(msg)
            elif isinstance(msg, EpochEvent):
                job.epochs.append(msg)
            elif isinstance(msg, _Finished):
                job.done = _with_model(msg)
                self._reap(job, "finished")
                return
            else:  # ("error", message)
                self._kill(job, "failed", msg[1])
                return
        if gone:
            self._kill(job, "cancelled" if job.stop_requested else "failed", gone)
        elif job.stop_requested and time.monotonic() - job.stop_requested > STOP_GRACE_S:
            self._kill(job, "cancelled", "stopped")

    def _expire_orphans(self) -> None:
        now = time.monotonic()
        for job in self.queue.live():
            gone_since = job.orphaned
            if self.heartbeat_s is not None and now - job.last_seen > self.heartbeat_s:
                gone_since = min(gone_since or now, job.last_seen + self.heartbeat_s)
            if gone_since is not None and now - gone_since > self.orphan_grace_s:
                job.error = "cancelled: its browser tab was closed"
                self.stop(job)

    def _reap(self, job: Job, state: JobState) -> None:
        self.backend.release(job)
        self.queue.ended(job, finished=state == "finished")
        self._end(job, state)

    def _kill(self, job: Job, state: JobState, reason: str) -> None:
        self.backend.kill(job)
        job.error = job.error or (None if state == "cancelled" else reason)
        self._reap(job, state)

    def _end(self, job: Job, state: JobState) -> None:
        job.state, job.ended = state, time.monotonic()
        self._wake.set()


class JobFailed(RuntimeError):
    """A followed job failed or was cancelled; the message says why."""


def follow(job: Job, poll_s: float = 0.1) -> Iterator[Any]:
    """A job's events as they arrive, as `fmnist.train.iter_training` yields them: the latest
    BatchEvent whenever there is a new one, each EpochEvent, then the DoneEvent.

    Raises:
        JobFailed: the job failed or was cancelled (its error as the message).
    """
    last_batch, epochs_seen = None, 0
    while True:
        snap = job.snapshot()
        batch = job.batches.latest
        if batch is not None and batch is not last_batch:
            last_batch = batch
            yield batch
        yield from snap.epochs[epochs_seen:]
        epochs_seen = len(snap.epochs)
        if snap.done is not None:
            yield snap.done
            return
        if not snap.active:
            raise JobFailed(snap.error or f"the run was {snap.state}")
        time.sleep(poll_s)


def _with_model(msg: _Finished) -> DoneEvent:
    """Rebuild the model in this process from the worker's weights."""
    done = msg.done
    if msg.state is None:
        return done
    cfg = done.result.config
    model = create_model(cfg.arch, **cfg.model_kwargs)
    model.load_state_dict(st_load(msg.state))
    return replace(done, result=replace(done.result, model=model.eval()))


def format_wait(seconds: float) -> str:
    """'about 40 s' / 'about 3 min' for a queue estimate."""
    return f"about {max(5, round(seconds / 5) * 5):.0f} s" if seconds < 90 else f"about {math.ceil(seconds / 60)} min"


def format_queue(snap: JobSnapshot) -> str:
    """A queued run's wait in words: 'starts in about 40 s, then takes about 10 s'."""
    text = f"starts in {format_wait(snap.starts_in or 0.0)}"
    return f"{text}, then takes {format_wait(snap.run_s)}" if snap.run_s is not None else text
