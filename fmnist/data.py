"""Fashion-MNIST loading: IDX parsing, dataset discovery, splits and normalisation constants.

The whole dataset (70k x 28 x 28 uint8, about 55 MB) lives in memory as tensors and is
parsed once per process; every later call returns the cached object.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .settings import DATA_MIRROR, ROOT, Settings

if TYPE_CHECKING:
    from .config import TrainConfig

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASSES)
N_TRAIN, N_TEST = 60_000, 10_000
IMAGE_SIZE = 28
# Mean and std of the 60k training pixels scaled to [0, 1] (computed by `dataset_stats`).
MEAN = 0.2860
STD = 0.3530

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
LOCAL_DIR = ROOT / "data"  # the checkout's ./data, wherever the app is started from
MIRROR = DATA_MIRROR  # the official mirror; $FMNIST_DATA_MIRROR names another (a school's proxy, a test's loopback)

# split -> (images file, labels file, expected count)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", N_TRAIN),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", N_TEST),
}
GZ_BYTES = {  # the official gz files' sizes, for a download's progress bar (a mirror's may differ a little)
    "train-images-idx3-ubyte.gz": 26_421_880,
    "train-labels-idx1-ubyte.gz": 29_515,
    "t10k-images-idx3-ubyte.gz": 4_422_102,
    "t10k-labels-idx1-ubyte.gz": 5_148,
}
# sha256 of the four files' decompressed content: it does not depend on who gzipped them (Debian's
# package and the official mirror differ in their gzip headers), so it checks a download from any mirror.
RAW_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

HOW_TO_GET = (
    "Get the dataset with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
    "or `python -m fmnist download` (checksummed download into ./data; in the app: the button on Home), "
    "or point $FMNIST_DATA_DIR at a folder holding the four original .gz files."
)


class DatasetError(RuntimeError):
    """The dataset is missing, truncated or corrupt. The message says how to fix it."""


@dataclass(frozen=True)
class FashionMNIST:
    """The whole dataset in memory. Images are uint8 (N, 28, 28); labels int64 (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    root: Path
    checksum: str  # sha256 over the four decompressed files, identifies the exact data

    @property
    def verified(self) -> bool:
        """True when the content matches the official release byte for byte."""
        return self.checksum == official_checksum()


def official_checksum() -> str:
    return hashlib.sha256("".join(RAW_SHA256[f] for f in sorted(RAW_SHA256)).encode()).hexdigest()


def candidate_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    """Where the data is looked for, in order: argument, $FMNIST_DATA_DIR, ./data, system."""
    if path is not None:
        return [Path(path)]
    chosen = Settings.from_env().data_dir
    return [*([chosen] if chosen else []), LOCAL_DIR, LOCAL_DIR / "FashionMNIST" / "raw", SYSTEM_DIR]


def find_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the first candidate folder that holds all four files, else raise DatasetError."""
    dirs = candidate_dirs(path)
    needed = [f for img, lab, _ in FILES.values() for f in (img, lab)]
    for d in dirs:
        if all((d / f).is_file() for f in needed):
            return d
    looked = ", ".join(str(d) for d in dirs)
    if path is not None or Settings.from_env().data_dir:
        d = dirs[0]
        missing = [f for f in needed if not (d / f).is_file()]
        raise DatasetError(f"Fashion-MNIST files missing in {d}: {', '.join(missing)}. {HOW_TO_GET}")
    raise DatasetError(f"Fashion-MNIST not found (looked in {looked}). {HOW_TO_GET}")


def _read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path} is truncated or not a gzip file ({e}). {HOW_TO_GET}") from None


def parse_idx(raw: bytes, name: str, *, ndim: int, count: int | None = None) -> np.ndarray:
    """Parse an IDX byte string holding uint8 data (magic 0x0000 08 ndim).

    Args:
        raw: the decompressed file content.
        name: file name, used in error messages.
        ndim: 3 for images (N, 28, 28), 1 for labels (N,).
        count: the expected number of items, if known.

    Returns:
        A read-only-free numpy uint8 array of the declared shape.
    """
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{name}: file too short for an IDX header ({len(raw)} bytes). {HOW_TO_GET}")
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise DatasetError(
            f"{name}: bad magic number 0x{magic:08x} (expected 0x{0x0800 + ndim:08x}, "
            f"uint8 with {ndim} dimension(s)); not a Fashion-MNIST IDX file. {HOW_TO_GET}"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise DatasetError(f"{name}: images are {dims[1]}x{dims[2]}, expected 28x28. {HOW_TO_GET}")
    if count is not None and dims[0] != count:
        raise DatasetError(f"{name}: holds {dims[0]} items, expected {count}. {HOW_TO_GET}")
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DatasetError(
            f"{name}: truncated or padded: {len(raw) - header} data bytes, header says {size}. {HOW_TO_GET}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, str, str]:
    img_name, lab_name, count = FILES[split]
    img_raw, lab_raw = _read_gz(root / img_name), _read_gz(root / lab_name)
    images = parse_idx(img_raw, str(root / img_name), ndim=3, count=count)
    labels = parse_idx(lab_raw, str(root / lab_name), ndim=1, count=count)
    if labels.max() >= NUM_CLASSES:
        raise DatasetError(f"{root / lab_name}: label {labels.max()} out of range 0-9. {HOW_TO_GET}")
    sha = [hashlib.sha256(r).hexdigest() for r in (img_raw, lab_raw)]
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), sha[0], sha[1]


@functools.lru_cache(maxsize=4)
def _load(root: Path) -> FashionMNIST:
    tr_x, tr_y, *tr_sha = _load_split(root, "train")
    te_x, te_y, *te_sha = _load_split(root, "test")
    shas = dict(zip([*FILES["train"][:2], *FILES["test"][:2]], [*tr_sha, *te_sha]))
    checksum = hashlib.sha256("".join(shas[f] for f in sorted(shas)).encode()).hexdigest()
    return FashionMNIST(tr_x, tr_y, te_x, te_y, root, checksum)


def load_dataset(path: str | os.PathLike | None = None) -> FashionMNIST:
    """Load (once per process) and validate Fashion-MNIST.

    Raises:
        DatasetError: missing, truncated or corrupt files, with instructions to get them.
    """
    return _load(find_data_dir(path).resolve())


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified split of indices into (train_idx, val_idx).

    Each class contributes round(n_c * val_fraction) samples to validation, so the class
    balance of both parts matches the whole. The same seed always gives the same split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    train_parts, val_parts = [], []
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = round(len(idx) * val_fraction)
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded, class-balanced subset of about n samples (all if n >= len)."""
    if n >= len(labels):
        return torch.arange(len(labels))
    _, sub = stratified_split(labels, n / len(labels), seed)
    return sub


def split_indices(cfg: TrainConfig, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's (train, validation) indices into the 60k training images.

    A seeded stratified split; with `subset`, both parts shrink class-balanced (validation to
    subset/5, at least 200 images) so that a classroom run stays fast end to end.
    """
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
    if cfg.subset:
        train_idx = train_idx[stratified_subset(labels[train_idx], cfg.subset, cfg.seed)]
        val_idx = val_idx[stratified_subset(labels[val_idx], max(cfg.subset // 5, 200), cfg.seed)]
    return train_idx, val_idx


def dataset_stats(ds: FashionMNIST) -> tuple[float, float]:
    """Mean and std of the training pixels in [0, 1]; the source of MEAN and STD."""
    x = ds.train_images.float() / 255.0
    return x.mean().item(), x.std().item()


def mirror_url() -> str:
    """The base URL the dataset is downloaded from: $FMNIST_DATA_MIRROR, else the official mirror."""
    url = Settings.from_env().data_mirror
    return url if url.endswith("/") else url + "/"


def download_dir() -> Path:
    """Where a download goes: $FMNIST_DATA_DIR when set (where the data is looked for first), else ./data."""
    return Settings.from_env().data_dir or LOCAL_DIR


def _content_sha256(path: Path) -> str | None:
    """sha256 of a gz file's decompressed content; None when it is not a readable gzip file."""
    try:
        return hashlib.sha256(_read_gz(path)).hexdigest()
    except DatasetError:
        return None


def download(
    dest: str | os.PathLike | None = None,
    progress: Callable[[float, str], None] | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """Download the four files into `dest` (default `download_dir()`), checking each one's content sha256.

    A file already there with the right content is kept; a file is written under a temporary name
    and renamed only once its content matches, so a failed or interrupted download leaves nothing
    half-done.
    Two downloads into one folder (two tabs pressing the button) take turns, and the second finds
    the files there. Needs internet, or $FMNIST_DATA_MIRROR.

    Args:
        progress: called with (fraction of all bytes done, file name) as the bytes arrive.

    Raises:
        DatasetError: the mirror cannot be reached, or sent something else; the message says which.
    """
    import urllib.error
    import urllib.request

    from filelock import FileLock

    dest = Path(dest) if dest is not None else download_dir()
    base, total, done = mirror_url(), sum(GZ_BYTES.values()), 0
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {dest} for the dataset: {e.strerror or e}") from None
    with FileLock(dest / ".download.lock", thread_local=False):
        for name, sha in RAW_SHA256.items():
            target, url = dest / name, base + name
            if not (target.is_file() and _content_sha256(target) == sha):
                tmp = dest / f".{name}.{os.getpid()}.part"
                try:
                    with urllib.request.urlopen(url, timeout=timeout_s) as r, open(tmp, "wb") as f:
                        size = int(r.headers.get("Content-Length") or 0) or GZ_BYTES[name]
                        while chunk := r.read(1 << 16):
                            f.write(chunk)
                            if progress:
                                progress((done + GZ_BYTES[name] * min(f.tell() / size, 1.0)) / total, name)
                    if _content_sha256(tmp) != sha:
                        raise DatasetError(
                            f"{url} is not Fashion-MNIST's {name} (its content differs); nothing was kept"
                        )
                    os.replace(tmp, target)
                except urllib.error.HTTPError as e:
                    raise DatasetError(f"cannot download {url}: the server answered {e.code} {e.reason}") from None
                except (urllib.error.URLError, OSError) as e:
                    reason = getattr(e, "reason", None) or e.strerror or e
                    raise DatasetError(f"cannot download {url}: {reason}. Is this machine online?") from None
                finally:
                    tmp.unlink(missing_ok=True)
            done += GZ_BYTES[name]
            if progress:
                progress(done / total, name)
    return dest
