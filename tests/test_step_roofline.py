"""scripts/step_roofline.py: a step's FLOPs counted exactly, and the ceiling it implies computed from them.

Imported as `scripts.step_roofline`, so that mutmut maps its mutants to these tests.
"""

import json

import torch

from fmnist.config import explain_config
from fmnist.train import Trainer
from scripts import step_roofline
from scripts.step_roofline import TRAIN_IMAGES, main, sgemm_gflops, step_flops, step_rate


def _trainer(arch: str, batch_size: int) -> Trainer:
    cfg, _ = explain_config(recipe=arch, batch_size=batch_size, precision="fp32")
    return Trainer.build(cfg, 100, torch.device("cpu"), "fp32", torch.Generator().manual_seed(0))


def test_a_step_counts_the_forward_and_the_weight_gradient_not_the_input_gradient():
    """logreg: x (8, 784) @ W (784, 10) forward, and the weight's gradient in the backward pass; the
    input needs no gradient, so it costs 2 products of 2*8*784*10 FLOPs."""
    tr = _trainer("logreg", 8)
    images, labels = torch.zeros(8, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.long)
    assert step_flops(tr, images, labels) == 2 * (2 * 8 * 784 * 10)
    assert tr.steps_done == 1  # a real step was taken


def test_cnn2_step_is_the_seed_models_arithmetic():
    """conv 1->32 3x3 on 28x28 and 32->64 3x3 on 13x13, dense 1600->128->10: forward, both weight
    gradients, the second convolution's and the dense layers' input gradients."""
    b = 4
    conv1, conv2 = 2 * b * 32 * 26 * 26 * 9, 2 * b * 64 * 11 * 11 * 32 * 9
    dense = 2 * b * (1600 * 128 + 128 * 10)
    want = (conv1 + conv2 + dense) + (conv1 + 2 * conv2 + 2 * dense)  # forward, then backward
    tr = _trainer("cnn2", b)
    got = step_flops(tr, torch.zeros(b, 28, 28, dtype=torch.uint8), torch.zeros(b, dtype=torch.long))
    assert got == want


def test_rates_are_positive_per_round_and_sgemm_is_timed():
    tr = _trainer("logreg", 16)
    images, labels = torch.zeros(16 * 8, 28, 28, dtype=torch.uint8), torch.zeros(16 * 8, dtype=torch.long)
    rates = step_rate(tr, images, labels, steps=3, rounds=2)
    assert len(rates) == 2 and all(r > 0 for r in rates)
    assert tr.steps_done == 5 + 3 * 2  # warm-up, then the rounds
    # FLOPs of n^3 multiply-adds: a 2-core CPU does tens of GFLOP/s, no CPU 10,000 in fp32 (n*3 or n**4 would)
    assert 0.5 < sgemm_gflops(n=1024, rounds=2) < 10_000


def test_report_is_consistent(capsys, monkeypatch):
    monkeypatch.setattr(step_roofline, "sgemm_gflops", lambda: 10.0)  # a fixed ceiling: exact arithmetic
    assert main(["--arch", "logreg", "--batch-size", "100", "--steps", "2", "--rounds", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    flops = 2 * (2 * 100 * 784 * 10)
    assert r["step_mflop"] == round(flops / 1e6, 1) and r["sgemm_gflops"] == 10.0
    assert r["precision"] == "fp32" and r["arch"] == "logreg" and r["batch_size"] == 100 and len(r["images_per_s"]) == 3
    steps = 3 * (TRAIN_IMAGES // 100)  # 540 batches an epoch, 3 epochs
    assert r["steps_s_at_sgemm_rate"] == round(steps * flops / 10e9, 1)
    assert "threads" in r["machine"] and "goal_s" not in r
    rate = sorted(r["images_per_s"])[1]  # the median of three (rounded)
    assert abs(r["steps_s_now"] - steps * 100 / rate) <= 0.01 * r["steps_s_now"] + 0.1
    assert abs(r["step_gflops"] - flops * rate / 100 / 1e9) <= 0.1 + 0.01 * r["step_gflops"]
    assert abs(r["share_of_sgemm"] - r["step_gflops"] / 10.0) <= 0.011


def test_text_report_names_machine_precision_and_goal(capsys, monkeypatch):
    monkeypatch.setattr(step_roofline, "sgemm_gflops", lambda: 10.0)
    assert main(["--arch", "logreg", "--batch-size", "64", "--steps", "1", "--rounds", "1", "--goal-s", "19"]) == 0
    out = capsys.readouterr().out
    assert (
        "| fp32 | logreg batch 64" in out
        and "if every step ran at the sgemm rate (goal: the whole process in 19.0 s)" in out
    )
    assert f"3 epochs of {TRAIN_IMAGES} images" in out
    assert main(["--arch", "logreg", "--batch-size", "64", "--steps", "1", "--rounds", "1"]) == 0
    assert "goal" not in capsys.readouterr().out  # no --goal-s, no goal
