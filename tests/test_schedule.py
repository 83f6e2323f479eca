"""The learning-rate schedule and the time budget, on a fake clock.

The schedule is a function of the run's position, max(steps taken, the budget's clock), capped at
its last step, so no pattern of slow or fast steps can run it past its end (issue 19: a slow first
step or a stall used to crash the run at its last step with "Tried to step N times").
"""

from __future__ import annotations

import pytest
import torch

from fmnist.config import TrainConfig
from fmnist.train import BatchEvent, Trainer, iter_training, schedule_at, train

CFG = dict(arch="logreg", subset=600, batch_size=50, precision="fp32", device="cpu", seed=0, val_fraction=0.1)


class FakeClock:
    """Seconds that move only while a training step runs: step k takes `durations(k)` seconds."""

    def __init__(self, durations):
        self.t, self.durations = 1000.0, durations

    def __call__(self) -> float:
        return self.t


def run(monkeypatch, cfg: TrainConfig, durations, ds):
    """Train `cfg` on a fake clock; return (result, [(lr, beta1, position, clock share) per step])."""
    clock, steps = FakeClock(durations), []
    real = Trainer.step

    def timed_step(self, images, labels, clock_share=None):
        position = self.position(clock_share)
        out = real(self, images, labels, clock_share)
        group = self.opt.param_groups[0]  # what this step used
        steps.append((group["lr"], group["betas"][0], position, clock_share))
        clock.t += clock.durations(len(steps) - 1)
        return out

    monkeypatch.setattr(Trainer, "step", timed_step)
    events = list(iter_training(cfg, ds, clock=clock))
    run.events = events  # for the tests that look at them too
    return events[-1].result, steps


def onecycle_floor(cfg: TrainConfig) -> float:
    return cfg.lr / 25 / 1e4


def test_without_a_clock_the_schedule_is_torchs_onecycle():
    """Every step's lr and beta1 equal torch's OneCycleLR (pct_start 0.25), and cosine its closed form."""
    for total in (1, 2, 3, 5, 8, 36, 101):
        cfg = TrainConfig(arch="logreg", lr=3e-3, schedule="onecycle")
        opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
        try:
            ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.25)
        except ZeroDivisionError:  # torch's own formula divides by zero here (warm-up of zero length)
            continue
        for k in range(total):
            lr, beta1 = schedule_at(cfg, k, total)
            assert lr == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), (total, k)
            assert beta1 == pytest.approx(opt.param_groups[0]["betas"][0], rel=1e-12), (total, k)
            opt.step()
            ref.step()
    cos = TrainConfig(arch="logreg", lr=0.1, schedule="cosine")
    assert schedule_at(cos, 0, 10) == (pytest.approx(0.1), None)
    assert schedule_at(cos, 5, 10)[0] == pytest.approx(0.05)
    assert schedule_at(TrainConfig(lr=0.2), 7, 10) == (0.2, None)  # constant


def test_the_schedule_never_runs_past_its_last_step():
    cfg = TrainConfig(arch="logreg", lr=1e-2, schedule="onecycle")
    floor = onecycle_floor(cfg)
    for pos in (35, 36, 80, 1e9):
        assert schedule_at(cfg, pos, 36)[0] == pytest.approx(floor)
    assert schedule_at(cfg, -5, 36)[0] == pytest.approx(cfg.lr / 25)  # and never before its first
    assert schedule_at(cfg, 3, 1)[0] == pytest.approx(floor)  # a one-step run is its own last step
    assert schedule_at(cfg, 0, 4) == (pytest.approx(cfg.lr), pytest.approx(0.85))  # a zero-length warm-up: the peak


def test_fast_steps_end_by_steps_exactly_on_the_schedule(monkeypatch, ds):
    cfg = TrainConfig(epochs=3, schedule="onecycle", lr=1e-2, time_budget=100, log_every=5, **CFG)
    res, steps = run(monkeypatch, cfg, lambda k: 0.01, ds)
    total = 3 * 12
    assert res.status == "finished" and res.message.startswith("Finished 3 epochs"), res.message
    assert [p for _, _, p, _ in steps] == list(range(total))  # the clock never led: one position per step
    assert [lr for lr, *_ in steps] == pytest.approx([schedule_at(cfg, k, total)[0] for k in range(total)])
    assert steps[-1][0] == pytest.approx(onecycle_floor(cfg)) and res.history[-1]["lr"] == steps[-1][0]
    batches = [e for e in run.events if isinstance(e, BatchEvent)]  # log_every 5 of 12: 5, 10 and the last, 12
    assert [(e.epoch, e.batch) for e in batches] == [(ep, b) for ep in (1, 2, 3) for b in (5, 10, 12)]
    assert [e.progress for e in batches] == pytest.approx(
        [((ep - 1) * 12 + b) / 36 for ep in (1, 2, 3) for b in (5, 10, 12)]
    )
    assert all(0 < e.loss < 5 and e.elapsed > 0 for e in batches) and batches[-1].eta == pytest.approx(0)


@pytest.mark.parametrize(
    "name, durations",
    [
        ("slow first step", lambda k: 6.0 if k == 0 else 0.01),  # CUDA warm-up
        ("stall in the middle", lambda k: 4.5 if k == 12 else 0.01),  # a worker paused after its first epoch
        ("two stalls", lambda k: 3.0 if k in (3, 20) else 0.01),
    ],
)
def test_a_slow_step_moves_the_schedule_ahead_and_the_run_still_ends_by_steps(monkeypatch, ds, name, durations):
    cfg = TrainConfig(epochs=3, schedule="onecycle", lr=1e-2, time_budget=10, **CFG)
    res, steps = run(monkeypatch, cfg, durations, ds)
    total = 3 * 12
    assert res.status == "finished" and res.message.startswith("Finished 3 epochs"), (name, res.message)
    assert res.model is not None and len(res.history) == 3 and len(steps) == total
    positions = [p for _, _, p, _ in steps]
    assert positions == sorted(positions) and positions[-1] == total - 1
    # each step sits at max(steps taken, clock), never further: a jump does not push later steps along
    assert positions == [pytest.approx(min(max(k, c * (total - 1)), total - 1)) for k, (*_, c) in enumerate(steps)]
    # the clock led: somewhere the position is ahead of the steps taken
    assert any(p > k for k, p in enumerate(positions)), name
    assert steps[-1][0] == pytest.approx(onecycle_floor(cfg))  # the floor at the end


def test_a_stall_jumps_the_schedule_to_the_clock(monkeypatch, ds):
    cfg = TrainConfig(epochs=3, schedule="onecycle", lr=1e-2, time_budget=10, **CFG)
    _, steps = run(monkeypatch, cfg, lambda k: 6.0 if k == 0 else 0.0, ds)
    total = 36
    # step 1 starts 6 s into a 10 s budget: 60% of the way, not at step 1
    assert steps[1][2] == pytest.approx(0.6 * (total - 1))
    assert steps[1][0] == pytest.approx(schedule_at(cfg, 0.6 * (total - 1), total)[0])


def test_the_budget_reached_ends_the_run_by_the_clock_near_the_floor(monkeypatch, ds):
    cfg = TrainConfig(epochs=30, schedule="onecycle", lr=1e-2, time_budget=10, **CFG)
    res, steps = run(monkeypatch, cfg, lambda k: 1 / 16, ds)  # 160 steps fit in the budget; the epochs hold 360
    assert res.message.startswith("Time budget of 10 s reached in epoch 14, batch 5."), res.message  # 13 x 12 + 4 done
    assert res.status == "finished" and len(steps) == 160 and res.model is not None and res.history[-1]["partial"]
    assert res.train_time_s == pytest.approx(10.0)
    positions = [p for _, _, p, _ in steps]
    assert positions == sorted(positions) and positions[-1] == pytest.approx(159 / 160 * (30 * 12 - 1))
    assert steps[-1][0] < 1e-3 * cfg.lr  # annealed by the clock to within one step of the floor
    assert steps[-1][1] > 0.949  # one-cycle's momentum back at its top


def test_a_clock_run_with_a_stall_ends_cleanly_by_the_clock(monkeypatch, ds):
    """A stall near the end that passes the budget outright: the run stops, with weights, no crash."""
    cfg = TrainConfig(epochs=30, schedule="onecycle", lr=1e-2, time_budget=10, **CFG)
    res, steps = run(monkeypatch, cfg, lambda k: 20.0 if k == 50 else 1 / 16, ds)
    assert res.status == "finished" and res.message.startswith("Time budget of 10 s reached"), res.message
    assert len(steps) == 51 and res.model is not None
    assert steps[-1][2] == pytest.approx(50 / 16 / 10 * (30 * 12 - 1))


def test_sgd_momentum_follows_onecycle(ds):
    cfg = TrainConfig(
        arch="logreg",
        epochs=1,
        subset=600,
        batch_size=50,
        optimizer="sgd",
        lr=0.05,
        schedule="onecycle",
        precision="fp32",
        device="cpu",
    )
    res = train(cfg, ds)
    assert res.status == "finished"
    tr = Trainer.build(cfg, 12, torch.device("cpu"), "fp32", torch.Generator().manual_seed(0))
    x, y = ds.train_images[:50], ds.train_labels[:50]
    tr.step(x, y)
    assert tr.opt.param_groups[0]["momentum"] == pytest.approx(0.95) and tr.lr == pytest.approx(0.05 / 25)
    tr.step(x, y, 1.0)  # the clock at the end of the budget: the last position
    assert tr.opt.param_groups[0]["momentum"] == pytest.approx(0.95) and tr.lr == pytest.approx(0.05 / 25 / 1e4)
    assert tr.position(0.5) == pytest.approx(5.5) and tr.steps_done == 2
    one = Trainer.build(cfg, 0, torch.device("cpu"), "fp32", torch.Generator())  # a run of no steps still has one
    assert one.total_steps == 1 and one.position(1.0) == 0.0
