"""Device and precision choice, the input path, predict_logits and the training process's malloc."""

import platform
import subprocess
import sys

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
    keep_freed_memory,
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


class FakeLibc:
    """mallopt as glibc has it: (param, value) -> 1 when it took, 0 when it refused."""

    def __init__(self, *answers: int):
        self.answers, self.calls = list(answers), []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answers.pop(0)


def test_keep_freed_memory_raises_glibcs_mmap_and_trim_thresholds():
    libc = FakeLibc(1, 1)
    assert keep_freed_memory(libc) is True
    # M_MMAP_THRESHOLD (-3) to glibc's 64-bit maximum, then M_TRIM_THRESHOLD (-1) to 1 GiB
    assert libc.calls == [(-3, 32 * 2**20), (-1, 2**30)]


@pytest.mark.parametrize("answers", [(0, 1), (1, 0)])
def test_keep_freed_memory_says_so_when_mallopt_refuses_either(answers):
    assert keep_freed_memory(FakeLibc(*answers)) is False


def test_keep_freed_memory_needs_a_c_library_with_mallopt(monkeypatch):
    assert keep_freed_memory(object()) is False  # no mallopt: musl-less, macOS, Windows
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert keep_freed_memory() is False  # not Linux: not even looked for
    monkeypatch.setattr(runtime.sys, "platform", "linux")

    def no_libc(name):
        raise OSError("cannot load the C library")

    monkeypatch.setattr(runtime.ctypes, "CDLL", no_libc)
    assert keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_finds_glibc_in_this_process():
    assert keep_freed_memory() is True  # as every test process that builds a trainer already has


STEPS = """
import resource, torch
from fmnist.models import create_model
from fmnist.runtime import keep_freed_memory
torch.manual_seed(0)
m = create_model("cnn2").to(memory_format=torch.channels_last)
opt = torch.optim.Adam(m.parameters(), 1e-3)
x, y = torch.randn(128, 1, 28, 28).to(memory_format=torch.channels_last), torch.randint(0, 10, (128,))
def faults_per_step(n=5):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n
faults_per_step()
print(keep_freed_memory())
faults_per_step()
print(min(faults_per_step() for _ in range(3)))  # a round can still grow the heap once
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_training_step_takes_no_fresh_pages_once_freed_memory_is_kept():
    """A cnn2 step's largest blocks are 11 MB (128x32x26x26 floats, 2,700 pages each): given back to
    the OS, they come back as fresh pages, thousands of page faults a step (up to 8,000 measured)."""
    out = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"
    assert float(out[1]) < 20


def test_the_machine_line_names_the_cpu_its_cores_and_flags():
    m = {"cpu": "AMD EPYC", "cores": 2, "cpu_flags": ["avx2", "avx512f"]}
    assert runtime.machine_line(m) == "AMD EPYC, 2 cores, flags avx2, avx512f"
    assert runtime.machine_line({**m, "cpu_flags": []}) == "AMD EPYC, 2 cores, flags none"
    here = runtime.machine()
    assert runtime.machine_line() == runtime.machine_line(here) and runtime.machine_line().startswith(
        f"{here['cpu']}, "
    )
