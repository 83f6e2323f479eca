"""Per-sample random augmentation of whole batches: one affine_grid/grid_sample call per batch.

torchvision's v2 transforms draw one random parameter set per call; here every image in the
batch gets its own flip, shift, rotation, zoom and erased square.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import Augment


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random erasing, then flip / shift / rotation / zoom, drawn per sample.

    Args:
        x: float images in [0, 1], (B, 1, 28, 28); the border fills with 0 (background).
        gen: the run's generator, so that a seed reproduces the run.
    """
    if not aug.active:
        return x
    b = x.shape[0]

    def u(scale: float) -> torch.Tensor:  # uniform in [-scale, scale], (B,)
        return (torch.rand(b, generator=gen) * 2 - 1) * scale

    if aug.erase > 0:
        x = random_erase(x, aug.erase, gen, aug.erase_size)
    if not (aug.flip or aug.shift or aug.rotate or aug.zoom):
        return x
    if not (aug.shift or aug.rotate or aug.zoom):  # flip only: no resampling
        flip = torch.rand(b, generator=gen) < 0.5
        return torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-1), x)
    angle = u(math.radians(aug.rotate))
    scale = 1 + u(aug.zoom)
    sx = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if aug.flip else torch.ones(b)
    cos, sin = angle.cos() / scale, angle.sin() / scale
    # affine_grid maps output coords to input coords in [-1, 1]: a shift of f*side is 2f.
    theta = torch.stack(
        [torch.stack([cos * sx, -sin, u(2 * aug.shift)], 1), torch.stack([sin * sx, cos, u(2 * aug.shift)], 1)], 1
    ).to(x.device)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erase(x: torch.Tensor, p: float, gen: torch.Generator | None = None, size: int = 0) -> torch.Tensor:
    """Blank a square in each image with probability p, centred anywhere and clipped at the border.

    Its side is `size` px (Cutout), or random in 4-12 px when size is 0.
    """
    b, _, h, w = x.shape
    side = torch.full((b, 1, 1), size) if size else torch.randint(4, 13, (b, 1, 1), generator=gen)
    y0 = torch.randint(0, h, (b, 1, 1), generator=gen) - side // 2  # top-left corner, may be outside
    x0 = torch.randint(0, w, (b, 1, 1), generator=gen) - side // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    box = (ys >= y0) & (ys < y0 + side) & (xs >= x0) & (xs < x0 + side)  # (B, H, W)
    hit = (torch.rand(b, 1, 1, generator=gen) < p) & box
    return x.masked_fill(hit.unsqueeze(1).to(x.device), 0.0)
