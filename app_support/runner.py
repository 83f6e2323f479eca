"""A background training run owned by one browser session.

The run lives in that session's `st.session_state`, so reruns and page switches find it
again and two sessions never share one. The worker thread only appends to lists under a
lock; the page's fragment reads a snapshot. No Streamlit calls happen in the thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fmnist.config import TrainConfig
from fmnist.data import FashionMNIST
from fmnist.train import BatchEvent, DoneEvent, EpochEvent, TrainResult, iter_training


@dataclass
class Snapshot:
    batches: list[BatchEvent]
    epochs: list[EpochEvent]
    done: DoneEvent | None
    error: str | None
    running: bool


@dataclass
class TrainingRun:
    config: TrainConfig
    data: FashionMNIST
    label: str = ""
    stop_event: threading.Event = field(default_factory=threading.Event)
    _batches: list[BatchEvent] = field(default_factory=list)
    _epochs: list[EpochEvent] = field(default_factory=list)
    _done: DoneEvent | None = None
    _error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> TrainingRun:
        self._thread = threading.Thread(target=self._work, name=f"train-{self.config.arch}", daemon=True)
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            for ev in iter_training(self.config, self.data, self.stop_event):
                with self._lock:
                    if isinstance(ev, BatchEvent):
                        self._batches.append(ev)
                    elif isinstance(ev, EpochEvent):
                        self._epochs.append(ev)
                    else:
                        self._done = ev
        except Exception as e:  # surfaced in the UI as a message, never a dead thread
            with self._lock:
                self._error = f"{type(e).__name__}: {e}"

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker ends (tests and the CLI-like callers use this)."""
        if self._thread:
            self._thread.join(timeout)
        return not self.running

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(list(self._batches), list(self._epochs), self._done, self._error, self.running)

    @property
    def result(self) -> TrainResult | None:
        return self._done.result if self._done else None
