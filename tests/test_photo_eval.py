import json
import subprocess
import sys

from conftest import ROOT


def test_a_vote_row_scores_as_the_saved_vote_of_the_same_models(tmp_path):
    """photo_eval's --votes (chosen on tuning seeds before a vote is saved) is the vote fmnist ensemble saves."""
    for name in ("quick", "mlp2"):
        (tmp_path / f"{name}.safetensors").write_bytes((ROOT / "checkpoints" / f"{name}.safetensors").read_bytes())
    members = [str(tmp_path / f"{n}.safetensors") for n in ("quick", "mlp2")]
    vote = tmp_path / "vote.safetensors"
    made = subprocess.run(
        [sys.executable, "-m", "fmnist", "ensemble", *members, "--link", "--out", str(vote)], cwd=ROOT, timeout=300
    )
    assert made.returncode == 0
    args = ["--models", f"{members[0]},{members[1]},{vote}", "--votes", "quick+mlp2", "--levels", "phone,dark"]
    r = subprocess.run(
        [sys.executable, "scripts/photo_eval.py", *args, "--n", "40", "--odd", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    acc = json.loads(r.stdout)["accuracy"]
    assert acc["quick+mlp2"] == acc["vote"] and set(acc) == {"quick", "mlp2", "vote", "quick+mlp2"}
    assert acc["quick"] != acc["mlp2"]  # the vote differs from at least one member, so the check can fail
    bad = subprocess.run(
        [sys.executable, "scripts/photo_eval.py", "--models", "quick", "--votes", "quick+best"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--votes quick+best: every member must be one of --models (quick)" in bad.stderr
    assert "Traceback" not in bad.stderr
