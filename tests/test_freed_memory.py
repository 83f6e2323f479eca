"""scripts/freed_memory.py: glibc's defaults against freed memory kept, each side in its own processes."""

import json
import platform
import subprocess

import pytest
import torch

from fmnist.runtime import machine
from scripts import freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_each_side_runs_in_its_own_process_and_the_kept_side_takes_no_fresh_pages(capsys):
    assert freed_memory.main(["--steps", "10", "--pairs", "1", "--batch-size", "128", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["arch"] == "cnn2" and report["batch_size"] == 128 and report["steps"] == 10
    assert report["precision"] == "fp32"
    default, kept = report["runs"]["default"], report["runs"]["kept"]
    assert len(default) == len(kept) == 1
    # The trainer kept its freed blocks: glibc's defaults cost a median of about 2,000 faults a step
    # here. Kept, 13 runs of this call on 2026-12-06 gave 0 to 135 (the heap still grows now and
    # then), and CI once saw 113 over 3 steps, so the bound is not 20. The default side is not
    # bounded below: glibc's dynamic mmap threshold sometimes settles it at 0 too.
    assert kept[0]["faults_per_step"] < 500
    assert report["speedup"] == pytest.approx(kept[0]["images_per_s"] / default[0]["images_per_s"])
    assert report["machine"]["cores"] >= 1


def test_the_default_side_leaves_mallocs_settings_alone(monkeypatch):
    """In a default run the trainer's call is replaced, so the process keeps glibc's defaults."""
    from fmnist import train

    called, batches = [], []
    monkeypatch.setattr(freed_memory, "keep_freed_memory", lambda: called.append("kept"))
    monkeypatch.setattr(train.Trainer, "step", lambda self, images, labels: batches.append((images, labels)))
    result = freed_memory.one_run("default", "logreg", "fp32", 8, 2)
    assert called == [] and result["images_per_s"] > 0 and result["faults_per_step"] >= 0
    assert len(batches) == 5 + 2  # warm-up, then the timed steps: consecutive real training batches
    assert all(images.shape == (8, 28, 28) and labels.shape == (8,) for images, labels in batches)
    assert not torch.equal(batches[0][0], batches[1][0])
    monkeypatch.setattr(freed_memory, "keep_freed_memory", lambda: called.append("kept"))
    freed_memory.one_run("kept", "logreg", "fp32", 8, 2)
    assert called == ["kept"]


@pytest.mark.parametrize("args", [["--pairs", "0"], ["--steps", "0"], ["--batch-size", "0"]])
def test_a_count_below_one_is_one_line(args, capsys):
    with pytest.raises(SystemExit) as e:
        freed_memory.main(args)
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


class Child:
    """subprocess.run for main's child processes: each side's figures, or a failure."""

    def __init__(self, fail: bool = False):
        self.cmds, self.fail = [], fail

    def __call__(self, cmd, capture_output, text):
        self.cmds.append(cmd)
        side = cmd[cmd.index("--one") + 1]
        rate, faults = (1000.0, 2000.0) if side == "default" else (1100.0, 3.0)
        out = json.dumps({"images_per_s": rate + len(self.cmds), "faults_per_step": faults})
        return subprocess.CompletedProcess(cmd, 1 if self.fail else 0, "warming up\n" + out + "\n", "boom\nlast line")


def test_main_alternates_the_sides_and_prints_each_run_and_the_ratio(monkeypatch, capsys):
    child = Child()
    monkeypatch.setattr(freed_memory.subprocess, "run", child)
    args = ["--pairs", "2", "--precision", "bf16", "--arch", "quickcnn", "--batch-size", "32", "--steps", "7"]
    assert freed_memory.main(args) == 0
    sides = [c[c.index("--one") + 1] for c in child.cmds]
    assert sides == ["default", "kept", "default", "kept"]
    assert all(c[c.index("--precision") + 1] == "bf16" and c[c.index("--steps") + 1] == "7" for c in child.cmds)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("quickcnn, bf16, batch 32, 7 steps a process, 2 pairs; ") and out[0].endswith(
        f" cores, flags {', '.join(machine()['cpu_flags']) or 'none'}"
    )
    assert out[1].split() == [
        "default",
        "images/s",
        "1,001,",
        "1,003",
        "(median",
        "1,002);",
        "page",
        "faults",
        "a",
        "step,",
        "median",
        "2,000",
    ]
    assert "kept" in out[2] and "(median 1,103)" in out[2] and "median 3" in out[2]
    assert out[3] == f"  kept / default: {1103 / 1002:.2f}x"


def test_a_failed_child_is_one_line_naming_its_side(monkeypatch):
    monkeypatch.setattr(freed_memory.subprocess, "run", Child(fail=True))
    with pytest.raises(SystemExit) as e:
        freed_memory.main(["--pairs", "1"])
    assert str(e.value) == "freed_memory: the default run failed: ['last line']"
