"""The Ray backend on a real single-node cluster (tests/ray/cases_ray.py).

Ray binds the machine's own address even when given 127.0.0.1, so the cases run in a private
network namespace that has only loopback (`unshare -n`): nothing leaves the machine, and the
head is always stopped.
"""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")


def test_ray_backend_cases_on_a_loopback_cluster():
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -s -p no:cacheprovider tests/ray/cases_ray.py"
    r = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(r.stdout[-4000:])
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert " passed" in r.stdout and "failed" not in r.stdout.splitlines()[-1]
