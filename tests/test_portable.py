"""Any laptop: Windows has no fcntl, macOS no sha256sum, and many machines no apt-get.

What can be checked on this Linux machine is checked by taking the thing away: `fcntl` made
unimportable in a fresh interpreter, and a PATH without apt-get, sha256sum, shasum or sudo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mirror import LoopbackMirror

NO_FCNTL = "import sys; sys.modules['fcntl'] = None  # as on Windows: `import fcntl` raises ImportError\n"

APP_WITHOUT_FCNTL = (
    NO_FCNTL
    + """
import threading
from pathlib import Path
from streamlit.testing.v1 import AppTest
from app_support.nav import PREDICT

at = AppTest.from_file("app.py", default_timeout=120).run()
assert not at.exception, at.exception
assert "Fashion-MNIST" in at.title[0].value
at.switch_page(PREDICT.path)
at.run()
assert not at.exception, at.exception

# saves into one folder still take turns, through filelock's fallback lock
from fmnist.checkpoints import load_checkpoint, save_checkpoint
ck = load_checkpoint("checkpoints/quick.safetensors")
out = Path(sys.argv[1])
errors = []
def save(i):
    try:
        save_checkpoint(ck.model, ck.card, out / f"m{i}.safetensors")
    except Exception as e:
        errors.append(e)
threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors
assert sorted(p.name for p in out.glob("*.safetensors")) == [f"m{i}.safetensors" for i in range(4)]
assert "fcntl" not in {m for m in sys.modules if sys.modules[m] is not None}
print("OK without fcntl")
"""
)


def test_the_app_and_a_save_work_without_fcntl(tmp_path, ckpt_dir):
    r = subprocess.run(
        [sys.executable, "-c", APP_WITHOUT_FCNTL, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0 and "OK without fcntl" in r.stdout, (r.stdout + r.stderr)[-3000:]


def test_fcntl_is_imported_nowhere_in_the_project():
    for path in [*ROOT.glob("fmnist/*.py"), *ROOT.glob("app_support/*.py"), *ROOT.glob("views/*.py"), ROOT / "app.py"]:
        assert "import fcntl" not in path.read_text(), path


BANNED = {"apt-get", "apt", "sha256sum", "shasum", "sudo"}


def _path_without(banned: set[str], where: Path) -> str:
    """A PATH of one folder holding links to every program on this PATH, less `banned`."""
    where.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            src = os.path.join(d, name)
            if name in banned or (where / name).exists() or not os.access(src, os.X_OK) or os.path.isdir(src):
                continue
            (where / name).symlink_to(src)
    return str(where)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_setup_without_apt_get_or_sha256sum_downloads_from_the_mirror(tmp_path):
    """scripts/setup.sh on a machine like a Mac: no apt-get, no sha256sum; the dataset comes from the mirror."""
    path = _path_without(BANNED, tmp_path / "bin")
    assert not any(shutil.which(b, path=path) for b in BANNED) and shutil.which("python3", path=path)
    data_dir = tmp_path / "data"
    with LoopbackMirror() as mirror:
        env = {
            **os.environ,
            "PATH": path,
            "FMNIST_DATA_DIR": str(data_dir),
            "FMNIST_DATA_MIRROR": mirror.url,
            "PYTHON": sys.executable,
        }
        r = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        assert "== getting Fashion-MNIST" in r.stdout and "verified: True" in r.stdout, r.stdout
        assert "command not found" not in r.stderr, r.stderr
        assert sum(mirror.requests.values()) == 4
        r = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "== Fashion-MNIST found" in r.stdout, r.stdout  # the second run reuses it
        assert "requirements.txt already installed" in r.stdout and sum(mirror.requests.values()) == 4
    assert sorted(p.name for p in data_dir.glob("*.gz")) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
