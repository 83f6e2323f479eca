"""Temperature scaling: one number that makes a model's probabilities honest.

A network's softmax is often over- or underconfident: among the images it calls "90% sure", far
more or fewer than 90% may be right. Dividing the logits by a temperature T (fitted on the run's
validation split, never on the test set) fixes most of that. The ranking of the classes, and so
every prediction, stays the same: only the probabilities change. T > 1 softens an overconfident
model, T < 1 sharpens an underconfident one (Guo et al., "On Calibration of Modern Neural
Networks", 2017).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from torch import nn

from .data import FashionMNIST, split_indices
from .runtime import predict_logits

T_RANGE = (0.05, 20.0)


def fit_temperature(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels` (a 1-D bounded search)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) == 0:
        raise ValueError("no samples to fit a temperature on")

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / np.exp(log_t), y))

    res = minimize_scalar(nll, bounds=tuple(np.log(T_RANGE)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def calibrated_probs(logits: torch.Tensor | np.ndarray, temperature: float | None) -> np.ndarray:
    """softmax(logits / T), as float32 numpy; T None (a card without one) is T = 1.

    Every calibrated probability in the project comes from here: the CLI's predict, the app's
    Predict page and the test-set ECE of a card.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
    return (z / (temperature or 1.0)).softmax(-1).numpy()


def validation_logits(model: nn.Module, config: dict, data: FashionMNIST) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of the validation split a run was trained with (rebuilt from its config)."""
    from dataclasses import fields

    from .config import TrainConfig

    # The split does not depend on the model, so "arch" and its options are left out: an ensemble's arch is
    # not one TrainConfig trains, and an architecture's options (the student's widths) are not the default's.
    known = {f.name for f in fields(TrainConfig)} - {"arch", "model_kwargs"}
    cfg = TrainConfig.from_dict({k: v for k, v in config.items() if k in known})
    _, val_idx = split_indices(cfg, data.train_labels)
    if len(val_idx) == 0:
        raise ValueError("this run kept no validation split (val_fraction 0): no temperature can be fitted")
    x, y = data.train_images[val_idx], data.train_labels[val_idx]
    return predict_logits(model, x, tta_flip=cfg.tta_flip), y


def fit_for(model: nn.Module, config: dict, data: FashionMNIST) -> float:
    """Temperature of `model`, fitted on its own run's validation split."""
    logits, labels = validation_logits(model, config, data)
    return round(fit_temperature(logits, labels), 4)
