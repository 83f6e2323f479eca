"""Temperature scaling (fmnist.calibrate): fitted on validation, lowers ECE, never changes a prediction."""

import numpy as np
import pytest
import torch

from conftest import ROOT
from fmnist.calibrate import calibrated_probs, fit_temperature
from fmnist.evaluate import expected_calibration_error


def _overconfident(n: int = 4000, scale: float = 4.0, seed: int = 0):
    """Logits of a model that is right 70% of the time but says ~99%: true logits times `scale`."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    logits = rng.normal(0, 1, (n, 10))
    right = rng.random(n) < 0.7
    target = np.where(right, labels, (labels + rng.integers(1, 10, n)) % 10)
    logits[np.arange(n), target] += 2.5
    return torch.tensor(logits * scale, dtype=torch.float32), labels


def test_scaling_an_overconfident_model_lowers_ece_and_keeps_every_argmax():
    logits, labels = _overconfident()
    t = fit_temperature(logits[:2000], labels[:2000])  # fitted on a "validation" half
    assert t > 2.0  # overconfident: softened
    raw = logits[2000:].softmax(1).numpy()
    cal = calibrated_probs(logits[2000:], t)
    ece_raw, ece_cal = (expected_calibration_error(p, labels[2000:]) for p in (raw, cal))
    assert ece_cal < ece_raw / 2, (ece_raw, ece_cal)
    assert (cal.argmax(1) == raw.argmax(1)).all()


def test_an_underconfident_model_is_sharpened():
    logits, labels = _overconfident(scale=0.3)
    assert fit_temperature(logits, labels) < 1.0


def test_a_calibrated_model_keeps_t_near_one():
    logits, labels = _overconfident(scale=1.0)
    t1 = fit_temperature(logits, labels)
    # the data's own temperature: sample labels from the model's probabilities, then fit
    rng = np.random.default_rng(1)
    p = logits.softmax(1).numpy().astype(np.float64)
    sampled = np.array([rng.choice(10, p=row / row.sum()) for row in p])
    assert abs(fit_temperature(logits, sampled) - 1.0) < 0.1 and t1 > 0


def test_no_samples_is_an_error():
    with pytest.raises(ValueError, match="^no samples to fit a temperature on$"):
        fit_temperature(torch.zeros(0, 10), np.zeros(0, dtype=int))


def test_saved_runs_carry_their_temperature(tiny_model, tmp_path, ds):
    from fmnist.artifacts import save_trained
    from fmnist.checkpoints import load_checkpoint

    path, ev = save_trained(tiny_model, tmp_path / "m")
    ck = load_checkpoint(path)
    assert ck.temperature is not None and 0.05 < ck.temperature < 20
    test = ck.card["metrics"]["test"]
    assert test["ece_calibrated"] == pytest.approx(ev.calibrated_ece(ck.temperature))
    assert test["ece_calibrated"] < test["ece"] + 0.01  # fitted on validation: no worse on test (tiny is near T=1)


def test_evaluate_json_reports_temperature_and_both_eces(tiny_model, tmp_path, capsys):
    import json

    from fmnist.artifacts import save_trained
    from fmnist.checkpoints import load_checkpoint
    from fmnist.cli import main

    path, _ = save_trained(tiny_model, tmp_path / "m")
    assert main(["evaluate", str(path), "--json", "--limit", "2000"]) == 0
    out = json.loads(capsys.readouterr().out)
    t = load_checkpoint(path).temperature
    assert out["temperature"] == t and 0.05 < t < 20 and 0 <= out["ece_calibrated"] < 1 and out["ece"] >= 0


def test_calibrated_probs_divide_the_logits_by_t():
    z = np.array([[2.0, 0.0, -1.0]])
    for t in (0.5, 2.0):
        want = np.exp(z / t) / np.exp(z / t).sum()
        assert np.allclose(calibrated_probs(z, t), want, atol=1e-6)
    assert calibrated_probs(z, 2.0).max() < calibrated_probs(z, None).max() < calibrated_probs(z, 0.5).max()
    assert np.allclose(calibrated_probs(z, None), calibrated_probs(z, 1.0))


def test_predict_shows_the_cards_calibrated_probabilities(ds):
    """The Predict page's probabilities: softmax(logits / T) with the card's T, T > 1 softer."""
    from app_support.inference import probs
    from fmnist.checkpoints import load_checkpoint
    from fmnist.runtime import predict_logits

    ck = load_checkpoint(ROOT / "checkpoints" / "quick.safetensors")
    t = ck.temperature
    assert t is not None and t != 1.0
    img = ds.test_images[0].numpy()
    logits = predict_logits(ck.model, ds.test_images[:1], tta_flip=ck.tta_flip)[0].numpy()
    want = np.exp(logits / t - (logits / t).max())
    assert np.allclose(probs(ck, img), want / want.sum(), atol=1e-5)


def test_a_runs_temperature_comes_from_its_own_validation_split(tiny_model, ds):
    from fmnist.calibrate import fit_for, validation_logits
    from fmnist.data import split_indices
    from fmnist.runtime import predict_logits

    config = tiny_model.config.to_dict()
    logits, labels = validation_logits(tiny_model.model, config, ds)
    _, val_idx = split_indices(tiny_model.config, ds.train_labels)
    assert torch.equal(labels, ds.train_labels[val_idx]) and len(labels) == len(val_idx) > 0
    flipped = validation_logits(tiny_model.model, {**config, "tta_flip": True}, ds)[0]
    assert torch.allclose(flipped, predict_logits(tiny_model.model, ds.train_images[val_idx], tta_flip=True))
    assert not torch.allclose(flipped, logits)  # the run's own test-time flip is applied
    t = fit_for(tiny_model.model, config, ds)
    assert isinstance(t, float) and t == round(t, 4) and 0.05 <= t <= 20
    with pytest.raises(
        ValueError, match=r"^this run kept no validation split \(val_fraction 0\): no temperature can be fitted$"
    ):
        validation_logits(tiny_model.model, {**config, "val_fraction": 0.0}, ds)
    # an architecture's options are not the split's: the student preset's quickcnn widths (a run of
    # `--preset student` failed here, after training, before it was saved)
    student = {**config, "arch": "quickcnn", "model_kwargs": {"widths": [16, 48, 192]}}
    assert torch.equal(validation_logits(tiny_model.model, student, ds)[0], logits)
    assert torch.equal(validation_logits(tiny_model.model, {**config, "arch": "ensemble"}, ds)[0], logits)
