"""scripts/gpu_check.sh, in its smoke form on the CPU: every step still runs and reports its figure.

No GPU is at hand on most machines, so the script would otherwise rot between the sessions that
have one, and a broken step would waste the GPU's few minutes.
"""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_gpu_check_smoke_on_the_cpu(tmp_path):
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_SMOKE": "1"}
    r = subprocess.run(
        ["bash", "scripts/gpu_check.sh", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    summary = (tmp_path / "summary.md").read_text()
    assert r.returncode == 0, summary + r.stdout[-3000:] + r.stderr[-2000:]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in summary.splitlines()
        if line.startswith("| ") and not line.startswith("| step")
    }
    assert set(rows) == {
        "quick-budget",
        "quick-budget-reached",
        "student-budget",
        "best-budget",
        "stall",
        "sweep-2-trials",
        "evaluate",
        "predict",
        "export-onnx",
        "map-and-layers",
        "app-training-path",
        "slots",
    }
    assert rows["best-budget"][0] == "skipped"
    for name, (result, seconds, _) in rows.items():
        if name != "best-budget":
            assert result == "ok" and float(seconds) > 0, (name, result)
    for name in ("quick-budget", "student-budget", "evaluate"):
        assert rows[name][2].endswith(("test", "training", "bf16", "fp32")) and "%" in rows[name][2], rows[name]
    assert rows["quick-budget-reached"][2].startswith("finished: Time budget of 1 s reached"), rows
    assert rows["predict"][2] == "8 images classified" and "conv layers" in rows["map-and-layers"][2]
    assert rows["slots"][2].startswith("1 at once: ") and " / 2 at once: " in rows["slots"][2]
    assert (tmp_path / "quick.onnx").stat().st_size > 1000 and (tmp_path / "sweep.safetensors").is_file()


def _preact20(tmp_path, out, limit, seeds, extra):
    env = {**os.environ, "GPU_DEVICE": "cpu", "SNAPSHOTS": str(tmp_path / "snaps"), "TRAIN_EXTRA": extra}
    return subprocess.run(
        ["bash", "scripts/gpu_preact20.sh", str(tmp_path / out), str(limit), seeds],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_gpu_preact20_trains_the_seeds_at_once_continues_them_and_stops_at_its_limit(tmp_path):
    """scripts/gpu_preact20.sh, tiny and on the CPU: finished seeds report their test accuracy, a seed
    cut off by the time limit keeps its snapshot, and every snapshot comes back in OUT_DIR."""
    r = _preact20(tmp_path, "a", 300, "0 1", "--epochs 1 --subset 200")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["seed 0", "seed 1"]
    assert all(ln.split(": ", 1)[1].startswith("finished (epoch 1/1), test accuracy 0.") for ln in lines), lines
    for s in (0, 1):
        assert (tmp_path / "a" / f"preact20-seed{s}.safetensors").is_file()
        assert (tmp_path / "a" / f"preact20-seed{s}.snapshot").read_bytes() == (
            tmp_path / "snaps" / f"preact20-seed{s}.snapshot"
        ).read_bytes()
    # a long run, cut off: the script still ends in time and says so
    r = _preact20(tmp_path, "b", 4, "2", "--epochs 1000 --subset 200")
    assert r.returncode == 0, r.stdout + r.stderr
    (line,) = r.stdout.splitlines()
    assert line.startswith("seed 2: stopped at the time limit after ") and line.endswith(
        f"its snapshot is in {tmp_path / 'b'}"
    )
    snap = tmp_path / "snaps" / "preact20-seed2.snapshot"
    assert snap.exists() == (tmp_path / "b" / snap.name).exists()
    # a run that fails (another run's snapshot: seed 0's, with other epochs) is reported and fails the script
    r = _preact20(tmp_path, "c", 300, "0", "--epochs 2 --subset 200")
    assert r.returncode == 1 and r.stdout.startswith(
        "seed 0: failed (exit 2): error: preact20-seed0.snapshot is a snapshot of another run"
    )
