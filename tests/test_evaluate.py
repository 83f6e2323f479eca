import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, precision_score

from fmnist.evaluate import evaluate, expected_calibration_error, metrics_from_logits, reliability_curve


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_metrics_match_sklearn_with_absent_and_unpredicted_classes(seed):
    g = np.random.default_rng(seed)
    y = g.choice([0, 1, 2, 3, 5, 7], 300)  # classes 4, 6, 8, 9 never present
    pred = np.where(g.random(300) < 0.6, y, g.choice([0, 2, 4, 6, 8], 300))  # 1, 3, 5, 7, 9 predicted only when right
    pred[y == 7] = 8  # class 7 never predicted right, 9 never predicted at all
    logits = torch.nn.functional.one_hot(torch.as_tensor(pred), 10).float() * 5
    r = metrics_from_logits(logits, torch.as_tensor(y))
    want = precision_recall_fscore_support(y, pred, labels=list(range(10)), zero_division=0)
    for got, expected in zip((r.precision, r.recall, r.f1, r.support), want):
        assert np.allclose(got, expected)
    assert (r.confusion == confusion_matrix(y, pred, labels=list(range(10)))).all()
    assert r.macro_f1 == pytest.approx(want[2].mean())


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


def _one_hot_logits(preds: list[int]) -> torch.Tensor:
    """Logits whose argmax is `preds` (confident, so the softmax is nearly one-hot)."""
    logits = torch.zeros(len(preds), 10)
    logits[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return logits


def test_per_class_rows_hand_computed():
    """Per-class precision and recall differ here, so a swapped column is caught.

    true : 0 0 0 1 1 2 3
    pred : 0 0 1 1 2 2 2
    class 0: TP 2, predicted 2, true 3 -> precision 1,   recall 2/3, f1 0.8
    class 1: TP 1, predicted 2, true 2 -> precision 1/2, recall 1/2, f1 0.5
    class 2: TP 1, predicted 3, true 1 -> precision 1/3, recall 1,   f1 0.5
    class 3: TP 0, predicted 0, true 1 -> precision 0,   recall 0,   f1 0
    classes 4..9: never true, never predicted -> all 0
    """
    from fmnist.data import CLASSES

    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])
    r = metrics_from_logits(_one_hot_logits([0, 0, 1, 1, 2, 2, 2]), labels)
    expected = {  # class: (precision, recall, f1, support)
        0: (1.0, 2 / 3, 0.8, 3),
        1: (0.5, 0.5, 0.5, 2),
        2: (1 / 3, 1.0, 0.5, 1),
        3: (0.0, 0.0, 0.0, 1),
    }
    rows = r.per_class_rows()
    assert len(rows) == 10
    for c, row in enumerate(rows):
        p, rec, f1, s = expected.get(c, (0.0, 0.0, 0.0, 0))
        assert row["class"] == CLASSES[c]
        assert row["precision"] == pytest.approx(p), f"precision of class {c}"
        assert row["recall"] == pytest.approx(rec), f"recall of class {c}"
        assert row["accuracy"] == pytest.approx(rec), f"per-class accuracy of class {c} is its recall"
        assert row["f1"] == pytest.approx(f1), f"f1 of class {c}"
        assert row["support"] == s and isinstance(row["support"], int)
    assert r.accuracy == pytest.approx(4 / 7)
    assert r.macro_f1 == pytest.approx((0.8 + 0.5 + 0.5) / 10)
    card = r.card_metrics(subset_n=3)
    assert card["per_class"] == rows
    assert card["subset3_accuracy"] == pytest.approx(2 / 3) and card["errors"] == 3 and card["n"] == 7
    assert card["confusion"][0] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert card["confusion"][3] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]


def _probs(conf: float, pred: int) -> list[float]:
    """A probability row with `conf` on class `pred` and the rest spread evenly."""
    row = [(1 - conf) / 9] * 10
    row[pred] = conf
    return row


# (confidence, predicted, true label), laid out for bins=10 with edges 0, 0.1, ..., 1; a bin is (lo, hi].
RELIABILITY_CASE = [
    (0.95, 0, 0),  # bin 9, right
    (0.91, 1, 2),  # bin 9, wrong
    (0.99, 3, 3),  # bin 9, right
    (1.00, 2, 2),  # bin 9 (the top edge belongs to the last bin), right
    (0.72, 4, 4),  # bin 7, right
    (0.78, 5, 6),  # bin 7, wrong
    (0.55, 0, 1),  # bin 5, wrong
    (0.50, 8, 9),  # bin 4 (0.5 is the upper edge of (0.4, 0.5]), wrong
    (0.25, 7, 7),  # bin 2, right
]


def _reliability_case() -> tuple[np.ndarray, np.ndarray]:
    probs = np.array([_probs(c, p) for c, p, _ in RELIABILITY_CASE])
    labels = np.array([y for _, _, y in RELIABILITY_CASE])
    assert (probs.argmax(1) == [p for _, p, _ in RELIABILITY_CASE]).all()
    return probs, labels


def test_reliability_curve_hand_computed():
    probs, labels = _reliability_case()
    c = reliability_curve(probs, labels)
    assert c["edges"] == pytest.approx(np.linspace(0, 1, 11)) and c["edges"][0] == 0 and c["edges"][-1] == 1
    assert c["count"].tolist() == [0, 0, 1, 0, 1, 1, 0, 2, 0, 4]
    assert c["count"].sum() == len(labels)
    conf = np.zeros(10)
    conf[[2, 4, 5, 7, 9]] = [0.25, 0.50, 0.55, (0.72 + 0.78) / 2, (0.95 + 0.91 + 0.99 + 1.0) / 4]
    acc = np.zeros(10)
    acc[[2, 4, 5, 7, 9]] = [1.0, 0.0, 0.0, 0.5, 0.75]
    assert c["confidence"] == pytest.approx(conf)
    assert c["accuracy"] == pytest.approx(acc)


def test_reliability_curve_other_bin_count():
    probs = np.array([_probs(0.3, 0), _probs(0.6, 1), _probs(0.7, 2), _probs(0.9, 3)])
    c = reliability_curve(probs, np.array([0, 0, 2, 3]), bins=4)  # bins (0,.25] (.25,.5] (.5,.75] (.75,1]
    assert c["edges"] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert c["count"].tolist() == [0, 1, 2, 1]
    assert c["confidence"] == pytest.approx([0, 0.3, 0.65, 0.9])
    assert c["accuracy"] == pytest.approx([0, 1.0, 0.5, 1.0])


def test_ece_hand_computed():
    probs, labels = _reliability_case()
    # sum over bins of count/N * |accuracy - confidence|, from the table above
    by_hand = (4 * abs(0.75 - 0.9625) + 2 * abs(0.5 - 0.75) + abs(0 - 0.55) + abs(0 - 0.5) + abs(1 - 0.25)) / 9
    assert by_hand == pytest.approx(0.35)
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.35)
    c = reliability_curve(probs, labels, bins=10)
    assert (c["count"] / 9 * np.abs(c["accuracy"] - c["confidence"])).sum() == pytest.approx(0.35)


def test_ece_calibrated_and_overconfident():
    # Two confidence levels, each calibrated: 3 of 5 right at 0.6, 9 of 10 right at 0.9.
    probs = np.array([_probs(0.6, 0)] * 5 + [_probs(0.9, 1)] * 10)
    labels = np.array([0, 0, 0, 5, 5] + [1] * 9 + [5])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    # Same predictions, overconfident: 2 of 5 right at 0.6, 5 of 10 right at 0.9.
    labels_over = np.array([0, 5, 0, 5, 5] + [1, 5] * 5)
    assert expected_calibration_error(probs, labels_over) == pytest.approx((5 * 0.2 + 10 * 0.4) / 15)


def test_reliability_curve_keeps_empty_top_bins_and_the_lowest_bin():
    uniform = np.full(10, 0.1)  # confidence 0.1 exactly: the first bin (0, 0.1]
    probs = np.array([uniform, _probs(0.3, 0)])
    c = reliability_curve(probs, np.array([0, 1]))
    assert len(c["count"]) == len(c["confidence"]) == len(c["accuracy"]) == 10  # the empty top bins are kept
    assert c["count"].tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert c["confidence"][:3] == pytest.approx([0.1, 0, 0.3]) and c["accuracy"][:3].tolist() == [1.0, 0.0, 0.0]
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx((0.9 + 0.3) / 2)


def test_evaluate_runs_the_model_as_it_is_unless_told_to_flip(tiny_model, ds):
    from fmnist.runtime import predict_logits

    x, y = ds.test_images[:300], ds.test_labels[:300]
    plain = evaluate(tiny_model.model, x, y)
    by_hand = predict_logits(tiny_model.model, x).argmax(1)
    assert plain.accuracy == pytest.approx((by_hand == y).float().mean().item())
    flipped = evaluate(tiny_model.model, x, y, tta_flip=True)
    assert plain.loss != flipped.loss
