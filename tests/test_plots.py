import pytest

from app_support.plots import clicked_cell


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
