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
