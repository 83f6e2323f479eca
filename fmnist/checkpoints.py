"""Safe checkpoint IO: safetensors weights plus a JSON model card, in one file.

Loading never unpickles anything, so a file cannot run code: weights are parsed by
safetensors and the card is plain JSON in the safetensors header. Writes go to a temp file
in the same folder, are fsynced, then renamed over the target, so a killed process leaves
either the old file or the new one, never half of one. A linked vote (`save_checkpoint(...,
linked=...)`) holds only its card: its weights are its members' files beside it, each checked
against the sha256 its card records.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .models import Ensemble, ModelSizeError, checked_model_size, count_params, create_model, get_spec
from .settings import CHECKPOINT_DIR, Settings

FORMAT = "fmnist-checkpoint/1"
SUFFIX = ".safetensors"
MAX_BYTES = 128 * 2**20  # refuse absurd files before reading them (models.MAX_PARAMS in fp16 is 100 MB)
MAX_HEADER_BYTES = 8 * 2**20  # the safetensors header: the tensor index plus the card
MAX_CARD_BYTES = 2 * 2**20
MAX_CARD_DEPTH = 32  # a real card nests 5 deep; 100k-deep JSON would exhaust the recursion limit
MEMBER_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.safetensors")  # a linked member: a bare name
LOCK_NAME = ".fmnist.lock"  # every save into a folder holds this lock (filelock: flock, or msvcrt on Windows)

# The shipped checkpoints, in table order, and the CLI arguments that made each one:
# `python scripts/train_zoo.py` runs them, docs/RESULTS.md and tests/test_shipped.py read them.
SHIPPED: dict[str, str] = {
    "logreg": "train --preset logreg",  # 84.2% in Zalando's benchmark (sklearn)
    "mlp": "train --preset mlp",  # about 88% in its report
    "mlp2": "train --preset mlp2",  # 88.0% in its report
    "cnn2": "train --preset cnn2",  # 90.2% in its report
    "keras1": "train --preset keras1",  # 89%
    "keras2": "train --preset keras2",  # 91%
    "keras3": "train --preset keras3",  # 82%, early-stopped as in the report
    "keras3-full": "train --preset keras3 --patience 0",  # the same model, all 50 epochs
    "cnn3bn": "train --preset cnn3bn",  # "99.4%" (MNIST digits, see docs/RESULTS.md)
    "quick": "train --preset quick",  # the classroom demo
    "best": "train --preset best",  # pre-activation ResNet-20 with Cutout: 95.51% in its source (hysts)
    "resnet64": "train --preset resnet64",  # the best model before it: ResNet-9-style, flip TTA
    "photo": "train --preset photo",  # Predict's model for photos: resnet64's network, photo-like training images
    "photo-vote": "ensemble checkpoints/photo.safetensors checkpoints/resnet64.safetensors --vote soft --link",
    # Predict's first choice for photos: the soft vote of the two (docs/RESULTS.md, "Photos from a phone"),
    # linked: the file holds their names and checksums, not a second copy of their weights
    "best-vote": "ensemble checkpoints/best.safetensors checkpoints/resnet64.safetensors "
    "checkpoints/photo.safetensors --vote soft --link",  # the three strongest, fixed beforehand (issue 23)
    # ensemble members, trained (2026-11-23) when the cnn2 recipe still restored its best epoch
    "cnn2-k5": """train --preset cnn2 --restore-best --model-kwargs '{"kernel_size": 5}'""",
    "cnn2-k7": """train --preset cnn2 --restore-best --model-kwargs '{"kernel_size": 7}'""",
    "ensemble": "ensemble checkpoints/cnn2.safetensors checkpoints/cnn2-k5.safetensors "
    "checkpoints/cnn2-k7.safetensors --vote majority --link",  # the report's majority vote
}


def shipped_command(name: str) -> str:
    """The exact command that wrote shipped checkpoint `name` (and that its card records)."""
    return f"python -m fmnist {SHIPPED[name]} --out checkpoints/{name}.safetensors --force"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, not ours, or does not match its architecture."""


class CheckpointExists(CheckpointError):
    """A save would replace an existing checkpoint (another student saved that name first)."""


class FolderFull(CheckpointError):
    """The checkpoint folder is at its quota of saved models or bytes."""


@dataclass(frozen=True)
class FolderLimits:
    """A quota on the models saved into a shared folder (the shipped ones are not counted)."""

    max_models: int = Settings.max_saved_models
    max_bytes: int = Settings().max_saved_bytes

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FolderLimits:
        """$FMNIST_MAX_SAVED_MODELS and $FMNIST_MAX_SAVED_MB (fmnist.settings)."""
        s = settings or Settings.from_env()
        return cls(s.max_saved_models, s.max_saved_bytes)

    def check(self, directory: Path, incoming: int, replacing: Path | None = None) -> None:
        """Raise FolderFull if one more file of `incoming` bytes would exceed the quota."""
        saved = [p for p in list_checkpoints(directory) if p.stem not in SHIPPED and p != replacing]
        used = sum(_size(p) for p in saved)
        if len(saved) + 1 > self.max_models:
            raise FolderFull(
                f"the model folder is full: {len(saved)} saved models, the limit is {self.max_models}. "
                "Delete old models, or ask the teacher to raise FMNIST_MAX_SAVED_MODELS."
            )
        if used + incoming > self.max_bytes:
            raise FolderFull(
                f"the model folder is full: {used / 2**20:.0f} MB of {self.max_bytes / 2**20:.0f} MB used. "
                "Delete old models, or ask the teacher to raise FMNIST_MAX_SAVED_MB."
            )


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


@dataclass
class Checkpoint:
    model: nn.Module
    card: dict[str, Any]
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.card.get("name") or (self.path.stem if self.path else "model")

    @property
    def temperature(self) -> float | None:
        """The temperature fitted on the run's validation split (fmnist.calibrate), if the card has one."""
        t = self.card.get("temperature")
        return float(t) if isinstance(t, (int, float)) and 0 < t < 1000 else None

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


def to_bytes(model: nn.Module | None, card: dict[str, Any]) -> bytes:
    """Serialise weights (floats as fp16: half the size, accuracy unchanged) and card; no weights for None."""
    state = {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous().clone()
        for k, v in (model.state_dict().items() if model is not None else ())
    }
    return st_save(state, metadata={"format": FORMAT, "card": json.dumps(card, default=_json_default)})


def _json_default(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if hasattr(o, "tolist"):  # numpy / torch arrays and scalars
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def file_sha256(path: Path) -> str:
    """The sha256 of a checkpoint file's bytes (read as load_checkpoint reads them)."""
    with _open_regular(path) as (f, size):
        return hashlib.sha256(f.read(size + 1)).hexdigest()


def _member_files(model: nn.Module, linked: list[Path], out_path: Path) -> list[dict[str, str]]:
    """The card's `member_files` for an ensemble whose members are the checkpoints `linked`."""
    if not isinstance(model, Ensemble) or len(model.members) != len(linked):
        raise CheckpointError("only an ensemble can link its members' files, one file per member")
    out, folder = [], out_path.parent
    for p in map(Path, linked):
        if p.resolve().parent != folder.resolve():
            raise CheckpointError(f"{p.name}: a linked member must be a checkpoint in the ensemble's own folder")
        if not MEMBER_FILE.fullmatch(p.name):
            raise CheckpointError(f"{p.name}: a linked member's name may hold only letters, digits, '_', '-' and '.'")
        if p.resolve() == out_path.resolve():
            raise CheckpointError(f"{p.name} is a member of this vote: the vote cannot be saved over it")
        out.append({"file": p.name, "sha256": file_sha256(p)})
    return out


def save_checkpoint(
    model: nn.Module,
    card: dict[str, Any],
    path: str | os.PathLike,
    *,
    overwrite: bool = True,
    limits: FolderLimits | None = None,
    linked: list[Path] | None = None,
) -> Path:
    """Write `model` and its `card` (must hold 'arch' and 'kwargs') to `path`, atomically.

    The bytes go to a temp file in the same folder, are fsynced, then appear under `path` in one
    step, so a process killed at any moment leaves either no file or a complete one. Saves into one
    folder take turns (a lock file), and each clears temp files that a killed save left behind.

    Args:
        overwrite: replace an existing file; if False the file is created exclusively, and a
            name that exists (or appears meanwhile) raises CheckpointExists.
        limits: a quota for the folder (FolderFull when it would be exceeded).
        linked: for an ensemble, its members' files, in member order: the file then holds no weights,
            only each member's name and sha256 (`member_files`), and loads from the members' files,
            which must lie in the same folder. CheckpointError otherwise.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    card = {**card, "format": FORMAT, "params": count_params(model)}
    if linked is not None:
        card["member_files"] = _member_files(model, linked, path)
    card.setdefault("versions", versions())
    card.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    card.setdefault("name", path.stem)
    get_spec(card["arch"])  # refuse to write what we could not load back
    data = to_bytes(None if linked is not None else model, card)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        _remove_stale_temps(path.parent)
        if not overwrite and os.path.lexists(path):
            raise CheckpointExists(f"a model named {path.stem!r} already exists; choose another name")
        if limits is not None:
            limits.check(path.parent, len(data), replacing=path if overwrite else None)
        tmp = _write_temp(path, data)
        try:
            _publish(tmp, path, overwrite)
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_dir(path.parent)
    return path


def _write_temp(path: Path, data: bytes) -> str:
    """A complete, fsynced temp file beside `path` (readable by all: it is meant to be shared).

    The caller renames it into place, or removes it.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; Windows has no fchmod before Python 3.13
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` in one step: a process killed at any moment leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    """Make the complete temp file appear under `path`: replace, or create exclusively."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic and exclusive, even against a writer that holds no lock
    except FileExistsError:
        raise CheckpointExists(f"a model named {path.stem!r} already exists; choose another name") from None
    except OSError:  # a filesystem without hard links: the folder lock still makes this exclusive
        if os.path.lexists(path):
            raise CheckpointExists(f"a model named {path.stem!r} already exists; choose another name") from None
        os.replace(tmp, path)


def _folder_lock(directory: Path) -> FileLock:
    """The folder's save lock, between threads and processes alike (a fresh object: not shared, not reentrant)."""
    return FileLock(directory / LOCK_NAME, thread_local=False, is_singleton=False)


def _remove_stale_temps(directory: Path) -> None:
    """Temp files of saves that were killed mid-write (called with the folder lock held)."""
    for p in directory.glob(f".*{SUFFIX}.*.tmp"):
        p.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, counted without recursion; stops once past `limit`."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def _parse_header(header: bytes, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(safetensors header, model card) from a header's bytes; CheckpointError if either is bad."""
    try:
        obj = json.loads(header)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{source} is not a valid fmnist checkpoint: header is not JSON ({str(e)[:80]})"
        ) from None
    meta = obj.get("__metadata__") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{source} is a safetensors file but not an fmnist checkpoint (no model card)")
    text = meta.get("card")
    if not isinstance(text, str) or len(text) > MAX_CARD_BYTES:
        raise CheckpointError(f"{source}: model card is missing or over {MAX_CARD_BYTES // 2**20} MB")
    try:
        card = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{source}: model card is damaged ({type(e).__name__})") from None
    if not isinstance(card, dict) or not isinstance(card.get("arch"), str):
        raise CheckpointError(f"{source}: model card is not an object with an 'arch'")
    if _depth(card, MAX_CARD_DEPTH) > MAX_CARD_DEPTH:
        raise CheckpointError(f"{source}: model card nests deeper than {MAX_CARD_DEPTH} levels")
    if not isinstance(card.get("kwargs", {}), dict):
        raise CheckpointError(f"{source}: model card is damaged (kwargs is not an object)")
    if "member_files" in card and not _good_member_files(card):
        raise CheckpointError(f"{source}: model card is damaged (member_files)")
    try:
        checked_model_size(card["arch"], **card.get("kwargs", {}))  # on the meta device: allocates nothing
    except (KeyError, ModelSizeError) as e:
        raise CheckpointError(
            f"{source}: cannot build {card['arch']!r} from its card ({str(e).strip(chr(39))})"
        ) from None
    return obj, card


def _good_member_files(card: dict[str, Any]) -> bool:
    """Whether a card's `member_files` names one file (a bare name) and one sha256 per ensemble member."""
    files, members = card["member_files"], card.get("kwargs", {}).get("members")
    return (
        card["arch"] == "ensemble"
        and isinstance(files, list)
        and isinstance(members, list)
        and len(files) == len(members) > 0
        and all(
            isinstance(m, dict)
            and isinstance(m.get("file"), str)
            and MEMBER_FILE.fullmatch(m["file"]) is not None
            and isinstance(m.get("sha256"), str)
            and re.fullmatch("[0-9a-f]{64}", m["sha256"]) is not None
            for m in files
        )
    )


def _linked_state(card: dict[str, Any], folder: Path, source: str) -> dict[str, torch.Tensor]:
    """A linked ensemble's weights: each member's file from `folder`, checked against its sha256."""
    state: dict[str, torch.Tensor] = {}
    for i, m in enumerate(card["member_files"]):
        try:
            with _open_regular(folder / m["file"]) as (f, size):
                data = f.read(size + 1)
        except (CheckpointError, OSError) as e:
            raise CheckpointError(f"{source}: its member {m['file']} cannot be read ({e})") from None
        if hashlib.sha256(data).hexdigest() != m["sha256"]:
            raise CheckpointError(
                f"{source}: its member {m['file']} has changed since the vote was made; "
                f"make it again ({card.get('command') or 'python -m fmnist ensemble ... --link'})"
            )
        try:
            member = st_load(data)
        except (SafetensorError, ValueError, OverflowError) as e:
            raise CheckpointError(f"{source}: its member {m['file']} is not valid: {str(e)[:120]}") from None
        state |= {f"members.{i}.{k}": v for k, v in member.items()}
    return state


def _header_length(prefix: bytes, total: int, source: str) -> int:
    n = int.from_bytes(prefix[:8], "little") if len(prefix) >= 8 else 0
    if not 0 < n <= min(MAX_HEADER_BYTES, total - 8):
        hint = " (it looks like a pickle: those are refused, they can run code)" if prefix[:1] == b"\x80" else ""
        raise CheckpointError(f"{source} is not a valid fmnist checkpoint{hint}: bad header length")
    return n


def from_bytes(data: bytes, source: str = "checkpoint", folder: Path | None = None) -> Checkpoint:
    """Parse checkpoint bytes (safetensors only: no pickle, no code execution).

    The card is checked first; the model is sized on the meta device before anything is
    allocated; every weight must be a finite float where the architecture has a float. A linked
    ensemble (`member_files`) takes its weights from its members' files in `folder`.

    Raises:
        CheckpointError: with a one-line reason.
    """
    n = _header_length(data[:8], len(data), source)
    _, card = _parse_header(data[8 : 8 + n], source)
    arch, kwargs = card["arch"], card.get("kwargs", {})
    try:
        model = create_model(arch, **kwargs)  # _parse_header sized it on the meta device first
    except Exception as e:  # the meta build passed but the real one failed: still one line
        raise CheckpointError(f"{source}: cannot build {arch!r} from its card ({type(e).__name__}: {e})") from None
    try:
        state = st_load(data)
    except (SafetensorError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{source} is not a valid fmnist checkpoint: {str(e)[:120]}") from None
    if "member_files" in card:
        if folder is None:
            raise CheckpointError(f"{source} links its members' files: load it from the folder it was saved in")
        state = _linked_state(card, folder, source)
    expected = model.state_dict()
    for k, v in state.items():
        want = expected.get(k)
        if want is not None and want.is_floating_point() != v.is_floating_point():
            raise CheckpointError(f"{source}: weight {k!r} is {v.dtype}, the architecture expects {want.dtype}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{source}: weight {k!r} holds NaN or infinite values; the model is broken")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # missing/unexpected keys or shape mismatch
        raise CheckpointError(
            f"{source}: weights do not match architecture {arch!r}: {str(e).splitlines()[0][:200]}"
        ) from None
    return Checkpoint(model.eval(), card)


@contextmanager
def _open_regular(path: Path) -> Iterator[tuple[IO[bytes], int]]:
    """Open a regular file for reading, never blocking: a FIFO or a device is refused, not waited on.

    Yields (file, size). Messages name the file, never its folder: they reach web visitors.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path.name}") from None
    except OSError as e:
        raise CheckpointError(f"{path.name}: cannot open ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path.name} is not a regular file")
        if st.st_size > MAX_BYTES:
            raise CheckpointError(f"{path.name} is {st.st_size / 2**20:.0f} MB: too large for a checkpoint")
        yield f, st.st_size


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint file safely. Raises CheckpointError with a clear reason."""
    path = Path(path)
    with _open_regular(path) as (f, size):
        try:
            data = f.read(size + 1)
        except OSError as e:
            raise CheckpointError(f"{path.name}: cannot read ({e.strerror})") from None
    ckpt = from_bytes(data, path.name, path.parent)
    ckpt.path = path
    return ckpt


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Only the model card (cheap: reads the header, builds no model). Raises CheckpointError."""
    path = Path(path)
    with _open_regular(path) as (f, size):
        try:
            prefix = f.read(8)
            n = _header_length(prefix, size, path.name)
            header = f.read(n)
        except OSError as e:
            raise CheckpointError(f"{path.name}: cannot read ({e.strerror})") from None
    card = _parse_header(header, path.name)[1]
    for m in card.get("member_files", ()):  # a linked ensemble is listed only while its members are there
        if not (path.parent / m["file"]).is_file():
            raise CheckpointError(f"{path.name}: its member {m['file']} is missing")
    return card


def list_checkpoints(directory: str | os.PathLike = CHECKPOINT_DIR) -> list[Path]:
    """Regular checkpoint files in `directory`, sorted by name (temp files, FIFOs, folders skipped)."""
    d = Path(directory)
    try:
        entries = list(os.scandir(d))
    except OSError:
        return []
    out = []
    for e in entries:
        try:
            if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file():
                out.append(Path(e.path))
        except OSError:
            continue
    return sorted(out)


def scan_cards(directory: str | os.PathLike = CHECKPOINT_DIR) -> list[tuple[Path, dict[str, Any]]]:
    """(path, card) of every readable checkpoint in `directory`. A file that fails in any way is
    skipped: one bad file in a shared folder must not take the model list down for everyone."""
    out = []
    for p in list_checkpoints(directory):
        try:
            out.append((p, read_card(p)))
        except Exception:  # anything at all: the file is simply not listed
            continue
    return out


def card_test_accuracy(card: dict[str, Any]) -> float | None:
    """The test accuracy a model card records, if any."""
    acc = card.get("metrics", {}).get("test", {}).get("accuracy")
    return acc if isinstance(acc, float) else None
