"""Training jobs: each run in its own worker process, at most N at once, the rest in a FIFO queue.

    manager = JobManager()                    # FMNIST_MAX_TRAININGS, else derived from the cores
    job = manager.submit(cfg, owner="tab-1")  # queued, or started at once when a slot is free
    job.snapshot()                            # events so far, state, queue position, estimated start
    job.stop()                                # leave the queue, or end the run within one batch

A worker process runs `fmnist.train.iter_training` and sends its events back through a
multiprocessing queue; the manager's pump thread collects them, starts queued jobs as slots free
up, and reaps finished workers, so a run's memory goes with its process. Nothing here knows of
Streamlit. The interface (submit / snapshot / stop / position) is the seam for other backends.
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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import TrainConfig
from .models import create_model
from .train import BatchEvent, DoneEvent, EpochEvent, TrainResult

JobState = Literal["queued", "running", "finished", "cancelled", "failed"]
WORKER_NICE = 10  # workers yield the CPU to the server process (pages stay responsive)
STOP_GRACE_S = 10.0  # a worker that has not ended this long after stop() is terminated
DEFAULT_RUN_S = 60.0  # assumed length of a queued run before any run has finished


def cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_max_running(n_cores: int | None = None) -> int:
    """$FMNIST_MAX_TRAININGS, else one run per 4 cores (1 on 2 cores): each run keeps its threads busy."""
    env = os.environ.get("FMNIST_MAX_TRAININGS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"FMNIST_MAX_TRAININGS must be a positive integer, got {env!r}") from None
    return max(1, (n_cores or cores()) // 4)


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


def _worker(cfg: TrainConfig, threads: int, events: Any, stop: Any) -> None:
    """Body of a worker process: train, send every event, then the weights; errors as one line."""
    from .train import iter_training  # imported here, in the child

    if hasattr(os, "nice"):
        os.nice(WORKER_NICE)
    torch.set_num_threads(threads)
    try:
        for ev in iter_training(cfg, stop=stop):
            if isinstance(ev, DoneEvent):
                model = ev.result.model
                state = None if model is None else st_save({k: v.contiguous() for k, v in model.state_dict().items()})
                events.put(_Finished(replace(ev, result=replace(ev.result, model=None)), state))
            else:
                events.put(ev)
    except Exception as e:  # surfaced as the job's error, never a silent dead worker
        events.put(("error", f"{type(e).__name__}: {e}"))


@contextlib.contextmanager
def _plain_main():
    """Start workers without the parent's main script: under Streamlit, __main__ is app.py, and
    multiprocessing would re-run it in every worker (and in the forkserver)."""
    stub, old = types.ModuleType("__main__"), sys.modules.get("__main__")
    sys.modules["__main__"] = stub
    try:
        yield
    finally:
        if sys.modules.get("__main__") is stub:  # unless a script run replaced it meanwhile
            sys.modules["__main__"] = old


def _context() -> Any:
    """forkserver on Linux (workers fork from a clean server that has torch imported), else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["fmnist.train"])
        return ctx
    return mp.get_context("spawn")


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
    saved_as: str | None = None  # the checkpoint its model was saved as: one save per run
    _proc: Any = None
    _events: Any = None
    _stop: Any = None

    def stop(self) -> None:
        """Leave the queue, or end the run within one batch (its best weights are kept)."""
        self.manager.stop(self)

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


class JobManager:
    """Runs jobs in worker processes: at most `max_running` at once, FIFO for the rest.

    Args:
        max_running: concurrent runs (default: `default_max_running()`).
        threads: torch threads per run (default: `threads_per_run(max_running)`).
        orphan_grace_s: a job whose owner went away (see `orphan`) is cancelled after this long
            unless the owner comes back (`touch`).
        heartbeat_s: a job not touched for this long is treated as orphaned (a tab that vanished
            without a goodbye). None disables it.
    """

    def __init__(
        self,
        max_running: int | None = None,
        threads: int | None = None,
        orphan_grace_s: float = 60.0,
        heartbeat_s: float | None = 180.0,
    ):
        self.max_running = max_running or default_max_running()
        self.threads = threads or threads_per_run(self.max_running)
        self.orphan_grace_s = orphan_grace_s
        self.heartbeat_s = heartbeat_s
        self._ctx = _context()
        self._ids = itertools.count(1)
        self._queue: deque[Job] = deque()
        self._running: list[Job] = []
        self._durations: deque[float] = deque(maxlen=20)  # recent run lengths, for queue estimates
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        self._pump = threading.Thread(target=self._pump_loop, name="fmnist-jobs", daemon=True)
        self._pump.start()

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
            self._queue.append(job)
        self._wake.set()
        return job

    def stop(self, job: Job) -> None:
        with self._lock:
            if job.state == "queued":
                self._queue.remove(job)
                self._end(job, "cancelled")
            elif job.state == "running" and job.stop_requested is None:
                job.stop_requested = time.monotonic()
                job._stop.set()
        self._wake.set()

    def snapshot(self, job: Job) -> JobSnapshot:
        with self._lock:
            position = self._queue.index(job) + 1 if job.state == "queued" else None
            return JobSnapshot(
                state=job.state, batches=job.batches.points(), epochs=list(job.epochs), done=job.done, error=job.error,
                position=position, starts_in=self._starts_in(position) if position else None,
            )  # fmt: skip

    def active_job(self, owner: str) -> Job | None:
        """The owner's queued or running job, if any."""
        with self._lock:
            return next((j for j in [*self._running, *self._queue] if j.owner == owner), None)

    def touch(self, owner: str) -> None:
        """The owner is still there (a heartbeat): keep its job, even if it was orphaned."""
        with self._lock:
            for j in [*self._running, *self._queue]:
                if j.owner == owner:
                    j.last_seen, j.orphaned = time.monotonic(), None

    def orphan(self, owner: str) -> None:
        """The owner has gone (e.g. its browser tab closed): cancel its job after the grace period."""
        with self._lock:
            for j in [*self._running, *self._queue]:
                if j.owner == owner and j.orphaned is None:
                    j.orphaned = time.monotonic()
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """Server-wide numbers: slots, running and queued jobs, worker processes alive."""
        with self._lock:
            return {
                "max_running": self.max_running, "threads_per_run": self.threads, "running": len(self._running),
                "queued": len(self._queue), "workers_alive": sum(j._proc is not None and j._proc.is_alive() for j in self._running),
            }  # fmt: skip

    def shutdown(self, timeout: float = STOP_GRACE_S) -> None:
        """Cancel the queue, stop the running jobs and end their processes."""
        with self._lock:
            self._closed = True
            for j in list(self._queue):
                self.stop(j)
            for j in list(self._running):
                self.stop(j)
        t0 = time.monotonic()
        while self._running and time.monotonic() - t0 < timeout:
            self._wake.set()
            time.sleep(0.05)
        with self._lock:
            for j in list(self._running):
                self._kill(j, "cancelled", "shut down")

    # ------------------------------------------------------------ the pump thread

    def _pump_loop(self) -> None:
        while True:
            self._wake.wait(0.1)
            self._wake.clear()
            with self._lock:
                for job in list(self._running):
                    self._drain(job)
                self._expire_orphans()
                while self._queue and len(self._running) < self.max_running and not self._closed:
                    self._start(self._queue.popleft())
                if self._closed and not self._running:
                    return

    def _start(self, job: Job) -> None:
        job._events, job._stop = self._ctx.Queue(), self._ctx.Event()
        job._proc = self._ctx.Process(
            target=_worker, args=(job.config, self.threads, job._events, job._stop), name=f"fmnist-job-{job.id}",
            daemon=True,
        )  # fmt: skip
        with _plain_main():
            job._proc.start()
        job.state, job.started = "running", time.monotonic()
        self._running.append(job)

    def _drain(self, job: Job) -> None:
        """Collect the worker's events; end the job when its result arrived or its process died."""
        alive = job._proc.is_alive()  # before draining: a worker that exited has flushed everything it sent
        try:
            while True:
                msg = job._events.get_nowait()
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
        except queue.Empty:
            pass
        except (EOFError, OSError, ValueError) as e:  # a broken pipe from a killed worker
            self._kill(job, "failed", f"lost contact with the worker ({type(e).__name__})")
            return
        if not alive:
            code = job._proc.exitcode
            self._kill(job, "cancelled" if job.stop_requested else "failed", f"the worker ended (exit code {code})")
        elif job.stop_requested and time.monotonic() - job.stop_requested > STOP_GRACE_S:
            self._kill(job, "cancelled", "stopped")

    def _expire_orphans(self) -> None:
        now = time.monotonic()
        for job in [*self._running, *self._queue]:
            gone_since = job.orphaned
            if self.heartbeat_s is not None and now - job.last_seen > self.heartbeat_s:
                gone_since = min(gone_since or now, job.last_seen + self.heartbeat_s)
            if gone_since is not None and now - gone_since > self.orphan_grace_s:
                job.error = "cancelled: its browser tab was closed"
                self.stop(job)

    def _reap(self, job: Job, state: JobState) -> None:
        job._proc.join(5)
        if job._proc.is_alive():
            job._proc.kill()
            job._proc.join(5)
        job._proc.close()
        job._events.close()
        job._events.join_thread()
        self._running.remove(job)
        if state == "finished" and job.started is not None:
            self._durations.append(time.monotonic() - job.started)
        self._end(job, state)

    def _kill(self, job: Job, state: JobState, reason: str) -> None:
        if job._proc.is_alive():
            job._proc.kill()
        job.error = job.error or (None if state == "cancelled" else reason)
        self._reap(job, state)

    def _end(self, job: Job, state: JobState) -> None:
        job.state, job.ended = state, time.monotonic()
        job._proc = job._events = job._stop = None
        self._wake.set()

    def _starts_in(self, position: int) -> float:
        """Seconds until the job at queue `position` starts: the slots free up as runs end."""
        typical = sum(self._durations) / len(self._durations) if self._durations else DEFAULT_RUN_S
        now = time.monotonic()
        slots = sorted(
            max(0.0, j.batches.latest.eta) if j.batches.latest else max(0.0, typical - (now - (j.started or now)))
            for j in self._running
        )
        slots += [0.0] * (self.max_running - len(slots))
        for _ in range(position - 1):  # each job ahead takes the earliest free slot
            slots[0] += typical
            slots.sort()
        return slots[0]


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
