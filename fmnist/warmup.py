"""A warm start for training workers: the job manager's fork server imports this module once.

Every local training run is a process forked from one fork server (`fmnist.jobs`). A fresh PyTorch
process spends its first training steps on one-time set-up (oneDNN picks and builds its kernels for
each layer's shapes); for the student preset that was about 2.3 s of an 8 s run on a 2-core CPU.
Importing this module runs a few steps of the student preset's model on random images in the fork
server, so every worker forked from it starts with that set-up done. It uses one thread, so the
server holds no thread pool that a forked worker would inherit (each worker sets its own threads),
and the CPU only: touching CUDA here would break every CUDA worker forked after it. It never raises:
a failed warm-up only leaves the workers cold.
"""

from __future__ import annotations

import time

import torch

from .config import preset_config
from .data import load_dataset
from .runtime import pick_precision, predict_logits
from .train import Trainer

STEPS = 3  # enough for every layer's forward and backward kernels to be made

seconds: float | None = None  # how long the warm-up took here; None if it failed
data_loaded = False  # whether the dataset is loaded here, for the workers to share


def warm_up(preset: str = "student", steps: int = STEPS) -> float:
    """Train `preset`'s model for `steps` batches of random images, then validate once; the seconds taken."""
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    cfg = preset_config(preset)
    cpu = torch.device("cpu")
    precision = pick_precision(cfg.precision, cpu)
    gen = torch.Generator().manual_seed(0)
    trainer = Trainer.build(cfg, steps, cpu, precision, gen)
    images = torch.randint(0, 256, (cfg.batch_size, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (cfg.batch_size,), generator=gen)
    for _ in range(steps):
        trainer.step(images, labels)
    predict_logits(trainer.model, images, precision=precision)  # the validation pass, in eval mode
    return time.perf_counter() - t0


def preload_data() -> bool:
    """Load the dataset (where `load_dataset` looks by default) once, here: every worker forked from
    this server then finds it loaded, sharing its pages, instead of reading, decompressing and
    checking the four files itself (0.26-0.36 s of each student run on a 2-core AMD EPYC). A worker
    given another folder loads that one itself. False, without raising, when it cannot be loaded."""
    try:
        load_dataset()
    except Exception:  # the worker will say why, in one line, when it loads the data itself
        return False
    return True


try:
    seconds = warm_up()
except Exception:  # an optimisation only: the workers start cold
    seconds = None
data_loaded = preload_data()
