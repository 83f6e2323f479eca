"""Shared fixtures. The real dataset comes from the setup (Debian package or download)."""

import gzip
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # test tools shared with the scripts (photos.py)
torch.set_num_threads(2)


def idx_bytes(data: np.ndarray) -> bytes:
    """Encode a uint8 array in IDX format (magic 0x0800 + ndim, big-endian dims)."""
    header = struct.pack(">I", 0x0800 + data.ndim) + b"".join(struct.pack(">I", d) for d in data.shape)
    return header + data.astype(np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


@pytest.fixture(scope="session")
def ds():
    from fmnist.data import load_dataset

    return load_dataset()


def private_checkpoints(d: Path) -> Path:
    """Folder `d`, created, holding a copy of the shipped quick model: the app's own checkpoint folder in a test."""
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "checkpoints" / "quick.safetensors", d / "quick.safetensors")
    return d


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    """A private checkpoint folder holding a copy of the shipped quick model (the app reads it)."""
    d = private_checkpoints(tmp_path / "checkpoints")
    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def tiny_model(ds):
    """A quickly trained mlp (subset, 1 epoch): real but cheap."""
    from fmnist.config import TrainConfig
    from fmnist.train import train

    return train(TrainConfig(arch="mlp", epochs=1, subset=2000, batch_size=64, seed=0, precision="fp32"), ds)
