"""Device and precision choice, the input path and predict_logits."""

import pytest
import torch
from torch import nn

from fmnist import runtime
from fmnist.config import ConfigError
from fmnist.data import MEAN, STD
from fmnist.runtime import (
    autocast,
    cpu_flags,
    device_of,
    has_conv,
    machine,
    pick_device,
    pick_precision,
    predict_logits,
    to_input,
)

CPUINFO = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f amx_bf16 sse\n"


def test_named_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device().type == "cpu" and pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="^device 'cuda' requested but no CUDA GPU is available$"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match="^device 'mps' requested but Apple MPS is not available$"):
        pick_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("cuda").type == "cuda"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("mps").type == "mps" and pick_device("auto").type == "cuda"  # CUDA first


def test_cpu_flags_and_machine(monkeypatch):
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: CPUINFO)
    assert cpu_flags() == ["avx2", "avx512f", "amx_bf16"]  # in CPU_FLAGS order
    assert runtime.cpu_has_bf16()
    m = machine()
    assert m["cpu"] == "Test CPU 9000" and m["cpu_flags"] == ["avx2", "avx512f", "amx_bf16"]
    assert m["torch_threads"] == torch.get_num_threads() and m["torch"] == torch.__version__
    assert set(m) == {"cpu", "cpu_flags", "cores", "torch_threads", "gpu", "torch"}
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "flags : avx2 avx512_bf16x\n")
    assert cpu_flags() == ["avx2"] and not runtime.cpu_has_bf16()  # whole words only
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "")
    assert cpu_flags() == [] and machine()["cpu"]  # falls back to platform's name


def test_cpuinfo_is_read_from_proc(monkeypatch, tmp_path):
    assert "processor" in runtime._cpuinfo()  # Linux test machines have /proc/cpuinfo
    import builtins

    real_open = builtins.open
    monkeypatch.setattr(
        builtins,
        "open",
        lambda p, *a, **k: (_ for _ in ()).throw(OSError()) if p == "/proc/cpuinfo" else real_open(p, *a, **k),
    )
    assert runtime._cpuinfo() == ""


def test_pick_precision(monkeypatch):
    cpu = torch.device("cpu")
    assert pick_precision("fp32", cpu) == "fp32" and pick_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert pick_precision("auto", cpu) == "bf16"
    assert pick_precision("auto", torch.device("mps")) == "fp32"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert pick_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_precision("auto", torch.device("cuda")) == "fp32"


def test_autocast_only_for_bf16():
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_has_conv():
    assert has_conv(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    assert not has_conv(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


def test_to_input_normalises_both_input_kinds():
    u8 = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    x = to_input(u8)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.tensor((1 - MEAN) / STD))
    f = torch.zeros(2, 1, 28, 28)
    assert torch.allclose(to_input(f), torch.tensor(-MEAN / STD))  # floats are already in [0, 1]
    assert torch.allclose(to_input(torch.full((2, 28, 28), 0.5)), torch.tensor((0.5 - MEAN) / STD))
    cl = to_input(u8, channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, x)
    assert to_input(torch.zeros(3, 1, 28, 28)).is_contiguous()


class _Recorder(nn.Module):
    """Logit k = mean of the normalised input times k; records the batches it sees."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.arange(10.0))
        self.seen: list[int] = []

    def forward(self, x):
        self.seen.append(len(x))
        return x.flatten(1)[:, :14].mean(1, keepdim=True) * self.w  # left half of the first row


def test_predict_logits_batches_and_restores_the_mode():
    m = _Recorder()
    imgs = torch.randint(0, 256, (25, 28, 28), dtype=torch.uint8)
    m.train()
    out = predict_logits(m, imgs, batch_size=10)
    assert m.training and m.seen == [10, 10, 5]  # every image once, in batches
    assert out.shape == (25, 10) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.allclose(out, predict_logits(m, imgs))  # batching does not change the result
    assert torch.allclose(out[:, 1], to_input(imgs)[:, 0, 0, :14].mean(1))
    m.eval()
    predict_logits(m, imgs[:2])
    assert not m.training
    flipped = predict_logits(m, imgs, tta_flip=True)
    mirror = predict_logits(m, imgs.flip(-1))
    assert torch.allclose(flipped, (out + mirror) / 2, atol=1e-6)
    empty = predict_logits(m, imgs[:0])
    assert empty.shape == (0, 10)


def test_predict_logits_runs_the_model_in_eval_mode():
    modes = []
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    m.register_forward_pre_hook(lambda mod, inp: modes.append(mod.training))
    m.train()
    predict_logits(m, torch.zeros(3, 28, 28, dtype=torch.uint8), device=torch.device("cpu"))
    assert modes == [False] and m.training


def test_cpu_model_name_keeps_its_own_colons(monkeypatch):
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "model name\t: Vendor: Model 7\nflags : avx512_bf16\n")
    assert machine()["cpu"] == "Vendor: Model 7"
    assert runtime.cpu_has_bf16()  # AVX512-BF16 alone is enough


def test_device_of_is_where_the_weights_are_or_the_cpu():
    assert device_of(nn.Linear(2, 2)) == torch.device("cpu")
    assert device_of(nn.Sequential(nn.ReLU(), nn.Flatten())) == torch.device("cpu")  # no weights at all
    assert device_of(nn.Linear(2, 2).to("meta")) == torch.device("meta")  # wherever they are
