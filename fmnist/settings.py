"""Every `FMNIST_*` environment variable, in one place: its default, its unit and one line of help.

    from fmnist.settings import Settings
    s = Settings.from_env()          # raises SettingsError (one line) on a bad value
    s.max_trainings, s.checkpoint_dir, ...

The CLI and the app both read their settings here; nothing else in `fmnist/`, `app_support/` or
`views/` reads an `FMNIST_*` variable (tests/test_settings.py checks). docs/DEPLOY.md's table is
generated from `VARS` by `scripts/settings_table.py`. This module imports nothing from the rest of
the package, so every layer may use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the checkout
CHECKPOINT_DIR = ROOT / "checkpoints"
DATA_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SWEEP_STORAGE = f"sqlite:///{ROOT / 'runs' / 'sweeps.db'}"


class SettingsError(ValueError):
    """An environment variable holds a value it cannot take; the message is one line."""


def _number(kind: type, low: float, name: str, raw: str) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < low:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name} must be {what} of at least {low:g}, got {raw!r}")
    return value


def _int(low: int) -> Callable[[str, str], int]:
    return lambda name, raw: _number(int, low, name, raw)


def _float(low: float) -> Callable[[str, str], float]:
    return lambda name, raw: _number(float, low, name, raw)


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _text(name: str, raw: str) -> str:
    return raw


def _address(name: str, raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be host:port (the Ray head's address), got {raw!r}")
    return raw


@dataclass(frozen=True)
class Var:
    """One variable: the Settings field it fills, its parser, and what the docs say about it."""

    name: str
    field: str
    parse: Callable[[str, str], Any]
    default: Any
    shown_default: str  # the default as the docs word it
    help: str


VARS: tuple[Var, ...] = (
    Var(
        "FMNIST_MAX_TRAININGS",
        "max_trainings",
        _int(1),
        None,
        "one per 4 cores (at least 1); on Ray, every run",
        "runs training at once; the rest queue",
    ),
    Var(
        "FMNIST_ORPHAN_GRACE_S",
        "orphan_grace_s",
        _float(0),
        60.0,
        "60 (seconds)",
        "how long a closed tab's run (or sweep) is kept before it is cancelled",
    ),
    Var(
        "FMNIST_MAX_SAVED_MODELS",
        "max_saved_models",
        _int(1),
        200,
        "200",
        "models saved into the folder (the shipped ones are not counted)",
    ),
    Var("FMNIST_MAX_SAVED_MB", "max_saved_mb", _float(1), 2048.0, "2048 (MB)", "their total size"),
    Var(
        "FMNIST_CHECKPOINT_DIR",
        "checkpoint_dir",
        _path,
        CHECKPOINT_DIR,
        "`checkpoints/`",
        "where models are listed and saved, by the app and the CLI",
    ),
    Var(
        "FMNIST_DATA_DIR",
        "data_dir",
        _path,
        None,
        "(unset)",
        "the dataset's folder, looked in first; Home's download button and `python -m fmnist download` write there",
    ),
    Var(
        "FMNIST_DATA_MIRROR",
        "data_mirror",
        _text,
        DATA_MIRROR,
        "the official mirror",
        "another base URL serving the four .gz files (a school's proxy); each file is checked by its content's sha256",
    ),
    Var(
        "FMNIST_RAY_ADDRESS",
        "ray_address",
        _address,
        None,
        "(unset)",
        'train on this Ray cluster, `host:port` (DEPLOY.md, "A lab of PCs")',
    ),
    Var("FMNIST_RAY_CPUS_PER_RUN", "ray_cpus_per_run", _int(1), 2, "2", "CPUs each run reserves on the Ray cluster"),
    Var(
        "FMNIST_SERVER_THREADS",
        "server_threads",
        _int(1),
        1,
        "1",
        "torch threads per request in the server process (pages of 30 tabs share its cores)",
    ),
    Var(
        "FMNIST_SWEEP_STORAGE",
        "sweep_storage",
        _text,
        SWEEP_STORAGE,
        "SQLite under `runs/`",
        "the Optuna storage URL of sweeps (PostgreSQL for several servers)",
    ),
)


def _default(field: str) -> Any:
    return next(v.default for v in VARS if v.field == field)


@dataclass(frozen=True)
class Settings:
    """The server's settings; `Settings()` is every default, `Settings.from_env()` what the environment sets."""

    max_trainings: int | None = _default("max_trainings")  # None: from the cores (jobs.default_max_running)
    orphan_grace_s: float = _default("orphan_grace_s")
    max_saved_models: int = _default("max_saved_models")
    max_saved_mb: float = _default("max_saved_mb")
    checkpoint_dir: Path = _default("checkpoint_dir")
    data_dir: Path | None = _default("data_dir")
    data_mirror: str = _default("data_mirror")
    ray_address: str | None = _default("ray_address")
    ray_cpus_per_run: int = _default("ray_cpus_per_run")
    server_threads: int = _default("server_threads")
    sweep_storage: str = _default("sweep_storage")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives; an empty or unset variable keeps its default."""
        env = os.environ if environ is None else environ
        values = {v.field: v.parse(v.name, env[v.name].strip()) for v in VARS if env.get(v.name, "").strip()}
        return cls(**values)

    @property
    def max_saved_bytes(self) -> int:
        return int(self.max_saved_mb * 2**20)


def table() -> str:
    """The Markdown table of docs/DEPLOY.md."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.shown_default} | {v.help} |" for v in VARS]
    return "\n".join(rows)
