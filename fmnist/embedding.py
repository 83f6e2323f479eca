"""The embedding map: where a model puts each test image, flattened to 2-D.

The features are the input of the model's last linear layer (what the classifier sees). PCA is
linear and instant; t-SNE keeps neighbours together and shows the clusters, on a class-balanced
subset. The same projection of the raw pixels shows what learning did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import FashionMNIST, stratified_subset
from .runtime import device_of, to_input

TSNE_POINTS = 2000


class EmbeddingError(ValueError):
    """No single feature space to map (an ensemble, say); the message says why."""


@dataclass(frozen=True)
class EmbeddingMap:
    xy: np.ndarray  # (N, 2) float32
    index: np.ndarray  # (N,) test-set indices
    labels: np.ndarray  # (N,)
    preds: np.ndarray  # (N,)
    method: str  # "pca" or "tsne"
    source: str  # "features" or "pixels"
    dims: int  # the dimension of what was projected


@torch.no_grad()
def penultimate_features(model: nn.Module, images: torch.Tensor, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), predicted classes (N,)): the input of the last nn.Linear, for uint8 images."""
    if hasattr(model, "members"):
        raise EmbeddingError("an ensemble has no single feature space: pick one of its members to see its map")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise EmbeddingError(f"{type(model).__name__} has no linear classifier layer to read features from")
    feats: list[torch.Tensor] = []
    handle = linears[-1].register_forward_hook(lambda m, i, o: feats.append(i[0].detach().float().flatten(1).cpu()))
    device = device_of(model)  # a model on a GPU gets its batches there; features come back to the CPU
    preds = []
    was_training = model.training
    try:
        model.eval()
        for s in range(0, len(images), batch):
            preds.append(model(to_input(images[s : s + batch].to(device))).argmax(1).cpu())
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def project(x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2): PCA, or t-SNE (after PCA to 50 dimensions, as is usual)."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        z = PCA(min(50, x.shape[1], len(x)), random_state=seed).fit_transform(x) if x.shape[1] > 50 else x
        return TSNE(2, perplexity=30, init="pca", random_state=seed).fit_transform(z).astype(np.float32)
    raise ValueError(f"method must be pca or tsne, got {method!r}")


def embedding_map(
    model: nn.Module, data: FashionMNIST, method: str = "pca", pixels: bool = False, n: int = TSNE_POINTS, seed: int = 0
) -> EmbeddingMap:
    """The 2-D map of a class-balanced subset of about `n` test images (of the model's features, or of the pixels)."""
    idx = stratified_subset(data.test_labels, n, seed).numpy()
    images = data.test_images[idx]
    feats, preds = penultimate_features(model, images)
    x = images.reshape(len(idx), -1).float().numpy() / 255.0 if pixels else feats
    return EmbeddingMap(
        xy=project(x, method, seed),
        index=idx,
        labels=data.test_labels[idx].numpy(),
        preds=preds,
        method=method,
        source="pixels" if pixels else "features",
        dims=x.shape[1],
    )


def neighbourhood_purity(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest neighbours (in the map) that have its class: how well classes separate."""
    from sklearn.neighbors import NearestNeighbors

    nn_ = NearestNeighbors(n_neighbors=k + 1).fit(xy)
    _, ind = nn_.kneighbors(xy)
    return float((labels[ind[:, 1:]] == labels[:, None]).mean())
