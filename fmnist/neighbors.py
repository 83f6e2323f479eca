"""Nearest training images to a query, by cosine similarity of pixels (one matmul, ~50 ms)."""

from __future__ import annotations

import numpy as np
import torch

_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _bank(images: torch.Tensor) -> torch.Tensor:
    """Unit-norm pixel rows (N, 784), computed once per image tensor."""
    hit = _cache.get(id(images))
    if hit is not None and hit[0] is images:
        return hit[1]
    x = images.reshape(len(images), -1).float()
    bank = x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)
    _cache.clear()
    _cache[id(images)] = (images, bank)
    return bank


def nearest(images: torch.Tensor, query: torch.Tensor, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k images in `images` (N, 28, 28) closest to `query`."""
    q = query.reshape(-1).float()
    top = (_bank(images) @ (q / q.norm().clamp_min(1e-6))).topk(k)
    return top.indices.numpy(), top.values.numpy()
