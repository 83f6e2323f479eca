"""augment_batch: each transform stays inside its configured range, drawn per sample."""

import math

import torch

from fmnist.augment import augment_batch, photo_like, random_crop, random_erase
from fmnist.config import Augment

N = 400


def _dot(row: int, col: int, n: int = N) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, row, col] = 1.0
    return x


def _centroid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) centre of mass of each image, in pixels."""
    w = x[:, 0]
    ys = torch.arange(28.0).view(1, 28, 1)
    xs = torch.arange(28.0).view(1, 1, 28)
    m = w.sum((1, 2))
    return (w * ys).sum((1, 2)) / m, (w * xs).sum((1, 2)) / m


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_active_follows_every_field():
    assert not Augment().active
    for kw in ({"flip": True}, {"shift": 0.1}, {"rotate": 5.0}, {"zoom": 0.1}, {"erase": 0.2}):
        assert Augment(**kw).active, kw
    for kw in ({"crop": 1}, {"photo": 0.1}):
        assert Augment(**kw).active, kw


def test_erase_only_never_resamples_or_flips():
    x = torch.rand(N, 1, 28, 28) * 0.5 + 0.5
    y = augment_batch(x, Augment(erase=1.0), _gen())
    kept = y != 0
    assert torch.equal(y[kept], x[kept])  # untouched pixels are exactly the originals
    assert (~kept).flatten(1).any(1).all()  # p = 1: every image loses a square


def test_shift_stays_within_the_fraction_of_the_side():
    x = _dot(14, 14)
    r, c = _centroid(augment_batch(x, Augment(shift=0.25), _gen()))
    dr, dc = r - 14, c - 14
    bound = 0.25 * 28
    assert dr.abs().max() <= bound + 0.5 and dc.abs().max() <= bound + 0.5
    assert dr.max() > 0.8 * bound and dr.min() < -0.8 * bound and dc.max() > 0.8 * bound and dc.min() < -0.8 * bound
    assert not torch.allclose(dr, dc, atol=0.5)  # rows and columns drawn independently


def test_rotation_keeps_the_radius_and_spans_the_angle():
    x = torch.zeros(N, 1, 28, 28)
    x[:, :, 13:15, 21:23] = 1.0  # centred 8 px right of the image centre (13.5, 13.5)
    y = augment_batch(x, Augment(rotate=90), _gen())
    r, c = _centroid(y)
    dr, dc = r - 13.5, c - 13.5
    radius = (dr**2 + dc**2).sqrt()
    assert torch.allclose(radius, radius.mean().expand_as(radius), atol=0.6)  # no shear, no scaling
    angle = torch.rad2deg(torch.atan2(dr, dc))
    assert angle.abs().max() <= 95 and angle.max() > 75 and angle.min() < -75


def test_zoom_scales_distances_from_the_centre():
    x = _dot(13, 23)  # ~9.5 px right of the centre
    r, c = _centroid(augment_batch(x, Augment(zoom=0.3), _gen()))
    ratio = ((r - 13.5) ** 2 + (c - 13.5) ** 2).sqrt() / math.hypot(0.5, 9.5)
    assert ratio.min() > 0.65 and ratio.max() < 1.35
    assert ratio.min() < 0.8 and ratio.max() > 1.2
    assert (c - 13.5).min() > 0  # no flip without flip=True


def test_flip_with_resampling_mirrors_about_half():
    x = _dot(10, 3)
    y = augment_batch(x, Augment(flip=True, rotate=1e-6), _gen())
    _, c = _centroid(y)
    mirrored = c > 13.5
    assert torch.allclose(c[mirrored], torch.tensor(24.0), atol=0.05)
    assert torch.allclose(c[~mirrored], torch.tensor(3.0), atol=0.05)
    assert 0.4 < mirrored.float().mean() < 0.6


def test_same_generator_same_batch():
    x = torch.rand(8, 1, 28, 28)
    aug = Augment(flip=True, shift=0.1, rotate=10, zoom=0.1, erase=0.5)
    assert torch.equal(augment_batch(x, aug, _gen()), augment_batch(x, aug, _gen()))


def test_random_erase_squares_are_4_to_12_px_and_clipped():
    x = torch.ones(3000, 1, 28, 28)
    y = random_erase(x, 1.0, _gen())
    holes = y[:, 0] == 0
    rows, cols = holes.any(2).sum(1), holes.any(1).sum(1)
    inner = (
        (holes[:, 0, :].sum(1) == 0)
        & (holes[:, -1, :].sum(1) == 0)
        & (holes[:, :, 0].sum(1) == 0)
        & (holes[:, :, -1].sum(1) == 0)
    )
    assert torch.equal(rows[inner], cols[inner])  # a square when not clipped
    assert set(rows[inner].tolist()) == set(range(4, 13))
    assert rows.min() >= 1 and (rows < 4).any()  # clipped at the border
    assert holes[:, 0, :].any() and holes[:, -1, :].any() and holes[:, :, 0].any() and holes[:, :, -1].any()
    assert torch.equal(random_erase(x, 0.0, _gen()), x)


def test_cutout_squares_have_the_given_side_and_are_clipped():
    x = torch.ones(2000, 1, 28, 28)
    y = augment_batch(x, Augment(erase=1.0, erase_size=12), _gen())
    holes = y[:, 0] == 0
    rows, cols = holes.any(2).sum(1), holes.any(1).sum(1)
    assert rows.max() == 12 and cols.max() == 12  # never larger than asked
    whole = (rows == 12) & (cols == 12)
    assert whole.float().mean() > 0.3  # most centres leave the whole square inside
    assert torch.equal(holes[whole].sum((1, 2)), torch.full((int(whole.sum()),), 144))
    assert (rows < 12).any()  # clipped at the border


def test_flip_alone_follows_the_runs_generator():
    x = torch.rand(16, 1, 28, 28)
    aug = Augment(flip=True)
    torch.manual_seed(1)
    a = augment_batch(x, aug, _gen())
    torch.manual_seed(2)  # the global generator must not matter
    assert torch.equal(a, augment_batch(x, aug, _gen()))


def test_random_crop_shifts_by_whole_pixels_within_the_padding_and_fills_black():
    x = torch.arange(1.0, 785.0).view(1, 1, 28, 28).repeat(N, 1, 1, 1)  # every pixel a distinct value
    y = random_crop(x, 4, _gen())
    offsets = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]
    seen = []
    for img in y[:, 0]:  # each image is the original moved by one whole-pixel (dy, dx), black where it left
        match = [o for o in offsets if torch.equal(img, torch.roll(x[0, 0], (-o[0], -o[1]), (0, 1)) * _window(*o))]
        assert len(match) == 1
        seen.append(match[0])
    assert len(set(seen)) > 60  # of the 81 offsets in 400 images
    assert torch.equal(random_crop(x, 4, _gen()), y)  # the run's generator decides


def _window(dy: int, dx: int) -> torch.Tensor:
    """1 where a crop moved by (dy, dx) keeps the image, 0 in its black padding."""
    w = torch.zeros(28, 28)
    w[max(0, -dy) : 28 - max(0, dy), max(0, -dx) : 28 - max(0, dx)] = 1
    return w


def test_cutout_fills_with_the_given_grey():
    x = torch.ones(N, 1, 28, 28)
    y = random_erase(x, 1.0, _gen(), 16, 0.286)
    assert torch.allclose(torch.unique(y), torch.tensor([0.286, 1.0]))
    assert ((y < 1).sum((1, 2, 3)) >= 8 * 8).all()  # a 16 px square clipped at most to a quarter


def test_with_a_crop_the_cutout_comes_last_and_keeps_its_grey():
    x = torch.ones(N, 1, 28, 28)
    aug = Augment(flip=True, crop=4, erase=1.0, erase_size=16, erase_value=0.5)
    y = augment_batch(x, aug, _gen())
    square = (y == 0.5).float()
    # erased after the crop: its square is whole (not cut by the padding's black), and exactly 0.5
    sides = square.amax(3).sum((1, 2)), square.amax(2).sum((1, 2))
    assert (sides[0] <= 16).all() and (sides[1] <= 16).all() and (square.sum((1, 2, 3)) == sides[0] * sides[1]).all()
    assert ((y == 0).sum((1, 2, 3)) > 0).float().mean() > 0.8  # the crop's black border shows in most images


def test_photo_like_keeps_the_silhouette_and_stretches_to_one():
    x = torch.zeros(N, 1, 28, 28)
    x[:, :, 6:22, 8:20] = torch.rand(N, 1, 16, 12) * 0.8 + 0.2
    y = photo_like(x, 1.0, _gen())
    assert torch.allclose(y.amax((1, 2, 3)), torch.ones(N))
    outside = torch.ones(28, 28, dtype=torch.bool)
    outside[5:23, 7:21] = False  # the silhouette and its 1 px of blur
    outside[:2], outside[-2:], outside[:, :2], outside[:, -2:] = False, False, False, False  # a border strip
    assert y[:, 0][:, outside].abs().max() == 0
    strip = (y[:, 0, :2].amax((1, 2)) > 0) | (y[:, 0, -2:].amax((1, 2)) > 0)
    strip |= (y[:, 0, :, :2].amax((1, 2)) > 0) | (y[:, 0, :, -2:].amax((1, 2)) > 0)
    assert 0.15 < strip.float().mean() < 0.45  # a table strip left in about 30% of them
    inside = y[:, 0, 8:20, 10:18]
    assert (inside > 0).all()  # the garment is never emptied
    before = x[:, 0, 8:20, 10:18]
    flat = (inside.amax((1, 2)) - inside.amin((1, 2))) < (before.amax((1, 2)) - before.amin((1, 2)))
    assert flat.float().mean() > 0.5  # detail is compressed under a raised floor in most
    full = photo_like(torch.full((N, 1, 28, 28), 0.5), 1.0, _gen())  # a garment filling the frame
    spread = full.amin((1, 2, 3)) / full.amax((1, 2, 3))
    assert float(spread.min()) > 0.4  # the light across it varies by +-20% per axis: 0.6 / 1.4 at the worst
    assert float(spread.min()) < 0.8  # ... and it does vary
    kept = (inside.amax((1, 2)) - inside.amin((1, 2))) / (before.amax((1, 2)) - before.amin((1, 2)))
    assert float(kept.min()) < 0.3 and float(kept.max()) > 0.7  # from nearly flat to most of the detail


def test_photo_like_at_p_0_is_the_identity_and_about_p_of_a_batch_changes():
    x = torch.rand(N, 1, 28, 28)
    assert torch.equal(photo_like(x, 0.0, _gen()), x)
    changed = (photo_like(x, 0.5, _gen()) != x).flatten(1).any(1).float().mean()
    assert 0.4 < changed < 0.6
    assert torch.equal(photo_like(x, 0.5, _gen()), photo_like(x, 0.5, _gen()))
