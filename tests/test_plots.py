import numpy as np
import pytest

from app_support.plots import (
    CLASS_COLORS,
    SHORT,
    balance_fig,
    clicked_cell,
    confusion_diff_fig,
    confusion_fig,
    curves_fig,
    gallery_fig,
    heat_overlay,
    mosaic,
    pixel_img,
    prob_bars,
    prob_bars_html,
    reliability_fig,
    step_tiles,
    upscale,
)
from fmnist.data import CLASSES
from fmnist.train import BatchEvent


def _event(*points: dict) -> dict:
    return {"selection": {"points": list(points)}}


@pytest.mark.parametrize("key", ["point_index", "point_number"])
@pytest.mark.parametrize("true, pred", [(0, 0), (0, 9), (3, 7), (6, 0), (9, 9)])
def test_clicked_cell_maps_marker_index_to_true_and_predicted(key, true, pred):
    assert clicked_cell(_event({"curve_number": 1, key: true * 10 + pred})) == (true, pred)


def test_clicked_cell_prefers_point_index_and_uses_n():
    assert clicked_cell(_event({"curve_number": 1, "point_index": 23, "point_number": 45})) == (2, 3)
    assert clicked_cell(_event({"curve_number": 1, "point_index": 7}), n=3) == (2, 1)


def test_clicked_cell_skips_heatmap_points_and_takes_the_first_marker():
    ev = _event({"curve_number": 0, "point_index": 12}, {"curve_number": 1, "point_index": 45})
    assert clicked_cell(ev) == (4, 5)


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"selection": {}},
        {"selection": {"points": []}},
        _event({"curve_number": 0, "point_index": 12}),  # the heatmap itself
        _event({"curve_number": 0, "point_number": 12}),
        _event({"curve_number": 1, "point_index": 100}),  # past the last cell
        _event({"curve_number": 1, "point_index": -1}),
        _event({"curve_number": 1, "point_index": 1.0}),  # not an int
        _event({"curve_number": 1}),  # no index at all
        _event({"point_index": 12}),  # no curve
    ],
)
def test_clicked_cell_none(event):
    assert clicked_cell(event) is None


def test_clicked_cell_range_follows_n():
    assert clicked_cell(_event({"curve_number": 1, "point_index": 9}), n=3) is None
    assert clicked_cell(_event({"curve_number": 1, "point_index": 8}), n=3) == (2, 2)


# ---------------------------------------------------------------- image helpers and figures


def test_upscale_repeats_each_pixel_as_a_block():
    img = np.array([[1, 2], [3, 4]], np.uint8)
    big = upscale(img, 3)
    assert big.shape == (6, 6) and big.dtype == np.uint8
    assert (
        (big[:3, :3] == 1).all() and (big[:3, 3:] == 2).all() and (big[3:, :3] == 3).all() and (big[3:, 3:] == 4).all()
    )
    assert upscale(img).shape == (12, 12)  # default factor 6


def test_mosaic_places_tiles_row_by_row_with_a_dark_gap():
    tiles = np.stack([np.full((2, 3), v, np.uint8) for v in (100, 101, 102, 103, 104)])
    m = mosaic(tiles, rows=2, cols=2, pad=1)
    assert m.shape == (2 * 3 - 1, 2 * 4 - 1) and m.dtype == np.uint8
    assert (m[0:2, 0:3] == 100).all() and (m[0:2, 4:7] == 101).all()
    assert (m[3:5, 0:3] == 102).all() and (m[3:5, 4:7] == 103).all()  # the fifth tile does not fit
    assert (m[2, :] == 40).all() and (m[:, 3] == 40).all()
    assert mosaic(tiles[:1], 1, 1).shape == (2, 3)  # default pad only between tiles


def test_heat_overlay_blends_image_and_heat():
    img = np.array([[255, 0], [255, 0]], np.uint8)
    heat = np.array([[0.0, 0.0], [1.0, 2.0]])  # clipped to 1
    out = heat_overlay(img, heat)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [153, 153, 153]  # no heat: the image at 60% brightness
    assert out[0, 1].tolist() == [0, 0, 0]
    assert out[1, 0].tolist() == [255, 255, 0] and out[1, 1].tolist() == [255, 255, 0]  # full heat: yellow
    half = heat_overlay(np.zeros((1, 1), np.uint8), np.array([[0.5]]))
    assert half[0, 0].tolist() == [127, 63, 0]  # halfway: between black and yellow, red leads


def test_confusion_fig_counts_normalised_rows_and_one_marker_per_cell():
    cm = np.zeros((10, 10), int)
    cm[0, 0], cm[0, 1], cm[2, 2] = 3, 1, 5
    fig = confusion_fig(cm, normalized=False, title="T")
    heat, markers = fig.data
    assert np.array_equal(heat.z, cm) and heat.text[0][1] == "1" and heat.text[1][1] == "0"
    assert np.array_equal(heat.customdata, cm) and list(heat.x) == SHORT and list(heat.y) == SHORT
    assert len(markers.x) == 100 and (markers.y[12], markers.x[12]) == (SHORT[1], SHORT[2])  # true 1, predicted 2
    assert markers.marker.opacity == 0 and fig.layout.title.text == "T"
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.clickmode == "event+select"
    norm = confusion_fig(cm, normalized=True).data[0]
    assert norm.z[0].tolist()[:2] == [0.75, 0.25] and norm.z[1].sum() == 0  # an empty row stays 0
    assert norm.text[0][0] == "75%" and norm.text[2][2] == "100%"


def test_confusion_diff_fig_colours_better_blue_on_and_off_the_diagonal():
    a = np.zeros((10, 10), int)
    b = np.zeros((10, 10), int)
    a[0, 0], b[0, 0] = 5, 8  # B gets 3 more right
    a[1, 2], b[1, 2] = 4, 1  # B makes 3 fewer of this mistake
    b[3, 4] = 2  # B makes 2 more of this mistake
    heat = confusion_diff_fig(a, b, "A", "B").data[0]
    assert heat.text[0][0] == 3 and heat.text[1][2] == -3 and heat.text[3][4] == 2
    assert heat.z[0][0] == 3 and heat.z[1][2] == 3 and heat.z[3][4] == -2  # positive = B better
    assert (heat.zmin, heat.zmax) == (-3, 3)
    assert confusion_diff_fig(a, a, "A", "B").data[0].zmax == 1  # no difference: a valid scale still
    assert "B minus A" in confusion_diff_fig(a, b, "A", "B").layout.title.text


def test_curves_fig_history_and_live_batches():
    hist = [
        {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 0.9, "val_acc": 0.6},
        {"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.7, "val_acc": 0.7},
    ]
    fig = curves_fig(hist, epochs_total=5)
    names = [t.name for t in fig.data]
    assert names == ["train", "train", "validation", "validation"]
    assert list(fig.data[0].y) == [1.0, 0.5] and list(fig.data[1].y) == [0.5, 0.8]
    assert list(fig.data[2].y) == [0.9, 0.7] and list(fig.data[3].y) == [0.6, 0.7] and list(fig.data[3].x) == [1, 2]
    assert list(fig.layout.xaxis.range) == [0, 5] and fig.layout.yaxis2.range is None  # stored curves zoom in
    ev = BatchEvent(
        epoch=2, batch=1, batches=4, loss=0.3, acc=0.9, lr=0.1, images_per_s=1, elapsed=1, eta=1, progress=0.5
    )
    live = curves_fig([], batches=[ev])
    assert len(live.data) == 2 and list(live.data[0].x) == [1.25] and list(live.data[0].y) == [0.3]
    assert list(live.data[1].y) == [0.9] and list(live.layout.yaxis2.range) == [0, 1.0]
    assert live.layout.xaxis.range is None
    assert len(curves_fig(hist, batches=[ev]).data) == 4  # batches replace the per-epoch train line


def test_prob_bars_top_k_highest_on_top():
    probs = np.array([0.05, 0.6, 0.0, 0.3, 0.05, 0, 0, 0, 0, 0])
    bar = prob_bars(probs, k=3, title="t").data[0]
    assert list(bar.y) == [CLASSES[0], CLASSES[3], CLASSES[1]]  # plotly draws the last on top
    assert list(bar.x) == [0.05, 0.3, 0.6] and list(bar.text) == ["5.0%", "30.0%", "60.0%"]
    assert list(bar.marker.color) == [CLASS_COLORS[0], CLASS_COLORS[3], CLASS_COLORS[1]]
    assert len(prob_bars(probs).data[0].y) == 10


def test_reliability_fig_skips_empty_bins():
    c = {"confidence": np.array([0.1, 0.5, 0.9]), "accuracy": np.array([0.0, 0.4, 0.95]), "count": np.array([0, 3, 7])}
    fig = reliability_fig({"m": c})
    assert [t.name for t in fig.data] == ["perfect calibration", "m"]
    assert (
        list(fig.data[1].x) == [0.5, 0.9]
        and list(fig.data[1].y) == [0.4, 0.95]
        and list(fig.data[1].customdata) == [3, 7]
    )


def test_gallery_and_balance_figs_label_every_class():
    imgs = np.zeros((20, 28, 28), np.uint8)
    imgs[0] = 255  # first class, first sample: top-left after the vertical flip
    g = gallery_fig(imgs, per_class=2)
    z = np.asarray(g.data[0].z)
    assert z.shape == (10 * 30 - 2, 2 * 30 - 2) and z[-1, 0] == 255 and z[0, 0] == 0
    assert (
        list(g.layout.yaxis.ticktext) == list(CLASSES)
        and g.layout.yaxis.tickvals[0] == z.shape[0] - 0.5 * z.shape[0] / 10
    )
    b = balance_fig(np.arange(10), np.arange(10) * 2)
    assert list(b.data[0].x) == list(CLASSES) and list(b.data[1].y) == list(range(0, 20, 2))
    assert list(b.data[0].marker.color) == CLASS_COLORS


def test_pixel_img_carries_the_exact_pixels_and_an_escaped_alt():
    import base64
    import io
    import re

    from PIL import Image

    img = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    tag = pixel_img(img, 224, 'a "quoted" <alt>')
    src = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(src)))), img)  # sent at 28x28, lossless
    assert 'alt="a &quot;quoted&quot; &lt;alt&gt;"' in tag and 'width="224"' in tag and "pixelated" in tag
    assert "width: 224px" in tag and "object-fit: fill" in tag  # Streamlit's own CSS would draw it 28 px small


def test_prob_bars_html_lists_the_top_k_in_words():
    probs = np.array([0.05, 0.6, 0.0, 0.3, 0.05, 0, 0, 0, 0, 0])
    out = prob_bars_html(probs, 3, "Top <3>")
    names = [CLASSES[i] for i in (1, 3)]
    assert out.index(names[0]) < out.index(names[1]) and "60.0%" in out and "30.0%" in out
    assert out.count("%</span></div>") == 3 and "Top &lt;3&gt;" in out


def test_step_tiles_are_sent_at_display_size():
    small, photo = np.zeros((28, 20), np.uint8), np.zeros((1200, 900), np.uint8)
    a, b = step_tiles([small, photo], side=140)
    assert a.shape == (140, 100)  # enlarged pixel by pixel (x5)
    assert b.shape == (140, 105)  # shrunk: the browser gets what it shows
