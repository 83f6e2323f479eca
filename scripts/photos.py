"""Photo-style test images made from Fashion-MNIST test images: what a student's upload looks like.

The dataset was made from product photos: the garment on white, trimmed, shrunk and negated.
`render` runs that backwards, then adds what a phone photo adds, at one of several levels:

- ``product``: a clean product shot. The garment in its own (darkish) colour on white, off-centre,
  in a large RGB JPEG. Its grey level is the negated dataset image, scaled by the colour's darkness.
- ``phone``: a phone photo of the garment lying on a table. A light, uneven background (a colour
  gradient and grain), a soft shadow, rotated up to 12 degrees, tilted as by a hand-held phone,
  slightly blurred, JPEG.
- ``hard``: ``phone`` plus a striped table (wood grain), stronger light fall-off, up to 20 degrees,
  a stronger tilt, and light garments on light tables half of the time.
- ``dark``: a light garment on dark cloth (a dark bed sheet or floor): a dark, tinted fabric with
  soft folds, a fine weave and light fall-off; otherwise as ``phone``.
- ``portrait``: ``phone`` as a 1500x2000 portrait photo stored on its side (2000x1500 pixels) with
  EXIF orientation 6, as phones save it.

`render_empty` (a table, no garment), `render_two` (two garments) and `render_closeup` (a garment
running past the edges of the frame) make photos that must be refused. The images are generated,
never stored: `photo_set(images, labels, level, n, seed)`
gives the same set for the same seed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFilter

LEVELS = ("product", "phone", "hard", "dark", "portrait")
SIZE = (1024, 768)  # width, height of a rendered photo
PORTRAIT = (1500, 2000)  # the portrait level's upright size; its pixels are stored as 2000x1500


def _tint(rng: np.random.Generator, light: bool = False) -> np.ndarray:
    """A garment colour (RGB, 0-1), scaled so its luminance is about 1 (the shading sets the level)."""
    c = rng.uniform(0.25, 1.0, 3) if not light else rng.uniform(0.75, 1.0, 3)
    lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    return c / lum


def _garment(image28: np.ndarray, side: int) -> np.ndarray:
    """The dataset image enlarged to `side` px (float 0-1, light = garment)."""
    big = Image.fromarray(np.asarray(image28, np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, np.float32) / 255.0, 0, 1)


def _size(level: str, size: tuple[int, int] | None) -> tuple[int, int]:
    return size or (PORTRAIT if level == "portrait" else SIZE)


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """(h, w) smooth random field in about -1..1, varying over `cells` cells across the longer side."""
    cw, ch = max(2, cells * w // max(w, h)), max(2, cells * h // max(w, h))
    coarse = Image.fromarray(rng.uniform(-1, 1, (ch, cw)).astype(np.float32), "F")
    return np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), np.float32)


def _cloth(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """(h, w, 3) float 0-1: dark cloth: a dark tinted colour, soft folds, a fine weave, light fall-off."""
    colour = rng.uniform(0.5, 1.0, 3)
    cloth = np.broadcast_to(colour * rng.uniform(0.06, 0.22), (h, w, 3)).astype(np.float32)
    folds = 1 + rng.uniform(0.15, 0.35) * _smooth_noise(rng, w, h, int(rng.integers(4, 9)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(3, 6)  # px: the weave
    weave = 1 + 0.06 * np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)
    cloth = cloth * (folds * weave)[..., None] + rng.normal(0, 0.015, (h, w, 1))
    return np.clip(cloth, 0, 1).astype(np.float32)


def _light(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The whole scene, garment included, lit from one side: up to 30% less light across the photo."""
    h, w, _ = photo.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    return photo * (1 - 0.3 * np.hypot(xx - cx, yy - cy) / np.hypot(w, h))[..., None]


def _background(level: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """(h, w, 3) float 0-1: white for product shots, dark cloth for ``dark``, else a light uneven table."""
    if level == "product":
        return np.ones((h, w, 3), np.float32)
    if level == "dark":
        return _cloth(rng, w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)) + 0.5  # 0..1 across the photo
    a, b = rng.uniform(0.66, 0.93, 3), rng.uniform(0.66, 0.93, 3)  # two light colours
    bg = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    fall = 0.25 if level == "hard" else 0.12  # light falls off towards one corner
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = np.hypot(xx - cx, yy - cy) / np.hypot(w, h)
    bg = bg * (1 - fall * r[..., None])
    if level == "hard":  # wood-like stripes
        theta = rng.uniform(0, np.pi)
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) / rng.uniform(18, 40)
        bg = bg * (1 - rng.uniform(0.05, 0.12) * (0.5 + 0.5 * np.sin(phase + 2 * np.sin(phase / 7))))[..., None]
    bg = bg + rng.normal(0, 0.02, (h, w, 1))  # grain
    return np.clip(bg, 0, 1).astype(np.float32)


def _place(
    w: int, h: int, rng: np.random.Generator, frac: tuple[float, float], near_middle: bool = False
) -> tuple[int, int, int]:
    """(x, y, side) of a square garment box inside the photo, off-centre (less so when the photo is
    to be rotated: the garment must stay in the frame)."""
    side = int(min(w, h) * rng.uniform(*frac))
    lo, hi = (0.25, 0.75) if near_middle else (0.05, 0.95)
    x, y = int(rng.uniform(lo, hi) * (w - side)), int(rng.uniform(lo, hi) * (h - side))
    return x, y, side


def _composite(
    photo: np.ndarray, image28: np.ndarray, level: str, rng: np.random.Generator, box: tuple[int, int, int]
) -> np.ndarray:
    """Lay one garment on `photo` (in place and returned)."""
    x, y, side = box
    g = _garment(image28, side)
    light = level == "dark" or (level == "hard" and rng.random() < 0.5)
    tint = _tint(rng, light)
    if level == "product":  # white where the dataset is black; the garment's darkness follows the dataset
        dark = 1.0 - np.clip(tint * rng.uniform(0.1, 0.35), 0, 1)  # how much of each channel the garment absorbs
        garment = 1.0 - g[..., None] * dark[None, None]
        alpha = np.ones_like(g)
    else:
        depth = rng.uniform(0.45, 0.75) if not light else rng.uniform(0.15, 0.3)
        garment = np.clip((1.0 - depth * g)[..., None] * tint[None, None] * (0.92 if not light else 1.0), 0, 1)
        alpha = np.clip(g * 6.0, 0, 1)  # the garment covers where the dataset image has any ink
        shadow = np.asarray(
            Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(side / 25)), np.float32
        )
        dx, dy = int(side * rng.uniform(0.01, 0.04)), int(side * rng.uniform(0.01, 0.04))
        region = photo[y + dy : y + dy + side, x + dx : x + dx + side]
        s = shadow[: region.shape[0], : region.shape[1]] / 255.0
        region *= 1 - 0.3 * s[..., None]
    region = photo[y : y + side, x : x + side]
    a = alpha[: region.shape[0], : region.shape[1], None]
    region[:] = region * (1 - a) + garment[: region.shape[0], : region.shape[1]] * a
    return photo


def _finish(photo: np.ndarray, level: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Rotate, tilt and blur as a hand-held phone does, then crop to `size` from the middle of the
    larger rendered table (so no corner shows past the table); the product level stays clean."""
    if level == "dark":
        photo = _light(photo, rng)
    img = Image.fromarray((np.clip(photo, 0, 1) * 255).astype(np.uint8), "RGB")
    if level != "product":
        w, h = img.size
        img = img.rotate(rng.uniform(-1, 1) * (20 if level == "hard" else 12), Image.Resampling.BICUBIC)
        k = (0.08 if level == "hard" else 0.04) / max(w, h)  # a perspective (keystone) tilt of 8% / 4%
        coeffs = [
            1,
            rng.uniform(-0.02, 0.02),
            0,
            rng.uniform(-0.02, 0.02),
            1,
            0,
            rng.uniform(-k, k),
            rng.uniform(-k, k),
        ]
        img = img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.6)))
    left, top = (img.width - size[0]) // 2, (img.height - size[1]) // 2
    return img.crop((left, top, left + size[0], top + size[1]))


def _jpeg(img: Image.Image, rng: np.random.Generator, level: str = "") -> bytes:
    """The photo as a phone's JPEG; at the portrait level stored on its side, with EXIF orientation 6
    (turn 90 degrees clockwise to view) as phones store portrait photos."""
    buf = io.BytesIO()
    quality = int(rng.integers(78, 93))
    if level == "portrait":
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _check(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")


def render(image28: np.ndarray, level: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> bytes:
    """One photo-style JPEG of the 28x28 uint8 dataset image (light garment on black)."""
    _check(level)
    w, h = size = _size(level, size)
    mw, mh = _margin(level, w), _margin(level, h)
    photo = _background(level, rng, w + 2 * mw, h + 2 * mh)
    x, y, side = _place(w, h, rng, (0.45, 0.8) if level == "product" else (0.5, 0.8), level != "product")
    _composite(photo, image28, level, rng, (x + mw, y + mh, side))
    return _jpeg(_finish(photo, level, rng, size), rng, level)


def _margin(level: str, side: int) -> int:
    """Extra table around the photo, cropped away after rotating and tilting."""
    return int(side * {"product": 0, "hard": 0.3}.get(level, 0.22))


def render_empty(level: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> bytes:
    """A photo of the table alone."""
    _check(level)
    w, h = size = _size(level, size)
    photo = _background(level, rng, w + 2 * _margin(level, w), h + 2 * _margin(level, h))
    return _jpeg(_finish(photo, level, rng, size), rng, level)


def render_closeup(
    image28: np.ndarray, level: str, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> bytes:
    """A close-up: the garment 1.6-2 times the photo's shorter side, running past its edges."""
    _check(level)
    w, h = size = _size(level, size)
    mw, mh = _margin(level, w), _margin(level, h)
    photo = _background(level, rng, w + 2 * mw, h + 2 * mh)
    side = int(min(w, h) * rng.uniform(1.6, 2.0))
    _composite(photo, image28, level, rng, (mw + (w - side) // 2, mh + (h - side) // 2, side))
    return _jpeg(_finish(photo, level, rng, size), rng, level)


def render_two(
    a28: np.ndarray, b28: np.ndarray, level: str, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> bytes:
    """Two garments apart, side by side along the photo's longer side."""
    _check(level)
    w, h = size = _size(level, size)
    mw, mh = _margin(level, w), _margin(level, h)
    photo = _background(level, rng, w + 2 * mw, h + 2 * mh)
    long, short = max(w, h), min(w, h)
    side = int(min(long / 2, short) * 0.75)
    across = (short - side) // 2
    for garment, along in ((a28, int(long * 0.04)), (b28, int(long * 0.96) - side)):
        x, y = (along, across) if w >= h else (across, along)
        _composite(photo, garment, level, rng, (mw + x, mh + y, side))
    return _jpeg(_finish(photo, level, rng, size), rng, level)


def photo_set(
    images: np.ndarray, labels: np.ndarray, level: str, n: int, seed: int = 0
) -> Iterator[tuple[bytes, int, int]]:
    """(jpeg bytes, label, test index) for n test images, class-balanced, the same for the same seed."""
    rng = np.random.default_rng(seed)
    per = -(-n // 10)
    idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in range(10)])
    for i in rng.permutation(idx)[:n]:
        yield render(images[i], level, rng), int(labels[i]), int(i)
