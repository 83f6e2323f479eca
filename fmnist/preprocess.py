"""Drawn or uploaded image -> the 28x28 input a model sees, following the dataset's own recipe.

Fashion-MNIST was made from product photos by: trimming to the object, resizing the longest
edge to 28, and centring on a 28x28 canvas, light object on a dark background. We do the same,
and keep every intermediate image so the UI can show the student what the network sees.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data import IMAGE_SIZE

MAX_FILE_BYTES = 20 * 2**20  # 20 MB
MAX_PIXELS = 40_000_000  # larger images are refused (decompression-bomb guard)
WORK_SIDE = 512  # big images are shrunk to this before processing: fast, no visible loss
INK_THRESHOLD = 0.08  # fraction of the brightest level that counts as object


class ImageError(ValueError):
    """The image cannot be used; the message is one line for the user."""


@dataclass
class Preprocessed:
    """Result of preprocessing: the model input and every step for display."""

    image: np.ndarray  # (28, 28) uint8, light object on black, as in the dataset
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (caption, uint8 HxW)
    notes: list[str] = field(default_factory=list)  # what was done and why, for the user
    inverted: bool = False

    def tensor(self) -> torch.Tensor:
        """(1, 28, 28) uint8 tensor, ready for fmnist.train.predict_logits."""
        return torch.from_numpy(self.image.copy()).unsqueeze(0)


def open_image(source: str | os.PathLike | bytes | io.BytesIO) -> Image.Image:
    """Open and fully decode an image file or bytes; raise ImageError on anything bad."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise ImageError(f"{p}: no such file")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{p.name}: file is over {MAX_FILE_BYTES // 2**20} MB")
        data = p.read_bytes()
    else:
        data = source.getvalue() if isinstance(source, io.BytesIO) else bytes(source)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"file is over {MAX_FILE_BYTES // 2**20} MB")
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"image is {img.width}x{img.height}: too large (limit {MAX_PIXELS // 10**6} MP)")
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"not a readable image ({type(e).__name__})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"the image is damaged or truncated ({str(e)[:80]})") from None
    return img


def to_gray(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Any PIL mode -> float32 gray (H, W) in [0, 1]. Transparency becomes background."""
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"Animated image with {img.n_frames} frames: using the first frame.")
        img.seek(0)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        notes.append(f"{img.mode} image ({lo:g}..{hi:g}) rescaled to 8 bits.")
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if img.mode == "CMYK":
        notes.append("CMYK image converted to RGB.")
        img = img.convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if alpha.min() < 0.99:
            # Put the object on a background that contrasts with it, so a white sketch on a
            # transparent canvas and a dark photo cut-out both survive.
            ink = gray[alpha > 0.5]
            bg = 0.0 if ink.size and ink.mean() > 0.5 else 1.0
            notes.append("Transparent background filled with " + ("black." if bg == 0.0 else "white."))
            gray = gray * alpha + bg * (1 - alpha)
        return gray
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def preprocess(source: Image.Image | np.ndarray | bytes | str | os.PathLike) -> Preprocessed:
    """Turn a drawing, photo or file into a dataset-like 28x28 image, keeping every step.

    Steps: grayscale -> invert if the background is light -> stretch contrast -> trim to the
    object's bounding box -> resize the longest side to 28 (keeping the aspect ratio) -> centre
    on a 28x28 black canvas. Normalisation happens in the model's input path (fmnist.train).

    Raises:
        ImageError: unreadable, damaged, too large, blank or unsupported images.
    """
    try:
        return _preprocess(source)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError, SyntaxError, EOFError, MemoryError) as e:  # e.g. exotic modes
        raise ImageError(f"cannot process this image ({type(e).__name__}: {str(e)[:80]})") from None


def _preprocess(source: Image.Image | np.ndarray | bytes | str | os.PathLike) -> Preprocessed:
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        img = Image.fromarray(source.astype(np.uint8) if source.dtype != np.uint8 else source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        img = open_image(source)
    if img.width < 1 or img.height < 1:
        raise ImageError("the image is empty")
    if max(img.size) > WORK_SIDE and getattr(img, "n_frames", 1) == 1:
        img = img.copy()
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    gray = to_gray(img, notes)
    steps = [("1. Grayscale", _u8(gray))]

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    inverted = bool(np.median(border) > 0.5)
    if inverted:
        gray = 1.0 - gray
        notes.append("Light background: inverted, since the dataset has light objects on black.")
    steps.append(("2. Inverted" if inverted else "2. Dark background kept", _u8(gray)))

    bg = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    gray = np.clip(gray - bg, 0, None)
    peak = float(gray.max())
    if peak < 0.05:
        raise ImageError("the image is blank: there is no object to classify")
    gray = gray / peak
    ys, xs = np.nonzero(gray > INK_THRESHOLD)
    crop = gray[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    steps.append((f"3. Trimmed to object ({crop.shape[1]}x{crop.shape[0]})", _u8(crop)))

    h, w = crop.shape
    scale = IMAGE_SIZE / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray(_u8(crop)).resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    steps.append((f"4. Longest side to 28 ({nw}x{nh})", np.asarray(small)))

    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    canvas.paste(small, ((IMAGE_SIZE - nw + 1) // 2, (IMAGE_SIZE - nh + 1) // 2))  # odd gaps: as the dataset
    final = np.asarray(canvas, dtype=np.uint8)
    steps.append(("5. Centred on 28x28: what the model sees", final))
    return Preprocessed(final, steps, notes, inverted)
