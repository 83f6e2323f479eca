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
