"""docs/DEPLOY.md's "A lab of PCs" commands, run as written on a loopback cluster (through tests/test_ray.py).

The lines of the section's bash block are taken from docs/DEPLOY.md itself, so the docs cannot drift
from what works: only the lab address (10.0.0.5 -> 127.0.0.1), the port (a free one) and the
token placeholder (the token step 1 printed) are filled in. The "server" and the "lab PC" are two
Ray nodes on this machine, each with its own empty HOME. Every Ray process is stopped afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_IP, LAB_PORT = "10.0.0.5", "6379"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_commands() -> list[str]:
    """The command lines of the bash block under docs/DEPLOY.md's "## A lab of PCs" (comments dropped)."""
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    section = text.split("## A lab of PCs", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "docs/DEPLOY.md's 'A lab of PCs' has no bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _clean_env(home: Path) -> dict[str, str]:
    """This process's environment with no Ray token anywhere and `home` as HOME."""
    drop = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "FMNIST_RAY_ADDRESS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}


def _split_env(line: str) -> tuple[dict[str, str], list[str]]:
    """'A=1 B=2 cmd args' -> ({A: 1, B: 2}, [cmd, args])."""
    words, env = shlex.split(line), {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    return env, words


def _run(line: str, env: dict[str, str], **subs: str) -> subprocess.CompletedProcess:
    for old, new in subs.items():
        line = line.replace(old, new)
    extra, argv = _split_env(line)
    if argv[0].startswith(".venv/bin/"):
        argv[0] = str(BIN / argv[0].removeprefix(".venv/bin/"))  # the venv running these tests
    return subprocess.run(argv, env={**env, **extra}, cwd=ROOT, capture_output=True, text=True, timeout=180)


def _stop_ray(env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


DRIVER = """
import json
from fmnist.config import TrainConfig
from fmnist.ray_backend import make_manager
from fmnist.settings import Settings

settings = Settings.from_env()
manager, _ = make_manager(settings, settings.ray_address)  # the app's manager (which falls back; this says why)
import ray  # only now: Ray reads RAY_AUTH_MODE when imported, and the backend sets it
job = manager.submit(TrainConfig(arch="logreg", epochs=1, subset=600, precision="fp32"), label="readme")
job.wait(180)
nodes = sum(1 for n in ray.nodes() if n["Alive"])
print(json.dumps({"state": job.state, "error": job.error, "nodes": nodes}))
manager.shutdown()
"""


def test_the_lab_commands_work_as_written(tmp_path):
    lines = lab_commands()
    gen, head, worker, server = lines  # token, head, a lab PC, the app on the server: four lines, as documented
    assert "get-auth-token --generate" in gen and "--head" in head and "<token>" in worker
    assert server.endswith("make classroom") and "FMNIST_RAY_ADDRESS=" in server
    addr = {LAB_IP: "127.0.0.1", LAB_PORT: str(_free_port())}
    server_env, pc_env = _clean_env(tmp_path / "server"), _clean_env(tmp_path / "pc")
    try:
        r = _run(gen, server_env, **addr)
        assert r.returncode == 0, r.stderr[-2000:]
        token = r.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{32,}", token), r.stdout
        assert (tmp_path / "server" / ".ray" / "auth_token").read_text().strip() == token
        r = _run(head, server_env, **addr)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        r = _run(worker, pc_env, **addr, **{"<token>": token})
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        # step 3: the app's environment on the server; the app builds its manager with make_manager()
        extra, argv = _split_env(server.replace(LAB_IP, addr[LAB_IP]).replace(LAB_PORT, addr[LAB_PORT]))
        assert argv == ["make", "classroom"]
        r = subprocess.run(
            [sys.executable, "-c", DRIVER],
            env={**server_env, **extra},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out == {"state": "finished", "error": None, "nodes": 2}, out
    finally:
        _stop_ray(server_env)


@pytest.mark.parametrize("head_mode", ["token", "disabled"])
def test_a_driver_without_a_token_is_refused_in_one_line(tmp_path, head_mode):
    """No token on the driver's machine (and, for 'disabled', a head started without token mode)."""
    port = _free_port()
    env = _clean_env(tmp_path / "server")
    token = tmp_path / "token"
    token.write_text("f" * 64)
    head_env = {**env, "RAY_AUTH_MODE": head_mode, "RAY_AUTH_TOKEN_PATH": str(token)}
    try:
        r = subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=1",
                "--include-dashboard=false",
                "--disable-usage-stats",
            ],
            env=head_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "fmnist",
                "train",
                "--arch",
                "logreg",
                "--epochs",
                "1",
                "--subset",
                "600",
                "--ray",
                f"127.0.0.1:{port}",
            ],
            env=_clean_env(tmp_path / "driver"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode != 0 and "Traceback" not in r.stderr
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and "no token" in err[0] and "ray get-auth-token --generate" in err[0], r.stderr
    finally:
        _stop_ray(head_env)
