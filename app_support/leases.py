"""Sweeps' stop signals, by browser session: a closed tab stops its sweeps after the grace period.

A leaf module: the session's goodbye (app_support.training) releases them, and app_support.sweeps
registers them, without either importing the other.
"""

from __future__ import annotations

import threading
import time


class Lease:
    """A sweep's stop signal: stopped by the user, or by its session ending (after a grace period)."""

    def __init__(self, grace_s: float):
        self.grace_s = grace_s
        self._stopped = threading.Event()
        self._released_at: float | None = None

    def stop(self) -> None:
        self._stopped.set()

    def release(self) -> None:  # the session went away
        self._released_at = time.monotonic()

    def touch(self) -> None:  # the session is (back) here
        self._released_at = None

    def is_set(self) -> bool:
        gone = self._released_at is not None and time.monotonic() - self._released_at > self.grace_s
        return self._stopped.is_set() or gone


_LEASES: dict[str, list[Lease]] = {}  # owner token -> its sweeps' leases (released when the tab closes)
_LEASES_LOCK = threading.Lock()


def release_sweeps(token: str) -> None:
    """Called when a session ends: its sweeps stop after the grace period unless it comes back."""
    with _LEASES_LOCK:
        for lease in _LEASES.get(token, []):
            lease.release()


def touch_sweeps(token: str) -> None:
    with _LEASES_LOCK:
        for lease in _LEASES.get(token, []):
            lease.touch()


def register(token: str, lease: Lease) -> None:
    with _LEASES_LOCK:
        _LEASES.setdefault(token, []).append(lease)


def forget(token: str, lease: Lease) -> None:
    """The sweep ended: its lease leaves the registry (and the session's entry with its last lease)."""
    with _LEASES_LOCK:
        held = _LEASES.get(token, [])
        if lease in held:
            held.remove(lease)
        if not held:
            _LEASES.pop(token, None)
