import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score

from fmnist.evaluate import evaluate, expected_calibration_error, metrics_from_logits


def test_metrics_match_sklearn():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    logits = torch.randn(500, 10, generator=g)
    logits[torch.arange(500), labels] += 2.0  # mostly right, some wrong
    r = metrics_from_logits(logits, labels)
    y, p = labels.numpy(), logits.argmax(1).numpy()
    assert r.accuracy == pytest.approx(accuracy_score(y, p))
    assert r.macro_f1 == pytest.approx(f1_score(y, p, average="macro"))
    assert np.allclose(r.precision, precision_score(y, p, average=None))
    assert (r.confusion == confusion_matrix(y, p)).all()
    assert r.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    assert r.support.sum() == 500


def test_errors_sorted_most_confident_first():
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.tensor([[5.0, 0, 0, 0], [3.0, 0, 0, 0], [0, 0, 9.0, 0], [0, 8.0, 0, 0]])
    logits = torch.nn.functional.pad(logits, (0, 6), value=-10)
    r = metrics_from_logits(logits, labels)
    assert r.error_indices.tolist() == [3, 1]  # sample 3 is the more confident mistake
    assert r.confidence[3] > r.confidence[1]


def test_ece():
    labels = np.array([0] * 8 + [1] * 2)
    probs = np.tile([0.8, 0.2] + [0] * 8, (10, 1))  # 80% confident, 80% right: calibrated
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    probs_over = np.tile([1.0, 0.0] + [0] * 8, (10, 1))  # 100% confident, 80% right
    assert expected_calibration_error(probs_over, labels) == pytest.approx(0.2)


def test_evaluate_real_model(tiny_model, ds):
    r = evaluate(tiny_model.model, ds.test_images[:1000], ds.test_labels[:1000])
    assert 0.6 < r.accuracy < 1 and r.probs.shape == (1000, 10)
    assert len(r.error_indices) == int(round((1 - r.accuracy) * 1000))
