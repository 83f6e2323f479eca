"""scripts/pool_order.py: the zoo's order (pool, then ReLU) against the textbook order, timed alternating."""

import pytest
import torch

from fmnist.models import create_model
from fmnist.runtime import machine_line
from scripts import pool_order


def test_textbook_puts_each_relu_back_before_its_pool_and_the_network_is_the_same():
    model = create_model("cnn2").eval()
    x = torch.rand(4, 1, 28, 28)
    before = model(x)
    assert pool_order.textbook(model) == 2
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d"]
    assert torch.equal(model(x), before)
    assert pool_order.textbook(create_model("quickcnn")) == 0


def test_it_times_both_orders_and_names_the_machine(capsys):
    assert pool_order.main(["cnn2", "fp32", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{machine_line()}; cnn2, fp32, batch 8"
    assert out[1].startswith("  pool, then ReLU: ") and out[1].endswith(" images/s")
    assert out[2].startswith("  ReLU, then pool: ") and out[3].startswith("  ratio: ") and out[3].endswith("x")


def test_the_defaults_are_cnn2_fp32_batch_128_and_bf16_is_a_choice(capsys):
    a = pool_order.parser().parse_args([])
    assert (a.arch, a.precision, a.batch) == ("cnn2", "fp32", 128)
    b = pool_order.parser().parse_args(["keras2", "bf16", "32"])
    assert (b.arch, b.precision, b.batch) == ("keras2", "bf16", 32)
    with pytest.raises(SystemExit):
        pool_order.parser().parse_args(["--help"])
    assert " ".join(pool_order.__doc__.split("\n\n")[0].split()) in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["vgg"], "arch: unknown model 'vgg'"),
        (["cnn2", "fp16"], "invalid choice: 'fp16'"),
        (["cnn2", "fp32", "0"], "batch_size must be in"),
        (["cnn2", "fp32", "many"], "invalid int value: 'many'"),
    ],
)
def test_bad_arguments_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        pool_order.main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_network_without_a_pool_then_relu_is_one_line():
    with pytest.raises(SystemExit, match="^error: quickcnn has no max-pool followed by a ReLU$"):
        pool_order.main(["quickcnn", "fp32", "8"])
