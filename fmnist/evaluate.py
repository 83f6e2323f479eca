"""Evaluation: logits are computed once, and every metric is derived from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import CLASSES, NUM_CLASSES, FashionMNIST, load_dataset
from .runtime import predict_logits

SUBSET_N = 1000  # the fixed test subset (first 1,000 images) whose accuracy each card records


@dataclass(frozen=True)
class EvalResult:
    """All metrics of one model on one labelled image set. Arrays are numpy."""

    accuracy: float
    loss: float
    macro_f1: float
    ece: float  # expected calibration error, 15 equal-width confidence bins
    confusion: np.ndarray  # (10, 10) int, rows = true class, columns = predicted
    precision: np.ndarray  # (10,)
    recall: np.ndarray  # (10,) = per-class accuracy
    f1: np.ndarray  # (10,)
    support: np.ndarray  # (10,)
    probs: np.ndarray  # (N, 10) float32
    labels: np.ndarray  # (N,)
    preds: np.ndarray  # (N,)

    @property
    def error_indices(self) -> np.ndarray:
        """Indices of the misclassified samples, most confident mistakes first."""
        wrong = np.flatnonzero(self.preds != self.labels)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")]

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class, (N,)."""
        return self.probs.max(1)

    def calibrated_probs(self, temperature: float) -> np.ndarray:
        """The probabilities after temperature scaling (the argmax, so every prediction, is unchanged)."""
        from .calibrate import calibrated_probs

        return calibrated_probs(np.log(np.clip(self.probs, 1e-12, 1.0)), temperature)  # log-softmax = logits + c

    def calibrated_ece(self, temperature: float) -> float:
        return expected_calibration_error(self.calibrated_probs(temperature), self.labels)

    def per_class_rows(self) -> list[dict[str, float | str | int]]:
        """One dict per class: class, accuracy, precision, recall, f1, support."""
        return [
            {
                "class": CLASSES[c],
                "accuracy": float(self.recall[c]),
                "precision": float(self.precision[c]),
                "recall": float(self.recall[c]),
                "f1": float(self.f1[c]),
                "support": int(self.support[c]),
            }
            for c in range(NUM_CLASSES)
        ]

    def card_metrics(self, subset_n: int = SUBSET_N) -> dict:
        """What a model card stores: summary, per-class rows, confusion, fixed-subset accuracy."""
        head = slice(0, subset_n)
        return {
            **self.summary(),
            "per_class": self.per_class_rows(),
            "confusion": self.confusion.tolist(),
            f"subset{subset_n}_accuracy": float((self.preds[head] == self.labels[head]).mean()),
        }

    def summary(self) -> dict[str, float | int]:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "n": len(self.labels),
            "errors": int((self.preds != self.labels).sum()),
        }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: sample-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def reliability_curve(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Per confidence bin: mean confidence, accuracy and count (for a reliability diagram)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    return {
        "confidence": np.bincount(which, conf, bins) / safe,
        "accuracy": np.bincount(which, correct.astype(float), bins) / safe,
        "count": count,
        "edges": edges,
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (a class never predicted, or never present)."""
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, F1, support) per class from a confusion matrix (rows: true, columns: predicted).

    Zero where undefined, as scikit-learn's `precision_recall_fscore_support(..., zero_division=0)`;
    plain numpy, so that a CLI run does not pay for importing scikit-learn.
    """
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    return _ratio(tp, predicted), _ratio(tp, support), _ratio(2 * tp, support + predicted), support


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> EvalResult:
    """Derive every metric from logits (N, 10) and integer labels (N,)."""
    logits = logits.float()
    loss = F.cross_entropy(logits, labels).item()
    probs = logits.softmax(1).numpy()
    y = labels.numpy()
    pred = probs.argmax(1)
    cm = np.bincount(y * NUM_CLASSES + pred, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)
    p, r, f1, s = per_class(cm)
    return EvalResult(
        accuracy=float((pred == y).mean()),
        loss=loss,
        macro_f1=float(f1.mean()),
        ece=expected_calibration_error(probs, y),
        confusion=cm,
        precision=p,
        recall=r,
        f1=f1,
        support=s,
        probs=probs.astype(np.float32),
        labels=y,
        preds=pred,
    )


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, tta_flip: bool = False, precision: str = "fp32"
) -> EvalResult:
    """Run `model` once over uint8 images (N, 28, 28) and compute all metrics."""
    return metrics_from_logits(predict_logits(model, images, tta_flip=tta_flip, precision=precision), labels)


def evaluate_test(
    model: nn.Module, *, tta_flip: bool = False, data: FashionMNIST | None = None, limit: int | None = None
) -> EvalResult:
    """The model's metrics on the test set (or its first `limit` images): every caller's one path.

    Args:
        tta_flip: the checkpoint's own setting (`Checkpoint.tta_flip`, `TrainConfig.tta_flip`).
        data: the dataset (default: `load_dataset()`, cached per process).
    """
    ds = data or load_dataset()
    n = len(ds.test_labels) if limit is None else limit
    return evaluate(model, ds.test_images[:n], ds.test_labels[:n], tta_flip=tta_flip)
