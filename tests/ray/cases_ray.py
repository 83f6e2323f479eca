"""Ray backend cases, run by tests/test_ray.py inside a private network namespace (loopback only).

A real single-node Ray head is started on 127.0.0.1 with `ray start --head` on a free port and
stopped afterwards, even on failure. Its token is made for the test (see `head`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RAY = str(Path(sys.executable).with_name("ray"))

from fmnist.checkpoints import load_checkpoint  # noqa: E402
from fmnist.config import TrainConfig  # noqa: E402
from fmnist.jobs import JobManager, follow  # noqa: E402
from fmnist.ray_backend import RayBackend  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A token-mode head; its token is made here, in a temporary file that this process and the CLIs it
    starts read through RAY_AUTH_TOKEN_PATH (nothing in ~/.ray is used or left behind)."""
    token = tmp_path_factory.mktemp("ray") / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.monotonic()
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    print(f"ray head up in {time.monotonic() - t0:.1f}s")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)


@pytest.fixture(scope="module")
def manager(head):
    m = JobManager(backend=RayBackend(head, cpus_per_run=1), heartbeat_s=None)
    yield m
    m.shutdown()


def _small(**kw) -> TrainConfig:
    return TrainConfig(**{"arch": "logreg", "epochs": 1, "subset": 600, "precision": "fp32", "log_every": 2, **kw})


def test_cli_trains_on_the_cluster_and_saves_here(head, tmp_path):
    out = tmp_path / "m"
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
            head,
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "token"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    ck = load_checkpoint(summary["checkpoint"])
    assert summary["status"] == "finished" and ck.card["arch"] == "logreg" and summary["test_accuracy"] > 0.3


def _timed(manager: JobManager, cfg: TrainConfig) -> tuple[list, float, float]:
    """(events, seconds to the first event, seconds to the end) of one run through `manager`."""
    t0 = time.monotonic()
    job = manager.submit(cfg, label="timed")
    events, first = [], None
    for ev in follow(job, poll_s=0.01):
        first = first or time.monotonic() - t0
        events.append(ev)
    assert job.state == "finished" and job.result.model is not None  # the weights came back here
    return events, first, time.monotonic() - t0


def test_events_stream_back_and_overhead_vs_local(manager):
    cfg = _small(arch="mlp", epochs=2, subset=6000)
    events, first, total = _timed(manager, cfg)
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "DoneEvent" and kinds.count("EpochEvent") == 2 and "BatchEvent" in kinds
    local = JobManager(threads=1, heartbeat_s=None)
    try:
        _, local_first, local_total = _timed(local, cfg)
    finally:
        local.shutdown()
    print(
        f"\nFIGURES first event: ray {first:.2f}s, local {local_first:.2f}s; "
        f"whole run: ray {total:.2f}s, local {local_total:.2f}s"
    )


def test_stop_ends_the_run_on_its_node_keeping_weights(manager):
    job = manager.submit(_small(epochs=200, subset=2000, arch="mlp"), label="ray-stop")
    t0 = time.monotonic()
    while not job.snapshot().batches:
        assert time.monotonic() - t0 < 120, "no event from the cluster"
        time.sleep(0.05)
    t_stop = time.monotonic()
    job.stop()
    assert job.wait(60)
    assert job.state == "finished" and job.result.status == "stopped" and job.result.model is not None
    print(f"stop -> ended {time.monotonic() - t_stop:.2f}s")


def test_a_run_the_cluster_cannot_place_is_pending_and_can_leave(head):
    m = JobManager(backend=RayBackend(head, cpus_per_run=64), heartbeat_s=None)  # the cluster has 2 CPUs
    try:
        job = m.submit(_small(), label="ray-pending")
        time.sleep(2)
        snap = job.snapshot()
        assert snap.state == "running" and snap.pending and snap.position is None
        job.stop()
        assert job.wait(30) and job.state == "cancelled"
    finally:
        m.shutdown()


def test_a_worker_killed_mid_run_gives_a_clear_failed_run_and_the_manager_goes_on(manager):
    job = manager.submit(_small(epochs=200, subset=2000, arch="mlp"), label="ray-kill")
    while not job.snapshot().batches:
        time.sleep(0.05)
    import ray

    _, pid = ray.get(job._proc.where.remote())
    os.kill(pid, signal.SIGKILL)
    assert job.wait(60)
    assert job.state == "failed" and "died" in job.error, job.error
    after = manager.submit(_small(), label="ray-after")  # the server keeps serving
    assert after.wait(120) and after.state == "finished"


def test_a_node_without_the_dataset_gets_it_from_the_object_store(head):
    m = JobManager(backend=RayBackend(head, cpus_per_run=1, local_data=False), heartbeat_s=None)
    try:
        job = m.submit(_small(), label="ray-store")
        assert job.wait(120) and job.state == "finished", job.error
    finally:
        m.shutdown()


def test_a_sweep_runs_its_trials_on_the_cluster(head, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fmnist",
            "sweep",
            "--arch",
            "logreg",
            "--epochs",
            "1",
            "--subset",
            "600",
            "--param",
            "lr=1e-3:1e-1:log",
            "--trials",
            "3",
            "--storage",
            f"sqlite:///{tmp_path / 's.db'}",
            "--out",
            str(tmp_path / "best"),
            "--ray",
            head,
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "token"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert [t["state"] for t in res["trials"]].count("complete") >= 2 and res["best"] is not None
    assert load_checkpoint(res["checkpoint"]).card["sweep"]["trial"] == res["best"]["number"]
