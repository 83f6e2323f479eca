import numpy as np
import pytest
import torch

from conftest import idx_bytes, write_gz
from fmnist import data
from fmnist.data import (
    DatasetError,
    find_data_dir,
    load_dataset,
    parse_idx,
    stratified_split,
)


def test_parse_idx_roundtrip():
    imgs = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    out = parse_idx(idx_bytes(imgs), "x", ndim=3, count=3)
    assert out.shape == (3, 28, 28) and (out == imgs).all()
    labels = np.array([0, 9, 3], np.uint8)
    assert (parse_idx(idx_bytes(labels), "y", ndim=1) == labels).all()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b"\x00\x00\x08\x01" + b[4:], r"bad magic number 0x00000801 \(expected 0x00000803, uint8 with 3"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b + b"\x00", "truncated or padded"),
        (lambda b: b[:6], "too short"),
    ],
)
def test_parse_idx_rejects_corrupt(mutate, match):
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match=match) as e:
        parse_idx(mutate(good), "train-images-idx3-ubyte.gz", ndim=3)
    assert "train-images-idx3-ubyte.gz" in str(e.value) and "apt-get install" in str(e.value)


def test_parse_idx_checks_size_and_count():
    with pytest.raises(DatasetError, match="27x27"):
        parse_idx(idx_bytes(np.zeros((2, 27, 27), np.uint8)), "f", ndim=3)
    with pytest.raises(DatasetError, match="holds 2 items, expected 60000"):
        parse_idx(idx_bytes(np.zeros((2, 28, 28), np.uint8)), "f", ndim=3, count=60000)


def _fake_dir(tmp_path, bad_file=None, payload=None):
    """A data folder with tiny (wrong-count) files; one file optionally replaced by `payload`."""
    for split in ("train", "test"):
        img, lab, _ = data.FILES[split]
        write_gz(tmp_path / img, idx_bytes(np.zeros((5, 28, 28), np.uint8)))
        write_gz(tmp_path / lab, idx_bytes(np.zeros(5, np.uint8)))
    if bad_file:
        (tmp_path / bad_file).write_bytes(payload)
    return tmp_path


def test_corrupt_gz_names_file_and_remedy(tmp_path):
    d = _fake_dir(tmp_path, "train-images-idx3-ubyte.gz", b"this is not gzip")
    with pytest.raises(DatasetError) as e:
        load_dataset(d)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "gzip" in msg and "dataset-fashion-mnist" in msg


def test_wrong_counts_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="expected 60000"):
        load_dataset(_fake_dir(tmp_path))


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="missing in .*nowhere.*apt-get install dataset-fashion-mnist"):
        find_data_dir(tmp_path / "nowhere")
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "sys")
    monkeypatch.setattr(data, "LOCAL_DIR", tmp_path / "local")
    with pytest.raises(DatasetError, match="not found .*python -m fmnist download"):
        find_data_dir()


def test_discovery_order(tmp_path, monkeypatch, ds):
    d = _fake_dir(tmp_path)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(d))
    assert find_data_dir() == d  # env beats ./data and the system folder
    assert find_data_dir(ds.root) == ds.root  # an explicit argument beats the env variable


def test_real_dataset(ds):
    assert ds.train_images.shape == (60000, 28, 28) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (10000, 28, 28)
    assert torch.bincount(ds.train_labels).tolist() == [6000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.verified  # byte-identical to the official release
    assert load_dataset() is ds  # loaded once per process, cached after


def test_normalisation_constants_match_data(ds):
    mean, std = data.dataset_stats(ds)
    assert abs(mean - data.MEAN) < 1e-3 and abs(std - data.STD) < 1e-3


@pytest.mark.parametrize("frac", [0.1, 0.2])
def test_stratified_split(ds, frac):
    tr, va = stratified_split(ds.train_labels, frac, seed=1)
    assert len(va) == int(60000 * frac) and len(tr) + len(va) == 60000
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert torch.bincount(ds.train_labels[va]).tolist() == [int(6000 * frac)] * 10
    assert torch.equal(va, stratified_split(ds.train_labels, frac, seed=1)[1])
    assert not torch.equal(va, stratified_split(ds.train_labels, frac, seed=2)[1])
