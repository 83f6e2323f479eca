"""A training run's whole state after an epoch, so that a long run can stop and continue.

`python -m fmnist train ... --snapshot FILE` writes FILE after every whole epoch: the weights, the
optimiser's buffers, the random generators, the best epoch's weights and the history. Run the same
command again and training continues after the last epoch in FILE, with the result it would have
had without the break (on one device, bit for bit: `tests/test_snapshot.py`). A snapshot of another
run (other options, another dataset) is refused, naming the first option that differs.

The file is safetensors (no pickle: loading it runs no code) with the run's state as JSON in its
metadata, written atomically: a run killed while writing leaves the previous snapshot whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .checkpoints import write_atomic

if TYPE_CHECKING:
    from .train import _Run

FORMAT = "fmnist-snapshot/1"
KEY = "fmnist-snapshot"
ANOTHER = "another --snapshot"
FREE = ("device", "precision", "log_every")  # options a continued run may change (a CPU run continued on a GPU)
MAX_BYTES = 512 * 2**20  # weights, best weights and optimiser buffers of the largest zoo model, with room


class SnapshotError(ValueError):
    """A snapshot that cannot continue this run; the message is one line."""


def _tensors(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v.detach().cpu().contiguous() for k, v in state.items()}


def _unprefix(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "/"
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def snapshot_bytes(run: _Run, epoch: int) -> bytes:
    """The state of `run` after its whole epoch `epoch`, as safetensors bytes."""
    tr, best = run.trainer, run.best
    opt = tr.opt.state_dict()
    tensors = _tensors("model", tr.model.state_dict())
    if best.state is not None:
        tensors.update(_tensors("best", best.state))
    scalars: dict[str, dict[str, Any]] = {}
    for i, slot in opt["state"].items():
        for k, v in slot.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt/{i}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(i), {})[k] = v
    tensors["rng/gen"] = tr.gen.get_state()
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {
        "format": FORMAT,
        "config": run.cfg.to_dict(),
        "data_checksum": run.data.checksum,
        "epoch": epoch,
        "steps_done": tr.steps_done,
        "train_time": run.train_time,
        "elapsed": run.clock() - run.t0,
        "history": run.history,
        "best": {"score": best.score, "loss": best.loss, "epoch": best.epoch, "acc": best.acc},
        "param_groups": opt["param_groups"],
        "opt_scalars": scalars,
    }
    return st_save(tensors, metadata={KEY: json.dumps(meta)})


def _unwritable(path: Path, e: OSError) -> SnapshotError:
    return SnapshotError(f"cannot write the snapshot {path.name} ({e.strerror or e})")


def lock_path(path: Path) -> Path:
    """The hidden file next to a snapshot that its run holds locked."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold `path`'s run lock for the whole run. Its folder is made first, so that a snapshot that
    cannot be written fails before the first epoch, not after it. A second run continuing the same
    snapshot at the same time, in another process or thread, is refused instead of both writing it.
    The lock goes with the process (flock, or msvcrt on Windows): a killed run leaves none held."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path(path), thread_local=False, is_singleton=False)
        lock.acquire(timeout=0)
    except Timeout:
        raise SnapshotError(
            f"{path.name} is being continued by another run right now; wait for it to end, or give {ANOTHER}"
        ) from None
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        yield
    finally:
        lock.release()


def resume(run: _Run, path: Path) -> int:
    """The last epoch done in `path`, with `run` put in its state; 0 for a new run."""
    return load_snapshot(run, path) if path.exists() else 0


def save_snapshot(run: _Run, epoch: int, path: Path) -> None:
    """Write the snapshot after `epoch` to `path`, replacing the previous one in one step."""
    try:
        write_atomic(path, snapshot_bytes(run, epoch))
    except OSError as e:
        raise _unwritable(path, e) from None


def _not_a_snapshot(path: Path) -> str:
    return f"{path.name} is not a training snapshot (a file written by train --snapshot)"


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotError(f"{path.name} is not a regular file")
        size = st.st_size
        if size > MAX_BYTES:
            raise SnapshotError(f"{path.name} is {size / 2**20:.0f} MB: too large for a training snapshot")
        data = path.read_bytes()
    except OSError as e:
        raise SnapshotError(f"{path.name}: cannot read ({e.strerror})") from None
    not_one = _not_a_snapshot(path)
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n]) if 0 < n <= len(data) - 8 else None
        meta = json.loads(header["__metadata__"][KEY])
        tensors = st_load(data)
    except (SafetensorError, ValueError, KeyError, TypeError, OverflowError):
        raise SnapshotError(not_one) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SnapshotError(not_one)
    return meta, tensors


def progress(path: str | os.PathLike) -> tuple[int, int]:
    """(whole epochs done, the run's epochs) in a snapshot file, read as a continuing run reads it.

    SnapshotError (one line) if the file is not a training snapshot."""
    path = Path(path)
    meta, _ = _read(path)
    try:
        return int(meta["epoch"]), int(meta["config"]["epochs"])
    except (KeyError, TypeError, ValueError):
        raise SnapshotError(_not_a_snapshot(path)) from None


def _first_difference(saved: Any, ours: Any, name: str = "") -> str | None:
    """The first option (dotted) whose value differs, or None."""
    if isinstance(saved, dict) and isinstance(ours, dict):
        for k in sorted(set(saved) | set(ours)):
            d = _first_difference(saved.get(k), ours.get(k), f"{name}{k}.")
            if d:
                return d
        return None
    return None if saved == ours else f"{name[:-1]} is {saved!r} there, {ours!r} here"


def load_snapshot(run: _Run, path: Path) -> int:
    """Put `run` in the state saved in `path`; returns the last epoch done. Raises SnapshotError."""
    meta, tensors = _read(path)
    name = path.name
    saved = meta.get("config")
    if not isinstance(saved, dict):
        raise SnapshotError(f"{name} is damaged and cannot continue this run (no options)")
    free = dict.fromkeys(FREE)  # how it runs, not what it learns: these may change between sessions
    diff = _first_difference({**saved, **free}, {**run.cfg.to_dict(), **free})
    if diff:
        raise SnapshotError(f"{name} is a snapshot of another run ({diff}); give the same options, or {ANOTHER}")
    if meta.get("data_checksum") != run.data.checksum:
        raise SnapshotError(f"{name} was trained on another copy of the dataset; give the same data, or {ANOTHER}")
    tr, best = run.trainer, run.best
    try:
        epoch = int(meta["epoch"])
        tr.model.load_state_dict(_unprefix("model", tensors), strict=True)
        slots: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("opt/"):
                _, i, key = k.split("/", 2)
                slots.setdefault(int(i), {})[key] = v
        for i, extra in meta["opt_scalars"].items():
            slots.setdefault(int(i), {}).update(extra)
        tr.opt.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
        tr.gen.set_state(tensors["rng/gen"])
        torch.set_rng_state(tensors["rng/torch"])
        saved_best = _unprefix("best", tensors)
        b = meta["best"]
        best.score, best.loss, best.acc = float(b["score"]), float(b["loss"]), float(b["acc"])
        best.epoch = int(b["epoch"])
        best.state = {k: v.to(tr.device) for k, v in saved_best.items()} or None
        tr.steps_done = int(meta["steps_done"])
        run.train_time = float(meta["train_time"])
        run.t0 = run.clock() - float(meta["elapsed"])
        run.history = list(meta["history"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise SnapshotError(f"{name} is damaged and cannot continue this run ({type(e).__name__})") from None
    if not 0 < epoch <= run.cfg.epochs or len(run.history) != epoch or math.isnan(best.score):
        raise SnapshotError(f"{name} is damaged and cannot continue this run (epoch {epoch})")
    return epoch
