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
from collections.abc import Mapping
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


def _address(name: str, raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be host:port (the Ray head's address), got {raw!r}")
    return raw


@dataclass(frozen=True)
class Var:
    """One variable: the Settings field it fills, its kind of value, and what the docs say about it."""

    name: str
    field: str
    kind: str  # "int" or "float" (at least `low`), "path", "text", "key" (at least `low` characters), "address"
    default: Any
    shown: str  # the default as the docs word it
    help: str
    low: float = 0

    def parse(self, raw: str) -> Any:
        """The value of `raw` (already stripped), or SettingsError naming the variable."""
        if self.kind in ("int", "float"):
            return _number(int if self.kind == "int" else float, self.low, self.name, raw)
        if self.kind == "path":
            return Path(raw).expanduser()
        if self.kind == "address":
            return _address(self.name, raw)
        if self.kind == "key" and len(raw) < self.low:
            raise SettingsError(f"{self.name} must be at least {self.low:g} characters long, got {len(raw)}")
        return raw


VARS: tuple[Var, ...] = (
    Var(
        "FMNIST_MAX_TRAININGS",
        "max_trainings",
        "int",
        None,
        low=1,
        shown="one per core (8 per GPU, at most one per core); on Ray, every run",
        help="runs training at once; the rest queue",
    ),
    Var(
        "FMNIST_ORPHAN_GRACE_S",
        "orphan_grace_s",
        "float",
        60.0,
        low=0,
        shown="60 (seconds)",
        help="how long a closed tab's run (or sweep) is kept before it is cancelled",
    ),
    Var(
        "FMNIST_MAX_SAVED_MODELS",
        "max_saved_models",
        "int",
        200,
        low=1,
        shown="200",
        help="models saved into the folder (the shipped ones are not counted)",
    ),
    Var("FMNIST_MAX_SAVED_MB", "max_saved_mb", "float", 2048.0, low=1, shown="2048 (MB)", help="their total size"),
    Var(
        "FMNIST_CHECKPOINT_DIR",
        "checkpoint_dir",
        "path",
        CHECKPOINT_DIR,
        shown="`checkpoints/`",
        help="where models are listed and saved, by the app and the CLI",
    ),
    Var(
        "FMNIST_DATA_DIR",
        "data_dir",
        "path",
        None,
        shown="(unset)",
        help="the dataset's folder, looked in first; Home's download button and `python -m fmnist download` "
        "write there",
    ),
    Var(
        "FMNIST_DATA_MIRROR",
        "data_mirror",
        "text",
        DATA_MIRROR,
        shown="the official mirror",
        help="another base URL serving the four .gz files (a school's proxy); each file is checked by its "
        "content's sha256",
    ),
    Var(
        "FMNIST_RAY_ADDRESS",
        "ray_address",
        "address",
        None,
        shown="(unset)",
        help='train on this Ray cluster, `host:port` (DEPLOY.md, "A lab of PCs")',
    ),
    Var(
        "FMNIST_RAY_CPUS_PER_RUN",
        "ray_cpus_per_run",
        "int",
        2,
        low=1,
        shown="2",
        help="CPUs each run reserves on the Ray cluster",
    ),
    Var(
        "FMNIST_SERVER_THREADS",
        "server_threads",
        "int",
        1,
        low=1,
        shown="1",
        help="torch threads per request in the server process (pages of 30 tabs share its cores)",
    ),
    Var(
        "FMNIST_SWEEP_STORAGE",
        "sweep_storage",
        "text",
        SWEEP_STORAGE,
        shown="SQLite under `runs/`",
        help="the Optuna storage URL of sweeps (PostgreSQL for several servers)",
    ),
    Var(
        "FMNIST_TEACHER_KEY",
        "teacher_key",
        "key",
        None,
        low=6,
        shown="(unset: no class board)",
        help="the teacher's key to the Class page (the class board, at least 6 characters); set, students "
        "share their runs by default",
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
    teacher_key: str | None = _default("teacher_key")  # None: no class board

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives; an empty or unset variable keeps its default."""
        env = os.environ if environ is None else environ
        values = {v.field: v.parse(env[v.name].strip()) for v in VARS if env.get(v.name, "").strip()}
        return cls(**values)

    @property
    def max_saved_bytes(self) -> int:
        return int(self.max_saved_mb * 2**20)


def table() -> str:
    """The Markdown table of docs/DEPLOY.md."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.shown} | {v.help} |" for v in VARS]
    return "\n".join(rows)
