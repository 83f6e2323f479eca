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

    if aug.photo > 0:
        x = photo_like(x, aug.photo, gen)
    if aug.crop:  # torchvision's order: crop, flip, then erase (Cutout) last
        x = random_crop(x, aug.crop, gen)
        if aug.flip:
            flip = torch.rand(b, generator=gen) < 0.5
            x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-1), x)
        return random_erase(x, aug.erase, gen, aug.erase_size, aug.erase_value) if aug.erase > 0 else x
    if aug.erase > 0:
        x = random_erase(x, aug.erase, gen, aug.erase_size, aug.erase_value)
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


def photo_like(x: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """With probability p per image, what fmnist.preprocess leaves of a phone photo of the garment.

    The silhouette stays; its inside is refilled as a photo's garment comes out: a raised floor
    (a light fabric), compressed or negated detail, light falling off across it; the edge softens
    (blur); a faint strip of table may be left along one border; and the result is stretched so
    its brightest pixel is 1, as the preprocessing's trim does.
    """
    b, _, h, w = x.shape

    def u(lo: float, hi: float) -> torch.Tensor:  # (B, 1, 1, 1) uniform in [lo, hi)
        return (lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen)).to(x.device)

    silhouette = (x > 0.05).float()
    negate = (torch.rand(b, 1, 1, 1, generator=gen) < 0.3).to(x.device)
    detail = torch.where(negate, 1 - x, x)
    ys = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1)
    xs = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w)
    light = 1 + u(-0.2, 0.2) * xs + u(-0.2, 0.2) * ys
    fill = silhouette * (u(0.0, 0.6) + u(0.15, 1.0) * detail) * light
    soft = F.avg_pool2d(F.pad(fill, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    fill = torch.lerp(fill, soft, u(0.0, 1.0))
    side = torch.randint(0, 4, (b,), generator=gen).to(x.device)  # the border the table strip is on
    edge = torch.zeros(b, 1, h, w, device=x.device)
    edge[side == 0, :, :2] = 1
    edge[side == 1, :, -2:] = 1
    edge[side == 2, :, :, :2] = 1
    edge[side == 3, :, :, -2:] = 1
    leftover = (torch.rand(b, 1, 1, 1, generator=gen) < 0.3).to(x.device)
    fill = torch.maximum(fill, edge * leftover * u(0.05, 0.3))
    out = fill / fill.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)
    pick = (torch.rand(b, 1, 1, 1, generator=gen) < p).to(x.device)
    return torch.where(pick, out, x)


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Each image padded by `pad` black px on every side and cut back at a random whole-pixel offset."""
    b, _, h, w = x.shape
    big = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen).to(x.device)
    rows = oy + torch.arange(h, device=x.device).view(1, h, 1)  # (B, H, 1)
    cols = ox + torch.arange(w, device=x.device).view(1, 1, w)  # (B, 1, W)
    return big[torch.arange(b, device=x.device).view(b, 1, 1), :, rows, cols].permute(0, 3, 1, 2)


def random_erase(
    x: torch.Tensor, p: float, gen: torch.Generator | None = None, size: int = 0, value: float = 0.0
) -> torch.Tensor:
    """Fill a square in each image with grey `value` with probability p, centred anywhere and clipped
    at the border.

    Its side is `size` px (Cutout), or random in 4-12 px when size is 0.
    """
    b, _, h, w = x.shape
    side = torch.full((b, 1, 1), size) if size else torch.randint(4, 13, (b, 1, 1), generator=gen)
    y0 = torch.randint(0, h, (b, 1, 1), generator=gen) - side // 2  # top-left corner, may be outside
    x0 = torch.randint(0, w, (b, 1, 1), generator=gen) - side // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    box = (ys >= y0) & (ys < y0 + side) & (xs >= x0) & (xs < x0 + side)  # (B, H, W)
    hit = (torch.rand(b, 1, 1, generator=gen) < p) & box
    return x.masked_fill(hit.unsqueeze(1).to(x.device), value)
