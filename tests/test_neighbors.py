import numpy as np
import pytest
import torch

from fmnist.neighbors import nearest


def _cosine(bank: torch.Tensor, query: torch.Tensor) -> np.ndarray:
    b = bank.reshape(len(bank), -1).double().numpy()
    q = query.reshape(-1).double().numpy()
    return b @ q / (np.linalg.norm(b, axis=1) * np.linalg.norm(q))


def _synthetic_bank() -> tuple[torch.Tensor, torch.Tensor]:
    """A query block, and a bank where raw dot products and cosine similarities rank differently."""
    query = torch.zeros(28, 28, dtype=torch.uint8)
    query[4:12, 6:14] = 100  # an 8x8 block
    bank = torch.zeros(6, 28, 28, dtype=torch.uint8)
    bank[0] = 255  # bright, different shape (the whole frame): a huge dot product, cosine 8/28
    bank[1, 4:12, 6:14] = 10  # a dim copy of the exact shape: small dot product, cosine 1
    bank[2, 4:20, 6:22] = 200  # a bright, larger block containing the query's
    bank[3, 8:16, 10:18] = 120  # the block, shifted: half overlap
    bank[4] = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))  # noise
    bank[5, 20:28, 20:28] = 255  # no overlap at all: cosine 0
    return bank, query


def test_nearest_ranks_by_cosine_not_dot_product():
    bank, query = _synthetic_bank()
    dots = bank.reshape(6, -1).float() @ query.reshape(-1).float()
    assert dots[1] < dots[0] and dots[1] < dots[2]  # by dot product the dim copy would lose
    idx, sim = nearest(bank, query, k=3)
    assert idx[0] == 1
    assert sim[0] == pytest.approx(1.0, abs=1e-5)
    cos = _cosine(bank, query)
    assert idx.tolist() == np.argsort(-cos)[:3].tolist()
    assert sim == pytest.approx(cos[idx], abs=1e-5)


def test_nearest_returns_hand_computed_cosines_for_every_k():
    bank, query = _synthetic_bank()
    cos = _cosine(bank, query)
    assert cos[0] == pytest.approx(8 / 28) and cos[5] == pytest.approx(0.0)
    for k in (1, 2, 6):
        idx, sim = nearest(bank, query, k=k)
        assert len(idx) == len(sim) == k
        assert isinstance(idx, np.ndarray) and isinstance(sim, np.ndarray)
        assert sim == pytest.approx(cos[idx], abs=1e-5)
        assert (np.diff(sim) <= 0).all()  # best first
        assert sorted(cos[idx], reverse=True) == pytest.approx(sorted(cos, reverse=True)[:k], abs=1e-5)
    assert nearest(bank, query, k=6)[0][-1] == 5  # the disjoint image is last


def test_nearest_is_brightness_invariant_in_the_query():
    bank, query = _synthetic_bank()
    a = nearest(bank, query, k=6)
    b = nearest(bank, query // 10, k=6)  # the same shape, 10x dimmer
    assert a[0].tolist() == b[0].tolist()
    assert a[1] == pytest.approx(b[1], abs=1e-5)


def test_nearest_does_not_reuse_another_banks_rows():
    bank, query = _synthetic_bank()
    assert nearest(bank, query, k=1)[0][0] == 1
    other = bank.flip(0).clone()  # the same images, reversed order: a new tensor
    idx, sim = nearest(other, query, k=1)
    assert idx[0] == 4 and sim[0] == pytest.approx(1.0, abs=1e-5)


def test_nearest_on_real_images_finds_the_image_itself(ds):
    bank = ds.train_images[:3000]
    idx, sim = nearest(bank, bank[1234], k=5)
    assert sim[0] == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(bank[idx[0]], bank[1234])
    assert sim == pytest.approx(_cosine(bank, bank[1234])[idx], abs=1e-5)
    assert len(set(idx.tolist())) == 5 and (np.diff(sim) <= 0).all()


def test_bank_is_computed_once_per_tensor_and_not_reused_for_another():
    from fmnist.neighbors import _bank

    a = torch.rand(5, 28, 28)
    b = a.clone()
    first = _bank(a)
    assert _bank(a) is first  # cached for the same tensor
    other = _bank(b)
    assert other is not first and torch.allclose(other, first)
    assert _bank(b) is other


def test_cosine_of_faint_images_and_queries_is_still_one():
    """Unit norms below 1 (float images in [0, 1]) are divided out, not clamped."""
    bank = torch.zeros(3, 28, 28)
    bank[0, 0, :4] = 0.01  # a faint copy of the query's shape
    bank[1, 5, 5] = 0.02
    bank[2, 9, :2] = 0.5
    query = torch.zeros(28, 28)
    query[0, :4] = 0.003
    idx, sim = nearest(bank, query, k=3)
    assert idx[0] == 0 and sim[0] == pytest.approx(1.0, abs=1e-5)
    assert sim[1:].tolist() == pytest.approx([0.0, 0.0], abs=1e-5)
    assert nearest(bank, torch.zeros(28, 28), k=1)[1][0] == pytest.approx(0.0)  # an empty query: no division by 0
