"""Safe checkpoint IO: safetensors weights plus a JSON model card, in one file.

Loading never unpickles anything, so a file cannot run code: weights are parsed by
safetensors and the card is plain JSON in the safetensors header. Writes go to a temp file
in the same folder, are fsynced, then renamed over the target, so a killed process leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .data import load_dataset
from .evaluate import EvalResult, evaluate_test
from .models import count_params, create_model, get_spec

FORMAT = "fmnist-checkpoint/1"
SUFFIX = ".safetensors"
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
MAX_BYTES = 512 * 2**20  # refuse absurd files before reading them

# The shipped checkpoints, in table order, and the CLI arguments that made each one:
# `python scripts/train_zoo.py` runs them, docs/RESULTS.md and tests/test_shipped.py read them.
SHIPPED: dict[str, str] = {
    "logreg": "train --preset logreg",  # 84.2% in Zalando's benchmark (sklearn)
    "mlp": "train --preset mlp",  # 88% in the TensorFlow tutorial
    "mlp2": "train --preset mlp2",  # 88.0% in its report
    "cnn2": "train --preset cnn2",  # 90.2% in its report
    "keras1": "train --preset keras1",  # 89%
    "keras2": "train --preset keras2",  # 91%
    "keras3": "train --preset keras3",  # 82%
    "cnn3bn": "train --preset cnn3bn",  # "99.4%" (MNIST digits, see docs/RESULTS.md)
    "quick": "train --preset quick",  # the classroom demo
    "best": "train --preset best",  # ResNet-9-style, flip TTA
    "cnn2-k5": """train --preset cnn2 --model-kwargs '{"kernel_size": 5}'""",  # ensemble member
    "cnn2-k7": """train --preset cnn2 --model-kwargs '{"kernel_size": 7}'""",  # ensemble member
    "ensemble": "ensemble checkpoints/cnn2.safetensors checkpoints/cnn2-k5.safetensors "
    "checkpoints/cnn2-k7.safetensors --vote majority",  # the report's majority vote
}


def shipped_command(name: str) -> str:
    """The exact command that wrote shipped checkpoint `name` (and that its card records)."""
    return f"python -m fmnist {SHIPPED[name]} --out checkpoints/{name}.safetensors --force"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, not ours, or does not match its architecture."""


@dataclass
class Checkpoint:
    model: nn.Module
    card: dict[str, Any]
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.card.get("name") or (self.path.stem if self.path else "model")

    @property
    def tta_flip(self) -> bool:
        return bool(self.card.get("config", {}).get("tta_flip", False))


def sanitize_name(name: str) -> str:
    """A safe file stem: letters, digits, '-', '_' and '.', no path parts, at most 64 chars.

    Raises:
        ValueError: nothing usable is left (e.g. '../../', '' or '...').
    """
    stem = Path(str(name).replace("\\", "/")).name
    stem = stem.removesuffix(SUFFIX)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:64].strip("-.")
    if not stem:
        raise ValueError(f"{name!r} is not a usable checkpoint name: use letters, digits, '-' or '_'")
    return stem


def checkpoint_path(name: str, directory: str | os.PathLike = CHECKPOINT_DIR) -> Path:
    """Path of checkpoint `name` inside `directory`; the name is sanitised first."""
    return Path(directory) / (sanitize_name(name) + SUFFIX)


def versions() -> dict[str, str]:
    import numpy
    import safetensors

    from . import __version__

    return {
        "fmnist": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def round_to_fp16(model: nn.Module) -> nn.Module:
    """Round float weights to what a checkpoint stores (fp16), in place, so metrics measured
    afterwards are exactly those of the saved file."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model


def to_bytes(model: nn.Module, card: dict[str, Any]) -> bytes:
    """Serialise weights (floats as fp16: half the size, accuracy unchanged) and card."""
    state = {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous().clone()
        for k, v in model.state_dict().items()
    }
    return st_save(state, metadata={"format": FORMAT, "card": json.dumps(card, default=_json_default)})


def _json_default(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if hasattr(o, "tolist"):  # numpy / torch arrays and scalars
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def save_checkpoint(model: nn.Module, card: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write `model` and its `card` (must hold 'arch' and 'kwargs') to `path`."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    card = {**card, "format": FORMAT, "params": count_params(model)}
    card.setdefault("versions", versions())
    card.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    card.setdefault("name", path.stem)
    get_spec(card["arch"])  # refuse to write what we could not load back
    data = to_bytes(model, card)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def from_bytes(data: bytes, source: str = "checkpoint") -> Checkpoint:
    """Parse checkpoint bytes (safetensors only: no pickle, no code execution).

    Raises:
        CheckpointError: with a one-line reason.
    """
    try:
        state = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError, OverflowError) as e:
        hint = " (it looks like a pickle: those are refused, they can run code)" if data[:1] == b"\x80" else ""
        raise CheckpointError(f"{source} is not a valid fmnist checkpoint{hint}: {str(e)[:120]}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{source} is a safetensors file but not an fmnist checkpoint (no model card)")
    try:
        card = json.loads(meta["card"])
        arch, kwargs = card["arch"], card.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise TypeError("kwargs is not an object")
    except (KeyError, json.JSONDecodeError, TypeError) as e:
        raise CheckpointError(f"{source}: model card is damaged ({e})") from None
    try:
        model = create_model(arch, **kwargs)
    except Exception as e:  # bad kwargs in a card can fail in any builder, in any way
        raise CheckpointError(f"{source}: cannot build {arch!r} from its card ({type(e).__name__}: {e})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # missing/unexpected keys or shape mismatch
        raise CheckpointError(
            f"{source}: weights do not match architecture {arch!r}: {str(e).splitlines()[0][:200]}"
        ) from None
    return Checkpoint(model.eval(), card)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint file safely. Raises CheckpointError with a clear reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size > MAX_BYTES:
        raise CheckpointError(f"{path} is {path.stat().st_size / 2**20:.0f} MB: too large for a checkpoint")
    ckpt = from_bytes(path.read_bytes(), str(path))
    ckpt.path = path
    return ckpt


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Only the model card (cheap: reads the header, builds no model)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 50 * 2**20:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
        meta = (header.get("__metadata__") or {}) if isinstance(header, dict) else {}
        if meta.get("format") != FORMAT:
            raise ValueError("not an fmnist checkpoint")
        card = json.loads(meta["card"])
        if not isinstance(card, dict) or not isinstance(card.get("arch"), str):
            raise ValueError("model card is not an object with an 'arch'")
        return card
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read model card ({e})") from None


def list_checkpoints(directory: str | os.PathLike = CHECKPOINT_DIR) -> list[Path]:
    """Checkpoint files in `directory`, sorted by name (temp files are skipped)."""
    d = Path(directory)
    return sorted(p for p in d.glob("*" + SUFFIX) if not p.name.startswith(".")) if d.is_dir() else []


def build_card(result: Any, test: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """The model card for a `fmnist.train.TrainResult`: recipe, history, metrics, provenance.

    Args:
        result: the TrainResult of a run that did not diverge.
        test: test-set metrics (EvalResult.summary() plus per-class rows), if measured.
        command: the command line that produced the run, for reproduction.
    """
    cfg = result.config
    return {
        "arch": cfg.arch,
        "kwargs": cfg.model_kwargs,
        "config": cfg.to_dict(),
        "status": result.status,
        "message": result.message,
        "seed": cfg.seed,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "metrics": {"val": {"accuracy": result.val_acc, "loss": result.val_loss}, "test": test or {}},
        "train_time_s": round(result.train_time_s, 2),
        "device": result.device,
        "precision": result.precision,
        "data_checksum": result.data_checksum,
        "command": command,
        "versions": versions(),
    }


def card_test_accuracy(card: dict[str, Any]) -> float | None:
    """The test accuracy a model card records, if any."""
    acc = card.get("metrics", {}).get("test", {}).get("accuracy")
    return acc if isinstance(acc, float) else None


def save_trained(
    result: Any, path: str | os.PathLike, command: str | None = None, **extra: Any
) -> tuple[Path, EvalResult]:
    """Round a finished run's weights to fp16, evaluate them on the test set, write the card.

    The UI and the CLI both save through here, so every card's test metrics describe exactly
    the saved weights. Returns (path, EvalResult).
    """
    round_to_fp16(result.model)
    ev = evaluate_test(result.model, tta_flip=result.config.tta_flip)
    card = {**build_card(result, ev.card_metrics(), command), **extra}
    return save_checkpoint(result.model, card, path), ev


def build_ensemble(members: list[Checkpoint], vote: str = "soft") -> nn.Module:
    """An Ensemble whose members carry the weights of saved checkpoints."""
    if not members:
        raise CheckpointError("an ensemble needs at least one checkpoint")
    if any(m.card["arch"] == "ensemble" for m in members):
        raise CheckpointError("an ensemble cannot contain another ensemble")
    specs = [{"arch": m.card["arch"], "kwargs": m.card.get("kwargs", {})} for m in members]
    model = create_model("ensemble", members=specs, vote=vote)
    for slot, m in zip(model.members, members):
        slot.load_state_dict(m.model.state_dict())
    return model.eval()


def make_ensemble(
    members: list[Checkpoint], vote: str = "soft", command: str | None = None
) -> tuple[Checkpoint, EvalResult]:
    """An ensemble of saved checkpoints, evaluated on the test set, with its model card.

    Returns (checkpoint, EvalResult); save it with `save_checkpoint(ck.model, ck.card, path)`.
    """
    model = build_ensemble(members, vote)
    ev = evaluate_test(model)
    card = {
        "arch": "ensemble", "kwargs": {"members": model.member_specs, "vote": vote},
        "members": [{"name": m.name, "arch": m.card["arch"], "test_accuracy": card_test_accuracy(m.card)} for m in members],
        "metrics": {"test": ev.card_metrics(), "val": {}},
        "train_time_s": sum(m.card.get("train_time_s", 0) for m in members),
        "data_checksum": load_dataset().checksum,
        "command": command, "history": [], "config": {"tta_flip": False, "arch": "ensemble"},
    }  # fmt: skip
    return Checkpoint(model, card), ev
