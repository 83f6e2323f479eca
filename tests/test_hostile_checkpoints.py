"""A shared checkpoint folder under attack (issue 9): bad files, races, kills, quotas.

The table BAD_FILES is the suite's list of hostile checkpoint files: each must be refused with
a one-line CheckpointError, skipped by the listing, and never hang or allocate its claim.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from safetensors.torch import save as st_save

from conftest import ROOT
from fmnist.checkpoints import (
    FORMAT,
    LOCK_NAME,
    CheckpointError,
    CheckpointExists,
    FolderFull,
    FolderLimits,
    list_checkpoints,
    load_checkpoint,
    read_card,
    save_checkpoint,
    scan_cards,
    to_bytes,
)
from fmnist.models import create_model


def _card(arch: str = "mlp", **kw) -> dict:
    return {"arch": arch, "kwargs": {}, "metrics": {"test": {"accuracy": 0.5}}, **kw}


def _raw(state: dict, card_text: str) -> bytes:
    return st_save(state, metadata={"format": FORMAT, "card": card_text})


def _mlp_state(**change) -> dict:
    state = {k: v.half() for k, v in create_model("mlp").state_dict().items()}
    state.update(change)
    return state


def _nan_weights() -> bytes:
    w = _mlp_state()
    w["1.weight"][0, 0] = float("nan")
    return _raw(w, json.dumps(_card()))


def _int_weights() -> bytes:
    w = _mlp_state()
    w["1.weight"] = torch.ones_like(w["1.weight"], dtype=torch.int16)
    return _raw(w, json.dumps(_card()))


BAD_FILES = {
    # name: (bytes, part of the message)
    "deep-card": (lambda: _raw(_mlp_state(), "[" * 100_000 + "]" * 100_000), "model card"),
    "deep-card-object": (
        lambda: _raw(_mlp_state(), json.dumps(_card(x=json.loads("[" * 40 + "]" * 40)))),
        "nests deeper",
    ),
    "huge-kwargs": (
        lambda: _raw(_mlp_state(), json.dumps({**_card(), "kwargs": {"hidden": 10**9}})),
        "over the limit",
    ),
    "bad-kwargs": (
        lambda: _raw(_mlp_state(), json.dumps({**_card(), "kwargs": {"hidden": -5}})),
        "cannot build 'mlp'",
    ),
    "unknown-arch": (lambda: _raw(_mlp_state(), json.dumps(_card("vgg"))), "cannot build 'vgg'"),
    "nan-weights": (_nan_weights, "NaN or infinite"),
    "int-weights": (_int_weights, "torch.int16"),
    "header-length-lies": (lambda: (10**12).to_bytes(8, "little") + b"{}", "bad header length"),
    "card-not-object": (lambda: _raw(_mlp_state(), "[1, 2]"), "not an object"),
    "pickle": (lambda: b"\x80\x04\x95" + b"\x00" * 64, "pickle"),
}


WEIGHTS_ONLY = {"nan-weights", "int-weights"}  # the card is fine: found when the weights are read


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_checkpoint_files_are_refused_and_skipped(tmp_path, name):
    make, message = BAD_FILES[name]
    p = tmp_path / f"{name}.safetensors"
    p.write_bytes(make())
    save_checkpoint(create_model("mlp"), _card(), tmp_path / "good")
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(p)
    assert str(tmp_path) not in str(err.value)  # names the file, never the server's folders
    listed = [q.stem for q, _ in scan_cards(tmp_path)]
    # The listing survives; a file whose card is sound but whose weights are bad is listed and refused on load.
    assert listed == (sorted([name, "good"]) if name in WEIGHTS_ONLY else ["good"])


def _no_hang(fn, timeout: float = 10.0):
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    out: dict = {}

    def go():
        try:
            out["value"] = fn()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} blocked for {timeout}s"
    return out


def test_a_fifo_named_like_a_checkpoint_neither_hangs_nor_lists(tmp_path):
    fifo = tmp_path / "x.safetensors"
    os.mkfifo(fifo)
    (tmp_path / "dir.safetensors").mkdir()
    save_checkpoint(create_model("mlp"), _card(), tmp_path / "good")
    assert [p.stem for p in _no_hang(lambda: list_checkpoints(tmp_path))["value"]] == ["good"]
    for fn in (load_checkpoint, read_card):
        err = _no_hang(lambda fn=fn: fn(fifo))["error"]
        assert isinstance(err, CheckpointError) and "not a regular file" in str(err)


def test_a_huge_card_is_sized_on_the_meta_device(tmp_path, monkeypatch):
    """{'hidden': 10**9} would be 3 TB of weights: refused before any real tensor is allocated."""
    import fmnist.checkpoints as ck

    built = []
    monkeypatch.setattr(ck, "create_model", lambda *a, **k: built.append(a) or create_model(*a, **k))
    with pytest.raises(CheckpointError, match="over the limit"):
        ck.from_bytes(BAD_FILES["huge-kwargs"][0]())
    assert built == []


# ---------------------------------------------------------------- saves that race and saves that die


RACER = """
import sys, time
sys.path.insert(0, {root!r})
from fmnist.checkpoints import CheckpointExists, save_checkpoint
from fmnist.models import create_model
model = create_model("mlp")
time.sleep(max(0.0, {start} - time.time()))  # both save at the same instant
try:
    save_checkpoint(model, {{"arch": "mlp", "kwargs": {{}}, "note": {note!r}}}, {folder!r} + "/shared", overwrite=False)
    print("saved", {note!r})
except CheckpointExists as e:
    print("conflict", e)
"""


def test_two_processes_saving_one_name_one_wins_one_is_told(tmp_path):
    start = time.time() + 8  # after both have imported torch
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER.format(root=str(ROOT), start=start, note=n, folder=str(tmp_path))],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in ("alice", "bob")
    ]
    outcomes = sorted(p.communicate(timeout=120)[0].strip().split(" ", 1) for p in procs)
    assert [o[0] for o in outcomes] == ["conflict", "saved"], outcomes
    assert "already exists" in outcomes[0][1]
    winner = outcomes[1][1]
    assert load_checkpoint(tmp_path / "shared.safetensors").card["note"] == winner  # complete, the winner's
    assert [p.name for p in tmp_path.iterdir() if p.name != LOCK_NAME] == ["shared.safetensors"]


def test_threads_saving_one_name_exclusively(tmp_path):
    """The same race inside one server process (two Streamlit sessions are two threads)."""
    outcomes = []

    def save(i):
        try:
            save_checkpoint(create_model("mlp"), _card(note=str(i)), tmp_path / "same", overwrite=False)
            outcomes.append("saved")
        except CheckpointExists:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["conflict"] * 5 + ["saved"]
    assert load_checkpoint(tmp_path / "same.safetensors").card["arch"] == "mlp"


SAVER = """
import sys, itertools
sys.path.insert(0, {root!r})
from fmnist.checkpoints import save_checkpoint
from fmnist.models import create_model
model = create_model("mlp", hidden=2048)  # 1.6M params: a 3.3 MB file, long enough to be killed mid-write
print("ready", flush=True)
for i in itertools.count():
    save_checkpoint(model, {{"arch": "mlp", "kwargs": {{"hidden": 2048}}, "i": i}}, {folder!r} + f"/m{{i % 3}}")
"""


def test_killing_a_save_leaves_only_complete_files(tmp_path):
    """SIGKILL a process in the middle of saving, again and again: every listed file loads."""
    script = SAVER.format(root=str(ROOT), folder=str(tmp_path))
    kills = 0
    for delay in (0.05, 0.13, 0.21, 0.37, 0.52):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        kills += 1
        for p in list_checkpoints(tmp_path):
            ck = load_checkpoint(p)  # raises if a file is half-written
            assert ck.card["kwargs"] == {"hidden": 2048}
    assert kills == 5 and list_checkpoints(tmp_path)
    save_checkpoint(create_model("mlp"), _card(), tmp_path / "after")  # the next save clears killed temp files
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------- quota


def test_folder_quota_counts_saved_models_not_shipped_ones(tmp_path):
    limits = FolderLimits(max_models=2, max_bytes=10 * 2**20)
    save_checkpoint(create_model("mlp"), _card(), tmp_path / "quick", limits=limits)  # a shipped name: exempt
    save_checkpoint(create_model("mlp"), _card(), tmp_path / "a", limits=limits)
    save_checkpoint(create_model("mlp"), _card(), tmp_path / "b", limits=limits)
    with pytest.raises(FolderFull, match="2 saved models, the limit is 2"):
        save_checkpoint(create_model("mlp"), _card(), tmp_path / "c", limits=limits)
    save_checkpoint(create_model("mlp"), _card(note="again"), tmp_path / "b", limits=limits)  # replacing is fine
    small = FolderLimits(max_models=100, max_bytes=500_000)
    with pytest.raises(FolderFull, match="MB used"):
        save_checkpoint(create_model("mlp"), _card(), tmp_path / "d", limits=small)
    assert sorted(p.stem for p in list_checkpoints(tmp_path)) == ["a", "b", "quick"]


def test_folder_limits_from_env(monkeypatch):
    monkeypatch.setenv("FMNIST_MAX_SAVED_MODELS", "7")
    monkeypatch.setenv("FMNIST_MAX_SAVED_MB", "1.5")
    assert FolderLimits.from_settings() == FolderLimits(7, int(1.5 * 2**20))


def test_names_stay_inside_the_folder(tmp_path):
    from fmnist.checkpoints import checkpoint_path

    for name in ("../../outside", "/etc/passwd", "..\\..\\win", "a/b/c"):
        p = save_checkpoint(create_model("logreg"), _card("logreg"), checkpoint_path(name, tmp_path))
        assert p.parent == tmp_path
    assert not (tmp_path.parent / "outside.safetensors").exists()


def test_cli_refuses_bad_checkpoints_in_one_line(tmp_path):
    p = tmp_path / "nan.safetensors"
    p.write_bytes(_nan_weights())
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    for path, message in ((p, "NaN or infinite"), (fifo, "not a regular file")):
        r = subprocess.run(
            [sys.executable, "-m", "fmnist", "evaluate", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_to_bytes_roundtrip_still_loads():
    """The hardening refuses nothing that save_checkpoint writes."""
    from fmnist.checkpoints import from_bytes
    from fmnist.models import list_models

    for arch in list_models():
        if arch == "ensemble":
            continue
        ck = from_bytes(to_bytes(create_model(arch), _card(arch)), arch)
        assert ck.card["arch"] == arch
