import threading

import pytest
import torch

from fmnist.train import (
    Augment,
    BatchEvent,
    ConfigError,
    DoneEvent,
    EpochEvent,
    TrainConfig,
    augment_batch,
    iter_training,
    pick_device,
    predict_logits,
    preset_config,
    split_indices,
    train,
)  # fmt: skip

FAST = dict(arch="cnn2", subset=3000, batch_size=128, precision="fp32", seed=0)


def test_learns_on_subset_and_emits_typed_events(ds):
    events = list(iter_training(TrainConfig(epochs=2, log_every=5, **FAST), ds))
    batches = [e for e in events if isinstance(e, BatchEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "finished"
    assert [e.epoch for e in epochs] == [1, 2]
    assert batches and all(0 < b.progress <= 1 and b.images_per_s > 0 and b.eta >= 0 for b in batches)
    assert batches[-1].progress == pytest.approx(1.0)
    assert epochs[-1].val_acc > 0.7  # 3k images, 2 epochs: well above chance (10%)
    assert len(done.result.history) == 2 and done.result.model is not None


def test_stop_ends_within_one_batch_and_keeps_weights(ds):
    stop = threading.Event()
    seen = []
    for ev in iter_training(TrainConfig(epochs=5, log_every=1, **FAST), ds, stop):
        if isinstance(ev, BatchEvent):
            seen.append(ev.batch)
            if ev.batch == 3:
                stop.set()
        if isinstance(ev, DoneEvent):
            result = ev.result
    assert seen == [1, 2, 3]  # not one batch more
    assert result.status == "stopped" and result.model is not None
    assert result.history[-1]["partial"] and 0 < result.val_acc <= 1


def _val_acc(model, cfg, ds):
    _, val_idx = split_indices(cfg, ds.train_labels)
    logits = predict_logits(model, ds.train_images[val_idx])
    return (logits.argmax(1) == ds.train_labels[val_idx]).float().mean().item()


def test_early_stopping_restores_best_weights(ds):
    # A near-zero lr cannot improve after epoch 1, so patience 1 stops at epoch 2.
    cfg = TrainConfig(arch="mlp", epochs=6, lr=1e-12, patience=1, subset=2000, precision="fp32", seed=0)
    res = train(cfg, ds)
    assert res.status == "early_stopped" and len(res.history) == 2 and res.best_epoch == 1
    assert _val_acc(res.model, cfg, ds) == pytest.approx(res.history[0]["val_acc"])


def test_restore_best_returns_the_best_epochs_weights(ds):
    cfg = TrainConfig(arch="mlp", epochs=4, lr=0.3, optimizer="sgd", subset=2000, precision="fp32", seed=3)
    res = train(cfg, ds)
    best = max(res.history, key=lambda h: h["val_acc"])
    assert res.best_epoch == best["epoch"] and res.val_acc == pytest.approx(best["val_acc"])
    assert _val_acc(res.model, cfg, ds) == pytest.approx(best["val_acc"])  # the weights, not just the number
    if res.best_epoch != len(res.history):  # the last epoch was worse: the weights went back
        assert _val_acc(res.model, cfg, ds) != pytest.approx(res.history[-1]["val_acc"])


def test_divergence_is_reported_and_no_model_kept(ds):
    res = train(TrainConfig(arch="mlp", lr=10, epochs=2, subset=2000, seed=0), ds)
    assert res.status == "diverged" and res.model is None
    assert "too high" in res.message


def test_same_seed_same_run(ds):
    a = train(TrainConfig(arch="mlp", epochs=1, subset=1000, precision="fp32", seed=7), ds)
    b = train(TrainConfig(arch="mlp", epochs=1, subset=1000, precision="fp32", seed=7), ds)
    assert a.history[0]["val_loss"] == b.history[0]["val_loss"]


def test_augment_batch():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 2:8] = 1.0  # an object on the left
    assert torch.equal(augment_batch(x, Augment()), x)
    flipped = augment_batch(x, Augment(flip=True), torch.Generator().manual_seed(0))
    is_orig = (flipped == x).flatten(1).all(1)
    is_flip = (flipped == x.flip(-1)).flatten(1).all(1)
    assert (is_orig | is_flip).all() and is_orig.any() and is_flip.any()
    moved = augment_batch(x, Augment(shift=0.2, rotate=15, zoom=0.1), torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    assert len({round(v, 3) for v in moved.sum((1, 2, 3)).tolist()}) > 10  # drawn per sample


def test_config_validation():
    for bad in (dict(epochs=0), dict(lr=-1), dict(batch_size=1), dict(val_fraction=0.9), dict(optimizer="rmsprop"),
                dict(arch="nope"), dict(augment={"rotate": 400})):  # fmt: skip
        with pytest.raises(ConfigError):
            TrainConfig(**bad)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("fastest")
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epochz": 3})
    q = preset_config("quick", epochs=2)
    assert q.arch == "quickcnn" and q.epochs == 2
    assert preset_config("cnn3bn").augment.rotate == 10


def test_device_auto(monkeypatch):
    assert pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto").type == "mps"


def test_tta_flip_averages_mirror(tiny_model, ds):
    m, x = tiny_model.model, ds.test_images[:8]
    plain, mirrored = predict_logits(m, x), predict_logits(m, x.flip(-1))
    assert torch.allclose(predict_logits(m, x, tta_flip=True), (plain + mirrored) / 2, atol=1e-5)


def test_random_erase():
    x = torch.ones(2000, 1, 28, 28)
    y = augment_batch(x, Augment(erase=0.5), torch.Generator().manual_seed(0))
    hit = (y == 0).flatten(1).any(1)
    assert 0.4 < hit.float().mean() < 0.6  # about half the images lose a square
    area = (y[hit] == 0).flatten(1).sum(1)
    assert area.max() == 144 and {16, 25, 36, 144} <= set(area.tolist())  # whole 4..12 px squares
    assert area.min() >= 1
    assert torch.equal(y[~hit], x[~hit])
