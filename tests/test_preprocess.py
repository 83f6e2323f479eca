import io

import numpy as np
import pytest
from PIL import Image

from fmnist.preprocess import ImageError, preprocess


def _png(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _corr(a, b):
    return np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1]


def test_photo_like_upload_recovers_the_dataset_image(ds):
    """A dataset image shown as a large dark-on-white photo comes back as itself."""
    orig = ds.test_images[0].numpy()  # an ankle boot
    big = Image.fromarray(255 - orig).resize((280, 280), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (500, 400), 255)
    canvas.paste(big, (30, 90))
    out = preprocess(_png(canvas))
    assert out.inverted and out.image.shape == (28, 28) and out.image.dtype == np.uint8
    assert _corr(out.image, orig) > 0.9
    assert [s for s, _ in out.steps][-1].startswith("5.")


def test_canvas_drawing_is_trimmed_resized_and_centred():
    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[20:60, 10:210, :3] = 255  # a wide white bar in the top-left: aspect 5:1
    out = preprocess(rgba)
    assert not out.inverted
    ys, xs = np.nonzero(out.image > 60)
    assert xs.min() <= 1 and xs.max() >= 26  # the longest side fills 28 px
    assert 4 <= ys.max() - ys.min() + 1 <= 7  # aspect ratio kept: 28/5
    assert abs((ys.min() + ys.max()) / 2 - 13.5) <= 1  # centred vertically


def test_transparent_background_with_white_strokes():
    img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    img.paste((255, 255, 255, 255), (30, 10, 70, 90))
    out = preprocess(_png(img))
    assert out.image.max() > 200 and out.image[0, 0] == 0
    assert any("Transparent" in n for n in out.notes)


@pytest.mark.parametrize("mode", ["I;16", "CMYK", "P", "LA", "1", "F"])
def test_any_mode(mode):
    base = Image.new("L", (60, 40), 0)
    base.paste(200, (10, 5, 50, 35))
    img = (
        base.convert(mode)
        if mode not in ("I;16", "F")
        else Image.fromarray(
            np.asarray(base).astype(np.uint16 if mode == "I;16" else np.float32) * (257 if mode == "I;16" else 1.0)
        )
    )
    out = preprocess(img)
    assert out.image.max() > 150


def test_animated_gif_uses_first_frame():
    frames = [Image.new("L", (50, 50), 0) for _ in range(3)]
    frames[0].paste(255, (10, 10, 40, 40))
    data = _png(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = preprocess(data)
    assert out.image.max() > 200 and any("first frame" in n for n in out.notes)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"not an image at all", "not a readable image"),
        (b"", "empty"),
        (_png(Image.new("L", (64, 64), 128)), "blank"),
        (_png(Image.new("L", (64, 64), 255)), "blank"),
    ],
)
def test_bad_inputs(data, match):
    with pytest.raises(ImageError, match=match):
        preprocess(data)


def test_truncated_file():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))
    data = _png(img)
    with pytest.raises(ImageError, match="damaged or truncated"):
        preprocess(data[: len(data) // 2])


def test_huge_image_refused():
    data = _png(Image.new("1", (8000, 6000), 0))  # 48 MP, but a small file
    with pytest.raises(ImageError, match="too large"):
        preprocess(data)


def test_unprocessable_array_is_a_clear_error():
    with pytest.raises(ImageError, match="cannot process"):
        preprocess(np.zeros((10, 10, 5), np.float64))


def _disc(size: int, radius: float, inside: int, outside: int) -> np.ndarray:
    """A (size, size) uint8 image: a centred disc of value `inside` on `outside`."""
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    return np.where(d <= radius, inside, outside).astype(np.uint8)


def _assert_light_disc_on_black(img: np.ndarray):
    assert img.shape == (28, 28) and img.dtype == np.uint8
    assert img[13:15, 13:15].min() > 200  # the object is light
    assert max(img[0, 0], img[0, -1], img[-1, 0], img[-1, -1]) == 0  # the corners outside the disc are black
    assert _corr(img, _disc(28, 14, 255, 0)) > 0.95  # the disc fills the 28x28 canvas


def test_big_light_object_on_dark_border_is_not_inverted():
    """The object covers ~64% of the image, so most pixels are light, but the border is dark: keep it."""
    img = _disc(100, 45, 230, 10)
    assert np.median(img) > 127 and img.mean() > 127  # the whole image reads light
    out = preprocess(img)
    assert out.inverted is False
    assert not any("inverted" in n for n in out.notes)
    _assert_light_disc_on_black(out.image)


def test_big_dark_object_on_light_border_is_inverted():
    """The object covers ~64% of the image, so most pixels are dark, but the border is light: invert."""
    img = _disc(100, 45, 20, 245)
    assert np.median(img) < 127 and img.mean() < 127  # the whole image reads dark
    out = preprocess(img)
    assert out.inverted is True
    assert any("inverted" in n for n in out.notes)
    _assert_light_disc_on_black(out.image)


# ---------------------------------------------------------------- hostile input (issue 9)
# Each case was reproduced on the code before the fix; each test fails there.

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nnewpath 10 10 moveto 90 90 lineto stroke\nshowpage\n"


def _box(side: int, mode: str = "L", fg=255, bg=0) -> Image.Image:
    img = Image.new(mode, (side, side), bg)
    img.paste(fg, (side // 4, side // 4, 3 * side // 4, 3 * side // 4))
    return img


def _apng(side: int) -> bytes:
    frames = [_box(side, "RGBA", (255, 255, 255, 255), (0, 0, 0, 255)), Image.new("RGBA", (side, side), (0, 0, 0, 255))]
    return _png(frames[0], save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(
    "data, match",
    [
        (EPS, "not a readable image: use PNG, JPEG"),  # PostScript renamed .png: never handed to Ghostscript
        (_png(_box(64), "TIFF"), "not a readable image"),  # outside the explicit list of formats
        (_png(_box(64), "PCX"), "not a readable image"),
        (_apng(6300), "animated image is 6300x6300: too large"),  # a 200 KB file that decodes to 2x159 MB
    ],
    ids=["eps-as-png", "tiff", "pcx", "animated-6300"],
)
def test_hostile_files_are_refused_clearly(data, match):
    with pytest.raises(ImageError, match=match):
        preprocess(data)


def test_oversized_drawing_is_refused_before_decoding():
    from fmnist.preprocess import CANVAS_MAX_PIXELS

    data = _png(_box(2100, "RGBA", (255, 255, 255, 255), (0, 0, 0, 255)))  # 4.4 MP: fine as an upload
    assert preprocess(data).image.max() > 200
    with pytest.raises(ImageError, match="too large"):
        preprocess(data, max_pixels=CANVAS_MAX_PIXELS)


def test_animated_png_takes_the_first_frame_and_is_shrunk():
    out = preprocess(_apng(1500))
    assert any("first frame" in n for n in out.notes)
    assert max(out.steps[0][1].shape) == 512  # shrunk before anything else
    assert out.image[10:18, 10:18].min() > 200  # frame 0's box, not frame 1's black


def test_a_phones_48mp_jpeg_is_decoded_at_a_reduced_scale():
    img = _box(1000, "RGB", (40, 40, 40), (230, 230, 230)).resize((8000, 6000))  # 48 MP: over MAX_PIXELS
    out = preprocess(_png(img, "JPEG", quality=50))
    assert out.inverted and out.image[12:16, 12:16].min() > 200
    assert max(out.steps[0][1].shape) <= 512


@pytest.mark.parametrize("orientation, turn", [(6, "clockwise"), (8, "anticlockwise"), (3, "180")])
def test_exif_orientation_is_applied_and_said(orientation, turn):
    """A phone stores a portrait photo as landscape pixels plus an orientation tag."""
    upright = Image.new("L", (200, 300), 255)
    upright.paste(0, (60, 20, 140, 120))  # a dark block at the top of a tall photo
    stored = upright.transpose(
        {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = preprocess(_png(stored, "JPEG", exif=exif.tobytes()))
    assert any(f"EXIF orientation {orientation}" in n and turn in n for n in out.notes)
    first = out.steps[0][1]  # the photo as processed (shrunk for segmentation: a light background)
    gray = first.mean(-1) if first.ndim == 3 else first
    h, w = gray.shape
    assert h / w == pytest.approx(1.5, abs=0.02)  # upright: tall again
    assert gray[h * 20 // 300 : h * 120 // 300, w * 60 // 200 : w * 140 // 200].mean() < 40  # the block at the top
    assert gray[h * 180 // 300 :, :].mean() > 220


def test_memory_of_a_hostile_animation_stays_bounded(tmp_path):
    """The 6300x6300 two-frame PNG cost +1.36 GB before; it is refused from its header now."""
    import subprocess
    import sys
    from pathlib import Path

    f = tmp_path / "anim.png"
    f.write_bytes(_apng(6300))
    script = Path(__file__).resolve().parent.parent / "scripts" / "hostile_memory.py"
    r = subprocess.run(
        [sys.executable, str(script), "--child", "animated", str(f)], capture_output=True, text=True, timeout=120
    )
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["outcome"].startswith("refused") and out["peak_growth_mb"] < 100, out


def test_canvas_payload_goes_through_the_checked_path():
    """The drawing's bytes, not the canvas's own decode: tampered or huge payloads get a clear message."""
    import base64
    import binascii
    from types import SimpleNamespace

    from app_support.inference import drawing_bytes
    from fmnist.preprocess import CANVAS_MAX_PIXELS, BlankImageError

    class Tampered:
        @property
        def image_bytes(self):  # what CanvasResult does with a data URL that is not base64
            return base64.b64decode("not//base64!", validate=True)

    with pytest.raises(ImageError, match="could not be read"):
        drawing_bytes(Tampered())
    with pytest.raises(binascii.Error):
        _ = Tampered().image_bytes
    for empty in (None, SimpleNamespace(image_bytes=None)):  # nothing drawn yet
        with pytest.raises(BlankImageError):
            preprocess(drawing_bytes(empty), max_pixels=CANVAS_MAX_PIXELS)
    with pytest.raises(ImageError, match="not a readable image"):
        preprocess(drawing_bytes(SimpleNamespace(image_bytes=EPS)), max_pixels=CANVAS_MAX_PIXELS)


def test_16_bit_images_are_rescaled_from_their_own_range_and_said():
    a = np.zeros((40, 60), np.uint16)
    a[5:35, 10:50] = 51400
    img = Image.fromarray(a)
    assert img.mode == "I;16"
    out = preprocess(img)
    assert "I;16 image (0..51400) rescaled to 8 bits." in out.notes and out.image.max() > 150


def test_a_gray_image_with_alpha_puts_its_strokes_on_a_contrasting_background():
    img = Image.new("LA", (100, 100), (0, 0))  # transparent black
    img.paste((255, 255), (30, 10, 70, 90))
    out = preprocess(_png(img))
    assert "Transparent background filled with black." in out.notes
    assert out.image.max() > 200 and out.image[0, 0] == 0


def test_a_mirrored_photo_is_said_to_be_mirrored():
    stored = Image.new("L", (200, 300), 255)
    stored.paste(0, (20, 20, 100, 120))
    exif = Image.Exif()
    exif[0x0112] = 2  # mirrored left-right
    out = preprocess(_png(stored, "JPEG", exif=exif.tobytes()))
    assert any("EXIF orientation 2): mirrored upright" in n for n in out.notes)


def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(monkeypatch):
    from fmnist import preprocess as pp

    monkeypatch.setattr(pp, "MAX_FILE_BYTES", 100)
    assert pp.read_bytes(b"x" * 100) == b"x" * 100
    with pytest.raises(ImageError, match="file is over"):
        pp.read_bytes(b"x" * 101)


def _grainy(level: float, grain: float) -> np.ndarray:
    """(120, 160, 3) float: a light square on a background of `level` whose pixels alternate +-grain."""
    yy, xx = np.mgrid[:120, :160]
    bg = level + grain * np.where((yy + xx) % 2, 1.0, -1.0)
    img = np.repeat(bg[..., None], 3, -1)
    img[30:90, 50:110] = 0.8
    return img


@pytest.mark.parametrize(
    "level, grain, photo",
    [
        (0.06, 0.01, True),  # grey, grainy: dark cloth in a photo
        (0.06, 0.0, False),  # one flat grey: a drawing's canvas
        (0.015, 0.01, False),  # near black: a drawing, however noisy
        (0.06, 0.002, False),  # under CLOTH_GRAIN
    ],
)
def test_dark_cloth_is_told_from_a_drawing_by_its_grey_and_grain(level, grain, photo):
    out = preprocess(np.clip(_grainy(level, grain) * 255 + 0.5, 0, 255).astype(np.uint8))
    assert out.inverted is photo
    assert any("dark cloth" in n for n in out.notes) is photo
    assert out.image.max() > 0


@pytest.mark.parametrize("level, grain, photo", [(6, 1, True), (5, 1, False), (6, 0, False)])
def test_dark_cloth_starts_just_above_two_percent_grey_with_one_level_of_grain(level, grain, photo):
    """In 8 bits: a border of grey 6 (2.4%) alternating +-1 level is cloth; grey 5 (2.0%) or no grain is not."""
    yy, xx = np.mgrid[:120, :160]
    img = (level + grain * np.where((yy + xx) % 2, 1, -1)).astype(np.uint8)
    img[30:90, 50:110] = 200
    assert preprocess(img).inverted is photo
