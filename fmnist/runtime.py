"""Where and how a model runs: device and precision choice, the input path, and `predict_logits`.

Training (fmnist.train), evaluation, explanations, the benchmark and the app all run models
through here, so an image is normalised the same way everywhere.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

import torch
from torch import nn

from .config import ConfigError
from .data import MEAN, STD
from .models import tta_logits

# The CPU features that decide which precision pays and how fast a run is.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

# glibc's mallopt parameters (malloc.h) and what keep_freed_memory sets them to.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_MMAP_BYTES = 32 * 2**20  # the largest threshold glibc takes on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
KEEP_TRIM_BYTES = 1 * 2**30  # free memory kept at the top of the heap before any goes back


def keep_freed_memory(libc: object | None = None) -> bool:
    """Have glibc's malloc keep freed blocks for the next step instead of handing them back to the OS.

    By default glibc gives a block of 128 KiB or more its own mmap and hands it back when freed, so
    a training step's activations and gradients often arrive as fresh pages that the kernel must
    fault in and zero: a median of 2,055 page faults per cnn2 step (fp32, batch 128, 11 MB blocks)
    on a 2-core AMD EPYC (avx2 only), 21 with this, and the step 1.10x faster (docs/RELIABILITY.md).
    Blocks up to 32 MiB then come from the heap and stay there: the process keeps its peak memory
    until it exits. Not on by default: with it in every trainer, the class-load test failed once
    (tests/test_load.py, one run each way); `scripts/freed_memory.py` calls it to measure it.

    Returns whether both settings took: False where the C library is not
    glibc (macOS, Windows, musl), or `mallopt` refuses. `libc` is for tests (default: this process's).
    """
    if libc is None:
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None)
        except OSError:
            return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return mallopt(M_MMAP_THRESHOLD, KEEP_MMAP_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_BYTES) == 1


def pick_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple MPS, then CPU; a named device that is absent is an error."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise ConfigError("device 'mps' requested but Apple MPS is not available")
    return torch.device(name)


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags() -> list[str]:
    """Which of CPU_FLAGS this CPU has (empty where /proc/cpuinfo is absent)."""
    words = set(_cpuinfo().split())
    return [f for f in CPU_FLAGS if f in words]


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); then autocast pays."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def machine() -> dict[str, object]:
    """What a timing depends on: CPU model and flags, cores, torch threads, GPU."""
    model = next((ln.split(":", 1)[1].strip() for ln in _cpuinfo().splitlines() if ln.startswith("model name")), "")
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def machine_line(m: dict[str, object] | None = None) -> str:
    """'AMD EPYC, 2 cores, flags avx2, avx512f': how every timing's caption names the machine (default: this one)."""
    m = machine() if m is None else m
    return f"{m['cpu']}, {m['cores']} cores, flags {', '.join(m['cpu_flags']) or 'none'}"  # type: ignore[arg-type]


def pick_precision(precision: str, device: torch.device) -> str:
    """'auto' becomes bf16 where the device computes it natively, else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, 28, 28) or float [0,1] (B, 1, 28, 28) -> normalised float (B, 1, 28, 28)."""
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    x = x.unsqueeze(1) if x.dim() == 3 else x
    x = (x - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def device_of(model: nn.Module) -> torch.device:
    """Where `model`'s weights are (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 1000,
    tta_flip: bool = False,
    device: torch.device | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Logits (N, 10) in float32 on the CPU for uint8 (N, 28, 28) or [0,1] (N, 1, 28, 28) images.

    Args:
        tta_flip: average the logits of each image and its mirror image.
        device: where to run (default: where the model's weights are).
        precision: 'fp32' or 'bf16' (autocast).
    """
    device = device or device_of(model)
    was_training = model.training
    model.eval()
    cl = has_conv(model)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(images[i : i + batch_size].to(device), cl)
        with autocast(device, precision):
            logits = tta_logits(model, x, tta_flip)
        out.append(logits.cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)
