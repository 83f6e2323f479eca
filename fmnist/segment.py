"""Find the one garment in a photo on a light, uneven background (a table, a bed, a floor).

Fashion-MNIST was made from product shots on white. A phone photo has a table instead: a colour
gradient, grain, a shadow, stripes. `segment` models the table as a smooth surface fitted to the
photo's border, measures each pixel's colour distance from it, thresholds that with Otsu's
method (never below the table's own noise), keeps the largest region with its holes filled, and
then divides the photo by the table (flat-field), which puts the garment on white as the dataset's
own conversion did. When there is not exactly one clear object it raises `NoGarmentError` with
what was seen and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from skimage.filters import threshold_otsu
from skimage.morphology import disk

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
MIN_AREA = 0.01  # the garment covers at least 1% of the photo
SECOND = 0.3  # another region this size of the largest (and >= MIN_AREA) means two objects
MAX_AREA = 0.85  # a "garment" covering more than this is the background, or a close-up
TABLE_MARGIN = 1.5  # the garment differs from the table by this much more than the border's own 99th percentile
HUE_FLOOR = 0.02  # and by this much hue at least (a plain table's own hue varies by about 0.01)
HUE_MIN_LEVEL = 0.4  # hue counts only on a table lighter than this (grey level of the fitted surface)
# On dark cloth there is no white to divide by: the garment's brightest part is taken to reflect this
# much of white (a light fabric), so that its darker details become ink as the dataset's negation makes them.
LIGHT_FABRIC = 0.85
# A garment photographed at a slant is turned upright: the dataset's garments stand straight in their box.
MAX_TILT = 25.0  # degrees either way; a photo more askew than this is taken as meant
TILT_GAIN = 0.03  # turned only if that shrinks the garment's upright box by at least 3% (a slack
# bound: a near-upright garment is left alone)


class NoGarmentError(ValueError):
    """The photo does not show one clear garment; the message says what to do."""


@dataclass
class Segmentation:
    mask: np.ndarray  # (H, W) bool, the garment
    ink: np.ndarray  # (H, W) float 0-1: the garment on white, negated (light = garment), 0 off it
    background: np.ndarray  # (H, W, 3) float 0-1: the fitted table
    threshold: float
    notes: list[str]
    dark: bool = False  # the garment was lighter than its background (dark cloth)


def border_band(h: int, w: int, band: float = 0.02) -> np.ndarray:
    """(H, W) bool: the outer `band` of the photo (at least 3 px)."""
    b = max(3, int(min(h, w) * band))
    edge = np.zeros((h, w), bool)
    edge[:b], edge[-b:], edge[:, :b], edge[:, -b:] = True, True, True, True
    return edge


def fit_background(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """A quadratic surface per channel fitted to the border band, refitted on the pixels within three
    sigma of it (a garment or a shadow crossing the border drops out). Returns (surface (H, W, 3), sigma)."""
    h, w, _ = rgb.shape
    edge = border_band(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xx / max(w - 1, 1) * 2 - 1, yy / max(h - 1, 1) * 2 - 1
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1)  # (H, W, 6)
    a, t = basis[edge], rgb[edge]
    away = np.linalg.norm(t - np.median(t, axis=0), axis=1)
    keep = away <= np.quantile(away, 0.6)  # start from the border's commonest colours: the table
    for _ in range(3):  # refit on the pixels that fit: a garment or shadow crossing the border drops out
        coef = np.linalg.lstsq(a[keep], t[keep], rcond=None)[0]
        res = np.linalg.norm(a @ coef - t, axis=1)
        sigma = float(np.median(res[keep]) * 1.4826)
        keep = res <= max(3 * sigma, 0.02)
    return np.clip(basis @ coef, 1e-3, 1.0), sigma


def segment(rgb: np.ndarray) -> Segmentation:
    """The garment in an (H, W, 3) float 0-1 photo with a light background.

    Raises:
        NoGarmentError: nothing stands out from the table, two objects, or the object fills the frame.
    """
    h, w, _ = rgb.shape
    bg, sigma = fit_background(rgb)
    smooth = max(1.0, min(h, w) / 300)
    luma, table_luma = rgb @ LUMA, np.maximum(bg @ LUMA, 1e-3)  # the photo's and the fitted table's grey
    dist = ndimage.gaussian_filter(np.linalg.norm(rgb - bg, axis=-1), sigma=smooth)
    # The table's own grain and stripes never count as garment: the floor is what the table itself
    # reaches on the border, TABLE_MARGIN over its 99th percentile, capped by 4 sigma of grain (a striped
    # table's sigma is half its stripes' depth: 4 sigma alone would hide a light garment).
    edge = border_band(h, w)
    floor = min(4 * sigma, TABLE_MARGIN * float(np.quantile(dist[edge], 0.99))) + 0.04
    t = max(float(threshold_otsu(dist)), floor)
    stands_out = dist > t if float(dist.max()) > floor else None
    if float(np.median(table_luma)) > HUE_MIN_LEVEL:  # on a light table, hue alone counts as well
        # (colour divided by brightness): a wood table's stripes and the light's fall-off change
        # brightness, not hue, so a light garment as bright as the stripes still shows by its colour.
        # On dark cloth a dim pixel's hue is noise, and a light garment stands out by brightness.
        hue = rgb / np.maximum(luma, 1e-3)[..., None] - bg / table_luma[..., None]
        hue_dist = ndimage.gaussian_filter(np.linalg.norm(hue, axis=-1), sigma=smooth)
        hue_floor = TABLE_MARGIN * float(np.quantile(hue_dist[edge], 0.99)) + HUE_FLOOR
        if float(hue_dist.max()) > hue_floor:
            by_hue = hue_dist > max(float(threshold_otsu(hue_dist)), hue_floor)
            stands_out = by_hue if stands_out is None else stands_out | by_hue
    if stands_out is None:
        raise NoGarmentError(
            "no garment found: nothing in the photo stands out from the background. Lay one garment flat on "
            "a plain table or bed and take it from far enough that there is table all around the garment"
        )
    raw = ndimage.binary_opening(stands_out, disk(max(1, round(min(h, w) / 200))))  # specks of grain go
    if raw[edge].mean() > 0.15:
        raise NoGarmentError(
            "the garment runs past the edges of the photo (or something else does), so the background "
            "cannot be seen around it. Step back so there is table all around the garment"
        )
    found_object = one_object(raw)
    mask = ndimage.binary_fill_holes(found_object)
    if mask.mean() > MAX_AREA:
        raise NoGarmentError(
            "the object fills the whole photo, so there is no background to separate it from. "
            "Step back so the garment lies on the table with a margin around it"
        )
    ratio = luma / table_luma  # 1 on the table, under 1 where darker
    soft = ndimage.binary_dilation(mask, iterations=max(1, round(min(h, w) / 250)))  # keep the faint edge
    lit = float(np.median(ratio[mask]))
    found = (
        f"and the garment is what differs from it in colour (Otsu threshold {t:.2f}) or, on a light table, "
        "in hue alone (largest region, holes filled)."
    )
    if lit <= 1.0:  # a garment darker than its table: the table is the white of a product shot
        table = "the table was modelled as a smooth surface fitted to the border"
        notes = [f"Photo on a light background: {table}, {found}"]
        ink = np.where(soft, 1.0 - np.clip(ratio, 0, 1), 0.0)
    else:  # a light garment on dark cloth: no white to compare with
        notes = [
            f"Photo on dark cloth: the cloth was modelled as a smooth surface fitted to the border, {found} "
            f"With no white to compare with, the garment's brightest part was taken as a light fabric "
            f"({LIGHT_FABRIC:.0%} of white), so that its darker details become the ink, "
            "as the dataset's negation made them."
        ]
        white = float(np.percentile(ratio[mask], 99)) / LIGHT_FABRIC
        negated = 1.0 - np.clip(ratio / white, 0, 1)
        # Near the outline a pixel is part garment, part cloth (the blur, the threshold), and inside it the
        # cloth shows through a hole (between a sandal's straps, a bag's handle) that filling the mask
        # covered: weigh those by how far each is from the cloth's level towards the garment's, so no bright
        # ring or patch of cloth is left (negated from the garment's white, the dark cloth would be ink).
        core = ndimage.binary_erosion(mask, iterations=max(1, round(min(h, w) / 250))) & found_object
        part = np.clip((ratio - 1.0) / (lit - 1.0), 0, 1)
        ink = np.where(core, negated, np.where(soft, part * negated, 0.0))
    return Segmentation(mask, ink.astype(np.float32), bg.astype(np.float32), t, notes, lit > 1.0)


def upright_angle(mask: np.ndarray, max_tilt: float = MAX_TILT, step: float = 0.5) -> float:
    """Degrees (counter-clockwise, as PIL's `rotate`) that turn the garment in `mask` upright: the turn
    within +-max_tilt whose axis-aligned box around the garment is smallest, or 0 when that box is not
    TILT_GAIN smaller than the box as photographed, or when the smallest is at the limit (the garment
    lies askew past it, or has no straight side to stand on). Fashion-MNIST's garments stand straight, so
    their box is tight: a T-shirt, trousers, a shoe's sole, a bag's sides line up with it."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return 0.0
    pts = np.stack([xs - xs.mean(), ys.mean() - ys], 1)  # x right, y up
    try:
        pts = pts[ConvexHull(pts).vertices]  # the box of the hull is the box of the garment
    except QhullError:  # all in a line
        return 0.0
    angles = np.arange(-max_tilt, max_tilt + step / 2, step)
    rad = np.deg2rad(angles)[:, None]
    x = pts[:, 0] * np.cos(rad) - pts[:, 1] * np.sin(rad)  # each point turned counter-clockwise by each angle
    y = pts[:, 0] * np.sin(rad) + pts[:, 1] * np.cos(rad)
    area = np.ptp(x, 1) * np.ptp(y, 1)
    best = int(np.argmin(area))
    if best in (0, len(angles) - 1):  # still shrinking at the limit: askew past it, or no upright side
        return 0.0
    as_taken = area[int(np.argmin(np.abs(angles)))]
    return float(angles[best]) if area[best] < (1 - TILT_GAIN) * as_taken else 0.0


def one_object(raw: np.ndarray) -> np.ndarray:
    """The largest region of `raw` together with every region near its bounding box (a sandal's
    straps, the dark panels of a white coat), or NoGarmentError for none or for two objects apart."""
    h, w = raw.shape
    # Parts a little apart are one object: close the gaps first, and count regions on that.
    joined = ndimage.binary_closing(raw, disk(max(1, round(min(h, w) / 40))), border_value=0) | raw
    regions, n = ndimage.label(joined)
    areas = np.bincount(regions.ravel(), minlength=n + 1)[1:] / raw.size
    if not n or areas.max() < MIN_AREA:
        raise NoGarmentError(
            "no garment found: only small specks differ from the background. "
            "Move closer, so that the garment fills most of the photo"
        )
    boxes = [(ys.start, ys.stop, xs.start, xs.stop) for ys, xs in ndimage.find_objects(regions)]
    big = int(np.argmax(areas))
    near, box = {big}, boxes[big]
    while True:  # grow the object by every region close to its box (a quarter of its size), until none is
        y0, y1, x0, x1 = box
        pad = max(0.05 * min(h, w), 0.25 * max(y1 - y0, x1 - x0))
        more = {
            i
            for i, (a0, a1, b0, b1) in enumerate(boxes)
            if i not in near and a0 < y1 + pad and a1 > y0 - pad and b0 < x1 + pad and b1 > x0 - pad
        }
        if not more:
            break
        near |= more
        box = (
            min(boxes[i][0] for i in near),
            max(boxes[i][1] for i in near),
            min(boxes[i][2] for i in near),
            max(boxes[i][3] for i in near),
        )
    apart = [i for i in range(n) if i not in near and areas[i] >= max(MIN_AREA, SECOND * areas[big])]
    if apart:
        raise NoGarmentError(
            f"{len(apart) + 1} separate objects found. Photograph one garment at a time, with nothing else on the table"
        )
    return np.isin(regions, [i + 1 for i in near]) & raw


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 RGB: the photo, dimmed outside the mask, with the mask's outline in orange."""
    out = rgb * np.where(mask[..., None], 1.0, 0.35)
    edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, round(min(mask.shape) / 150)))
    out[edge] = (1.0, 0.55, 0.0)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
