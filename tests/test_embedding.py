"""The embedding map (fmnist.embedding): features, projections, and what learning did."""

import numpy as np
import pytest
import torch

from conftest import ROOT
from fmnist.checkpoints import load_checkpoint
from fmnist.embedding import EmbeddingError, embedding_map, neighbourhood_purity, penultimate_features, project
from fmnist.models import create_model


def test_features_are_the_classifiers_input(ds):
    model = create_model("cnn2").eval()
    feats, preds = penultimate_features(model, ds.test_images[:50])
    assert feats.shape == (50, 128) and preds.shape == (50,)
    with torch.no_grad():  # the classifier applied to those features gives the model's own logits
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        from fmnist.runtime import to_input

        assert torch.allclose(last(torch.from_numpy(feats)), model(to_input(ds.test_images[:50])), atol=1e-4)
    with pytest.raises(EmbeddingError, match="ensemble"):
        penultimate_features(load_checkpoint(ROOT / "checkpoints" / "ensemble.safetensors").model, ds.test_images[:5])


def test_learning_separates_the_classes(ds):
    """On the shipped quick model, neighbours in the feature map share a class far more often than in pixel space."""
    model = load_checkpoint(ROOT / "checkpoints" / "quick.safetensors").model
    feats = embedding_map(model, ds, "pca", pixels=False, n=1000)
    raw = embedding_map(model, ds, "pca", pixels=True, n=1000)
    assert feats.xy.shape == (1000, 2) and np.array_equal(feats.index, raw.index)
    assert np.bincount(feats.labels).tolist() == [100] * 10  # class-balanced
    assert (feats.preds == feats.labels).mean() > 0.85
    assert neighbourhood_purity(feats.xy, feats.labels) > neighbourhood_purity(raw.xy, raw.labels) + 0.1


def test_tsne_and_bad_method():
    x = np.random.default_rng(0).normal(size=(120, 60)).astype(np.float32)
    x[:60] += 4  # two clusters
    xy = project(x, "tsne")
    labels = np.array([0] * 60 + [1] * 60)
    assert xy.shape == (120, 2) and neighbourhood_purity(xy, labels) > 0.95
    with pytest.raises(ValueError):
        project(x, "umap")


def test_neighbourhood_purity_by_hand():
    # on a line: 0 1 2 | 10 11 12, classes a a b | b b a; with k=2 each point's two nearest others agree
    # with it 1, 1, 0 | 1, 1, 0 times: 4 of 12
    xy = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [11, 0], [12, 0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 1, 0])
    assert neighbourhood_purity(xy, labels, k=2) == pytest.approx(4 / 12)
    assert neighbourhood_purity(xy, np.zeros(6, int), k=2) == 1.0
    assert neighbourhood_purity(xy, np.arange(6), k=2) == 0.0  # never counts the point itself


def test_the_map_says_what_it_shows_and_a_seed_reproduces_it(ds):
    model = create_model("mlp").eval()
    feats = embedding_map(model, ds, n=200)  # PCA by default
    raw = embedding_map(model, ds, "tsne", pixels=True, n=200, seed=3)
    assert (feats.method, feats.source, feats.dims) == ("pca", "features", 128)
    assert (raw.method, raw.source, raw.dims) == ("tsne", "pixels", 784)
    assert np.array_equal(raw.xy, embedding_map(model, ds, "tsne", pixels=True, n=200, seed=3).xy)
    assert not np.array_equal(raw.xy, embedding_map(model, ds, "tsne", pixels=True, n=200, seed=4).xy)
