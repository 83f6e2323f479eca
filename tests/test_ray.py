"""The Ray backend on a real cluster (tests/ray/cases_lab_docs.py, then tests/ray/cases_ray.py).

Ray binds the machine's own address even when given 127.0.0.1, so the cases run in a private
network namespace that has only loopback (`unshare -n`): nothing leaves the machine, and the
head is always stopped. They run with an empty HOME, as on a fresh machine: a token left in
~/.ray by an earlier run cannot make them pass.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")


def test_ray_backend_cases_on_a_loopback_cluster(tmp_path):
    cases = "tests/ray/cases_lab_docs.py tests/ray/cases_ray.py"
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -s -p no:cacheprovider {cases}"
    home = tmp_path / "home"
    home.mkdir()
    drop = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "FMNIST_RAY_ADDRESS")
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "HOME": str(home)}
    r = subprocess.run(
        ["unshare", "-n", "sh", "-c", inner], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    print(r.stdout[-4000:])
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert " passed" in r.stdout and "failed" not in r.stdout.splitlines()[-1]
    assert not (home / ".ray").exists(), "a case left a token in ~/.ray"
