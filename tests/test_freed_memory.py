"""scripts/freed_memory.py: glibc's defaults against freed memory kept, each side in its own processes."""

import json
import platform

import pytest
import torch

from scripts import freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_each_side_runs_in_its_own_process_and_the_kept_side_takes_no_fresh_pages(capsys):
    assert freed_memory.main(["--steps", "3", "--pairs", "1", "--batch-size", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["arch"] == "cnn2" and report["batch_size"] == 64 and report["steps"] == 3
    default, kept = report["runs"]["default"], report["runs"]["kept"]
    assert len(default) == len(kept) == 1
    assert kept[0]["faults_per_step"] < 20  # the trainer kept its freed blocks
    assert report["speedup"] == pytest.approx(kept[0]["images_per_s"] / default[0]["images_per_s"])
    assert report["machine"]["cores"] >= 1


def test_the_default_side_leaves_mallocs_settings_alone(monkeypatch):
    """In a default run the trainer's call is replaced, so the process keeps glibc's defaults."""
    from fmnist import train

    called, batches = [], []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: called.append("kept"))
    monkeypatch.setattr(train.Trainer, "step", lambda self, images, labels: batches.append((images, labels)))
    result = freed_memory.one_run("default", "logreg", "fp32", 8, 2)
    assert called == [] and result["images_per_s"] > 0 and result["faults_per_step"] >= 0
    assert len(batches) == 5 + 2  # warm-up, then the timed steps: consecutive real training batches
    assert all(images.shape == (8, 28, 28) and labels.shape == (8,) for images, labels in batches)
    assert not torch.equal(batches[0][0], batches[1][0])
    monkeypatch.setattr(train, "keep_freed_memory", lambda: called.append("kept"))
    freed_memory.one_run("kept", "logreg", "fp32", 8, 2)
    assert called == ["kept"]


@pytest.mark.parametrize("args", [["--pairs", "0"], ["--steps", "0"], ["--batch-size", "0"]])
def test_a_count_below_one_is_one_line(args, capsys):
    with pytest.raises(SystemExit) as e:
        freed_memory.main(args)
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
