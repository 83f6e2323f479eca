"""The class board: the runs a class shares with its teacher, the room's limits, and the teacher's key.

    board = Board()
    board.share(job, nickname="Ada", preset="student")   # the student's choice; nothing else is listed
    board.rows()                                         # every shared run: state, epoch, ETA, accuracy
    board.limits = RoomLimits(presets=("student",), max_epochs=5)
    board.limits.check(cfg, "student")                   # LimitError (one line) when a run breaks them

It lives in the server's memory only: a restart clears it (the board says since when it has run).
Nothing here knows of Streamlit; app_support/classroom.py holds the server's one Board.
"""

from __future__ import annotations

import csv
import hmac
import io
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError, TrainConfig, options, preset_config
from .data import N_TRAIN
from .jobs import Job

MAX_CURVE_POINTS = 200  # per run on the board's chart: 30 runs of up to 1000 epochs stay light
MAX_ENTRIES = 150  # shared runs kept (their models too); the oldest ended ones go first
FREE_TRIES = 3  # wrong keys before each further try waits
MAX_WAIT_S = 60.0  # the longest wait after wrong keys
TEACHER_STOP = "Your teacher stopped this run from the class board."
TEACHER_REMOVE = "Your teacher removed this run from the queue."
NICKNAME_CHARS = 24


class LimitError(ConfigError):
    """A run the room's limits do not allow; the message is one line, for the student."""


def training_images(cfg: TrainConfig) -> int:
    """How many images a run trains on: its subset, or the training set less the validation split."""
    return cfg.subset or N_TRAIN - round(N_TRAIN * cfg.val_fraction)


@dataclass(frozen=True)
class RoomLimits:
    """What the teacher allows in the room; None (or empty) allows everything."""

    presets: tuple[str, ...] | None = None
    archs: tuple[str, ...] | None = None
    max_epochs: int | None = None
    max_images: int | None = None  # training images per run

    def check(self, cfg: TrainConfig, preset: str) -> None:
        """Raise LimitError, naming the first limit `cfg` (started from `preset`) breaks."""
        if self.presets and preset not in self.presets:
            raise LimitError(f"the preset {preset!r} is not allowed in this room (allowed: {', '.join(self.presets)})")
        if self.archs and cfg.arch not in self.archs:
            raise LimitError(
                f"the architecture {cfg.arch!r} is not allowed in this room (allowed: {', '.join(self.archs)})"
            )
        if self.max_epochs and cfg.epochs > self.max_epochs:
            raise LimitError(f"{cfg.epochs} epochs is over this room's limit of {self.max_epochs}")
        if self.max_images and training_images(cfg) > self.max_images:
            raise LimitError(
                f"{training_images(cfg):,} training images is over this room's limit of {self.max_images:,}"
                " (set Subset lower)"
            )

    def describe(self) -> str:
        """One line for the students ('' when nothing is limited)."""
        parts = []
        if self.presets:
            parts.append("presets " + ", ".join(self.presets))
        if self.archs:
            parts.append("architectures " + ", ".join(self.archs))
        if self.max_epochs:
            parts.append(f"at most {self.max_epochs} epochs")
        if self.max_images:
            parts.append(f"at most {self.max_images:,} training images")
        return "; ".join(parts)


def clean_nickname(text: str | None) -> str:
    """A nickname as the board shows it: printable, one line, at most NICKNAME_CHARS characters."""
    text = "".join(c for c in (text or "") if c.isprintable()).strip()
    return " ".join(text.split())[:NICKNAME_CHARS]


def changed_settings(cfg: TrainConfig, preset: str) -> dict[str, Any]:
    """The options (and architecture) a run set differently from its preset."""
    base, mine = preset_config(preset).flat(), cfg.flat()
    names = ["arch", *(n for n in options() if n != "log_every")]  # how often it reports is no setting of the run
    return {n: mine[n] for n in names if mine.get(n) != base.get(n)}


@dataclass
class Entry:
    """One shared run on the board."""

    job: Job
    nickname: str
    preset: str
    shared_at: float = field(default_factory=time.monotonic)
    test_acc: float | None = None  # measured once the run has ended with a model

    @property
    def name(self) -> str:
        return self.nickname or f"anonymous {self.job.id}"


@dataclass(frozen=True)
class Row:
    """What the board shows of one run, now."""

    id: int
    nickname: str
    preset: str
    arch: str
    state: str  # queued, pending, starting, training, finished, early stopped, stopped, diverged, failed, cancelled
    detail: str  # "position 3", "epoch 2/5", the error ...
    elapsed_s: float  # waiting time while queued; training time after
    eta_s: float | None  # until it starts (queued) or ends (training)
    val_acc: float | None
    test_acc: float | None
    changes: dict[str, Any]

    @property
    def live(self) -> bool:
        return self.state in ("queued", "pending", "starting", "training")


def state_of(snap: Any, epochs: int) -> tuple[str, str, float | None]:
    """(state, detail, eta) of a job snapshot, in the board's words."""
    if snap.state == "queued":
        return "queued", f"position {snap.position}", snap.starts_in
    if snap.state == "running":
        if snap.pending:
            return "pending", "waiting for a computer of the lab", None
        last = snap.batches[-1] if snap.batches else None
        if last is None:
            return "starting", "starting its worker", None
        return "training", f"epoch {last.epoch}/{epochs}", last.eta
    if snap.state == "finished" and snap.done is not None:
        status = snap.done.status.replace("_", " ")
        if snap.stopped_by:
            return status, "by the teacher", None
        if snap.done.status == "diverged" or snap.done.result is None:
            return status, snap.done.message, None
        return status, f"best epoch {snap.done.result.best_epoch}", None
    return snap.state, snap.error or "", None


class Board:
    """The runs shared in this server, the room's limits, and the teacher's actions on them. Thread-safe."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._measuring = threading.Lock()  # one evaluation at a time, each run measured once
        self._entries: dict[int, Entry] = {}
        self._limits = RoomLimits()
        self.max_entries = max_entries
        self.started = time.time()  # wall clock: the board says since when it holds the room

    @property
    def limits(self) -> RoomLimits:
        with self._lock:
            return self._limits

    @limits.setter
    def limits(self, value: RoomLimits) -> None:
        with self._lock:
            self._limits = value

    def share(self, job: Job, nickname: str, preset: str) -> Entry:
        """Put `job` on the board (again: its nickname is updated)."""
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is None:
                entry = self._entries[job.id] = Entry(job, clean_nickname(nickname), preset)
                self._trim()
            else:
                entry.nickname = clean_nickname(nickname)
            return entry

    def unshare(self, job: Job) -> None:
        with self._lock:
            self._entries.pop(job.id, None)

    def shared(self, job: Job) -> bool:
        with self._lock:
            return job.id in self._entries

    def _trim(self) -> None:
        """Keep max_entries: drop the oldest ended runs first, then the oldest."""
        while len(self._entries) > self.max_entries:
            ended = [e for e in self._entries.values() if e.job.state not in ("queued", "running")]
            oldest = min(ended or self._entries.values(), key=lambda e: e.shared_at)
            del self._entries[oldest.job.id]

    def entries(self) -> list[Entry]:
        """The shared runs, in the order they were shared."""
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: (e.shared_at, e.job.id))

    def entry(self, job_id: int) -> Entry | None:
        with self._lock:
            return self._entries.get(job_id)

    def rows(self, now: float | None = None) -> list[Row]:
        now = time.monotonic() if now is None else now
        return [row_of(e, now) for e in self.entries()]

    def stop(self, job_id: int) -> bool:
        """Stop a shared run (or take it out of the queue), telling its student why. False if not live."""
        entry = self.entry(job_id)
        if entry is None or entry.job.state not in ("queued", "running"):
            return False
        queued = entry.job.state == "queued"
        entry.job.stop(TEACHER_REMOVE if queued else TEACHER_STOP)
        return True

    def clear_queue(self) -> int:
        """Take every queued shared run out of the queue; how many were."""
        return sum(self.stop(e.job.id) for e in self.entries() if e.job.state == "queued")

    def measure(self, evaluate: Callable[[Any], float], limit: int | None = None) -> int:
        """Fill in the test accuracy of ended runs that have a model (at most `limit` now); how many were."""
        with self._measuring:
            todo = [e for e in self.entries() if e.test_acc is None and e.job.result and e.job.result.model]
            for e in todo[:limit]:
                e.test_acc = evaluate(e.job.result.model)
            return len(todo[:limit])


def row_of(e: Entry, now: float) -> Row:
    job = e.job
    snap = job.snapshot()
    state, detail, eta = state_of(snap, job.config.epochs)
    if job.started is None:
        elapsed = (job.ended or now) - job.submitted
    else:
        elapsed = (job.ended or now) - job.started
    vals = [ep.val_acc for ep in snap.epochs if not math.isnan(ep.val_acc)]
    result = snap.done.result if snap.done else None
    val = result.val_acc if result is not None and not math.isnan(result.val_acc) else (max(vals) if vals else None)
    return Row(
        id=job.id,
        nickname=e.name,
        preset=e.preset,
        arch=job.config.arch,
        state=state,
        detail=detail,
        elapsed_s=elapsed,
        eta_s=eta,
        val_acc=val,
        test_acc=e.test_acc,
        changes=changed_settings(job.config, e.preset),
    )


def curve(job: Job, limit: int = MAX_CURVE_POINTS) -> tuple[list[int], list[float]]:
    """(epochs, validation accuracies) of a run so far, at most `limit` points, the last one always kept."""
    points = [(e.epoch, e.val_acc) for e in job.snapshot().epochs if not math.isnan(e.val_acc)]
    if len(points) > limit:
        step = math.ceil((len(points) - 1) / (limit - 1))
        points = points[::step] if (len(points) - 1) % step == 0 else [*points[::step], points[-1]]
    return [p[0] for p in points], [p[1] for p in points]


def colour_group(row: Row, shown: list[Row]) -> str:
    """What a run's curve is coloured by: its preset when the runs shown differ in preset, else its
    architecture when they differ in that, else the run itself (its nickname)."""
    if len({r.preset for r in shown}) > 1:
        return row.preset
    if len({r.arch for r in shown}) > 1:
        return row.arch
    return row.nickname


def leaderboard(rows: list[Row]) -> list[Row]:
    """The runs with a test accuracy, best first."""
    return sorted((r for r in rows if r.test_acc is not None), key=lambda r: -r.test_acc)


def clock(seconds: float | None) -> str:
    """'1:05' (minutes:seconds), or '' for no value."""
    if seconds is None:
        return ""
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def table_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """The board's table as the page shows it, one dict per run."""
    return [
        {
            "Nickname": r.nickname,
            "Model": f"{r.preset} · {r.arch}" if r.preset != r.arch else r.arch,
            "State": r.state,
            "Where": r.detail,
            "Time": clock(r.elapsed_s),
            "ETA": clock(r.eta_s),
            "Val acc": percent(r.val_acc),
            "Test acc": percent(r.test_acc),
            "Settings changed": describe_changes(r.changes),
        }
        for r in rows
    ]


def describe_changes(changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "as the preset"


def to_csv(rows: list[Row]) -> str:
    """The board as CSV, one row per run (accuracies as fractions, times in seconds)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        ["nickname", "preset", "arch", "state", "detail", "elapsed_s", "eta_s", "val_acc", "test_acc", "changes"]
    )
    for r in rows:
        w.writerow(
            [
                _safe_cell(r.nickname),
                r.preset,
                r.arch,
                r.state,
                _safe_cell(r.detail),
                round(r.elapsed_s, 1),
                "" if r.eta_s is None else round(r.eta_s, 1),
                "" if r.val_acc is None else round(r.val_acc, 4),
                "" if r.test_acc is None else round(r.test_acc, 4),
                describe_changes(r.changes),
            ]
        )
    return out.getvalue()


def _safe_cell(text: str) -> str:
    """A student's text cannot become a spreadsheet formula when the teacher opens the CSV."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class TeacherGate:
    """Checks the teacher's key; after FREE_TRIES wrong keys from one client, each try waits longer."""

    def __init__(self, key: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        with self._lock:
            return max(0.0, self._locked_until.get(client, 0.0) - self._clock())

    def try_key(self, client: str, given: str) -> tuple[bool, str]:
        """(accepted, the one-line message to show)."""
        if not self.key:
            return False, "This server has no class board: FMNIST_TEACHER_KEY is not set."
        wait = self.wait_s(client)
        if wait > 0:
            return False, f"Too many wrong keys: try again in {math.ceil(wait)} s."
        if hmac.compare_digest(given.strip().encode(), self.key.encode()):
            with self._lock:
                self._failures.pop(client, None)
            return True, "Welcome to the class board."
        with self._lock:
            n = self._failures[client] = self._failures.get(client, 0) + 1
            if n >= FREE_TRIES:
                delay = min(2.0 ** (n - FREE_TRIES), MAX_WAIT_S)
                self._locked_until[client] = self._clock() + delay
                return False, f"Wrong key. Too many wrong keys: try again in {math.ceil(delay)} s."
        return False, "Wrong key."
