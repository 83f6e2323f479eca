"""Drawn or uploaded image -> the 28x28 input a model sees, following the dataset's own recipe.

Fashion-MNIST was made from product photos by: trimming to the object, resizing the longest
edge to 28, and centring on a 28x28 canvas, light object on a dark background. We do the same,
and keep every intermediate image so the UI can show the student what the network sees.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from .data import IMAGE_SIZE
from .segment import NoGarmentError, one_object, overlay, segment, upright_angle

MAX_FILE_BYTES = 20 * 2**20  # 20 MB
MAX_PIXELS = 40_000_000  # larger images are refused (decompression-bomb guard)
# Pillow composites an animated PNG's frame in a second full-size buffer: twice the memory.
ANIMATED_MAX_PIXELS = 16_000_000
CANVAS_MAX_PIXELS = 2048 * 2048  # a drawing is a 300x300 canvas, x3 on a high-density screen at most
# Only these decoders ever see a user's bytes, whatever the file is called: Pillow would otherwise
# try all of its ~40 formats, PostScript through Ghostscript among them.
try:  # iPhones save HEIC by default: pillow-heif (requirements.txt) teaches Pillow to read it
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = ("HEIF",)
except ImportError:  # pragma: no cover - without it, a HEIC file gets the "not a readable image" message
    HEIF = ()
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", *HEIF)
FORMAT_NAMES = "PNG, JPEG, WebP, BMP, GIF" + (" or HEIC" if HEIF else "")
EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp", "gif", *(["heic", "heif"] if HEIF else [])]
# Full-size decodes at once, server-wide: 30 students uploading 40 MP photos at the same moment
# wait their turn (each one takes a fraction of a second) instead of holding 30 full images in memory.
_DECODE_SLOTS = threading.BoundedSemaphore(2)
_T = Image.Transpose
# EXIF orientation -> the transpose that makes the photo upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}
WORK_SIDE = 512  # big images are shrunk to this before processing: fast, no visible loss
SEGMENT_SIDE = 256  # photos on a light background are segmented at this size
INK_THRESHOLD = 0.08  # fraction of the brightest level that counts as object
# A border darker than 0.5 is dark cloth in a photo when it is above this grey and grainy (its median
# deviation at least CLOTH_GRAIN); a drawing's canvas or a dataset image is black or one flat grey.
DARK_CLOTH = 0.02
CLOTH_GRAIN = 0.003


class ImageError(ValueError):
    """The image cannot be used; the message is one line for the user."""


class BlankImageError(ImageError):
    """The image has no object in it (an empty canvas, a plain sheet)."""


@dataclass
class Preprocessed:
    """Result of preprocessing: the model input and every step for display."""

    image: np.ndarray  # (28, 28) uint8, light object on black, as in the dataset
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (caption, uint8 HxW)
    notes: list[str] = field(default_factory=list)  # what was done and why, for the user
    inverted: bool = False

    def tensor(self) -> torch.Tensor:
        """(1, 28, 28) uint8 tensor, ready for fmnist.runtime.predict_logits."""
        return torch.from_numpy(self.image.copy()).unsqueeze(0)


def read_bytes(source: str | os.PathLike | bytes | io.BytesIO) -> bytes:
    """A file's or buffer's bytes, refusing what is not a regular file or is over MAX_FILE_BYTES."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():  # FIFOs and devices would block or never end
            raise ImageError(f"{p.name}: " + ("not a regular file" if p.exists() else "no such file"))
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{p.name}: file is over {MAX_FILE_BYTES // 2**20} MB")
        data = p.read_bytes()
    else:
        data = source.getvalue() if isinstance(source, io.BytesIO) else bytes(source)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"file is over {MAX_FILE_BYTES // 2**20} MB")
    if not data:
        raise BlankImageError("the file is empty")
    return data


def open_image(
    source: str | os.PathLike | bytes | io.BytesIO,
    notes: list[str] | None = None,
    max_pixels: int = MAX_PIXELS,
    side: int = WORK_SIDE,
) -> Image.Image:
    """Open an image file or bytes: its first frame, upright, with its longest side at most `side`.

    Only FORMATS are tried, whatever the file's name says. An image over `max_pixels` is refused
    from its header, before anything is decoded; a JPEG is decoded at a reduced scale where that
    still gives `side` pixels, so the limit applies to what is decoded (phones' 48 MP photos pass).
    Decoding and shrinking happen in one of two server-wide slots, and
    the full-size image is dropped before the slot is given back, so memory stays bounded when a
    whole class uploads at once. What was done goes into `notes` (animation, EXIF orientation).

    Raises:
        ImageError: with a one-line reason, for anything unreadable, damaged or too large.
    """
    data = read_bytes(source)
    notes = [] if notes is None else notes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = img.size
            if img.format == "JPEG" and max(w, h) > 2 * side:
                img.draft(img.mode, (side, side))  # decode at 1/2, 1/4 or 1/8 scale: a 48 MP photo costs 0.75 MP
            animated = getattr(img, "n_frames", 1) > 1
            limit = min(max_pixels, ANIMATED_MAX_PIXELS) if animated else max_pixels
            if img.width * img.height > limit:  # what will really be decoded
                kind = "animated image" if animated else "image"
                raise ImageError(f"{kind} is {w}x{h}: too large (limit {limit / 10**6:.0f} MP)")
            with _DECODE_SLOTS:
                return _first_frame_small(img, notes, side)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a readable image: use {FORMAT_NAMES}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image is too large to decode safely (limit {max_pixels / 10**6:.0f} MP)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"the image is damaged or truncated ({str(e)[:80]})") from None


def _first_frame_small(img: Image.Image, notes: list[str], side: int) -> Image.Image:
    """Frame 0, decoded, upright (EXIF orientation applied), longest side at most `side`.

    Returns a new image; `img` is never modified. The big frame is never copied: the shrink
    reads it once, so an animated or huge image costs one decoded frame.
    """
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        notes.append(f"Animated image with {frames} frames: using the first frame.")
        img.seek(0)
    img.load()
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block is ignored, as photo viewers do
        orientation = 1
    if max(img.size) > side:
        scale = side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        out = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    else:
        out = img.copy()  # small: cheap, and a plain single-frame image
    if orientation in _UPRIGHT:
        out = out.transpose(_UPRIGHT[orientation])
        turns = {3: "turned 180°", 6: "turned 90° clockwise", 8: "turned 90° anticlockwise"}
        turn = turns.get(orientation, "mirrored")
        notes.append(f"The photo was stored sideways or mirrored (EXIF orientation {orientation}): {turn} upright.")
    return out


def to_gray(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Any PIL mode -> float32 gray (H, W) in [0, 1]. Transparency becomes background."""
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


def preprocess(
    source: Image.Image | np.ndarray | bytes | str | os.PathLike, max_pixels: int = MAX_PIXELS
) -> Preprocessed:
    """Turn a drawing, photo or file into a dataset-like 28x28 image, keeping every step.

    Steps: first frame only, turned upright from its EXIF orientation, shrunk to WORK_SIDE ->
    grayscale -> a product shot on white is inverted; a photo on a light table or on dark cloth is
    segmented and the garment negated (fmnist.segment) -> stretch contrast -> trim to the
    object's bounding box -> resize the longest side to 28 (keeping the aspect ratio) -> centre
    on a 28x28 black canvas. Normalisation happens in the model's input path (fmnist.runtime.to_input).

    Raises:
        ImageError: unreadable, damaged, too large, blank or unsupported images.
    """
    try:
        return _preprocess(source, max_pixels)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError, SyntaxError, EOFError, MemoryError) as e:  # e.g. exotic modes
        raise ImageError(f"cannot process this image ({type(e).__name__}: {str(e)[:80]})") from None


def _preprocess(source: Image.Image | np.ndarray | bytes | str | os.PathLike, max_pixels: int) -> Preprocessed:
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        img = Image.fromarray(source.astype(np.uint8) if source.dtype != np.uint8 else source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        img = open_image(source, notes, max_pixels)
    if img.width < 1 or img.height < 1:
        raise ImageError("the image is empty")
    if isinstance(source, (Image.Image, np.ndarray)):
        img = _first_frame_small(img, notes, WORK_SIDE)
    gray = to_gray(img, notes)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    level = float(np.median(border))
    grain = float(np.median(np.abs(border - level)))  # a photo's cloth has grain; a digital canvas has none
    inverted = level > 0.5 or (level > DARK_CLOTH and grain >= CLOTH_GRAIN)  # a photo: negated, as the dataset
    if level > 0.5 and float(np.percentile(border, 5)) > 0.97:  # a clean product shot on white, as the dataset's
        crop, steps = _on_dark_background(1.0 - gray, product=True)  # sources: invert, trim what is not white
        notes.append("White background: inverted, since the dataset has light objects on black.")
    elif inverted:  # a photo (or a sketch) on a light table or on dark cloth: find the garment, negate it
        crop, steps = _photo(img, gray, notes)
    else:  # a drawing on black, or a dataset-style image: light object on dark, as the dataset
        crop, steps = _on_dark_background(gray)

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


def _trim(ink: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`ink` cut to the bounding box of `where`, stretched so its brightest pixel is 1."""
    ys, xs = np.nonzero(where)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return crop / max(float(crop.max()), 1e-6)


def _on_dark_background(gray: np.ndarray, product: bool = False) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Light object on dark: subtract the border's level, trim to what is left.

    `product`: `gray` is a product shot on white, already inverted; it must show one garment.
    """
    step2 = "2. Inverted" if product else "2. Dark background kept"
    steps = [("1. Grayscale", _u8(1.0 - gray if product else gray)), (step2, _u8(gray))]
    bg = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    ink = np.clip(gray - bg, 0, None)
    peak = float(ink.max())
    if peak < 0.05:
        raise BlankImageError("the image is blank: there is no object to classify")
    where = ink > INK_THRESHOLD * peak
    if product:  # a product shot shows one garment: two apart are refused, as in a photo
        k = max(1, -(-max(where.shape) // SEGMENT_SIDE))
        try:
            one_object(where[::k, ::k])
        except NoGarmentError as e:
            raise ImageError(str(e)) from None
    crop = _trim(ink, where)
    steps.append((f"3. Trimmed to object ({crop.shape[1]}x{crop.shape[0]})", _u8(crop)))
    return crop, steps


def _photo(img: Image.Image, gray: np.ndarray, notes: list[str]) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Photo or sketch on a light table or dark cloth: fmnist.segment finds the garment and negates it."""
    if max(img.size) > SEGMENT_SIDE:  # the garment ends up 28 px tall: 256 px is plenty, and 4x faster
        scale = SEGMENT_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BOX)
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX), dtype=np.float32)
    transparent = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if img.mode in ("RGB", "P", "CMYK", "YCbCr", "RGBA") and not transparent:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    else:  # grey, 16-bit or transparent images: to_gray's grey (transparency already filled), as colour
        rgb = np.repeat(gray[..., None], 3, -1)
    if float(np.ptp(gray)) < 0.05 and float(np.ptp(rgb)) < 0.05:
        raise BlankImageError("the image is blank: there is no object to classify")
    try:
        seg = segment(rgb)
    except NoGarmentError as e:
        raise ImageError(str(e)) from None
    notes.append("Photo: the garment was found and inverted, as the dataset's product shots were.")
    notes.extend(seg.notes)
    steps = [("1. Photo", _u8(rgb)), ("2. Garment found (outlined)", overlay(rgb, seg.mask))]
    ink, mask = seg.ink, seg.mask
    angle = upright_angle(mask)
    way = "clockwise" if angle < 0 else "anticlockwise"
    if angle:  # taken at a slant: stand it up, as the dataset's garments stand
        ink = ndimage.rotate(ink, angle, reshape=True, order=1, prefilter=False)
        mask = ndimage.rotate(mask.astype(np.float32), angle, reshape=True, order=1, prefilter=False) > 0.5
        notes.append(
            f"The garment lay at a slant: it was turned {abs(angle):g} degrees {way}, the turn that fits it in "
            "the smallest upright box, as the dataset's garments stand straight."
        )
    crop = _trim(ink, mask)
    how = "Negated from its brightest part" if seg.dark else "On white, negated"
    turned = f", turned {abs(angle):g}° {way}" if angle else ""
    steps.append((f"3. {how}{turned}, trimmed ({crop.shape[1]}x{crop.shape[0]})", _u8(crop)))
    return crop, steps
