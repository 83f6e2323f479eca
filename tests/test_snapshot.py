"""A run stopped after an epoch and continued from its snapshot ends exactly where it would have."""

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from filelock import FileLock, Timeout

from conftest import ROOT
from fmnist import checkpoints, snapshot
from fmnist.cli import main
from fmnist.config import Augment, TrainConfig
from fmnist.snapshot import SnapshotError, load_snapshot, save_snapshot
from fmnist.train import DoneEvent, EpochEvent, _start, iter_training

# SGD with momentum buffers, a schedule that moves every step, every augmentation that draws from
# the generator, and dropout (torch's global generator): each is state a snapshot must carry.
SGD = TrainConfig(
    arch="mlp2",
    epochs=3,
    subset=1200,
    batch_size=100,
    optimizer="sgd",
    lr=0.05,
    schedule="onecycle",
    augment=Augment(flip=True, shift=0.1, erase=0.5),
    val_fraction=0.1,
    precision="fp32",
    log_every=1000,
)
ADAM = replace(SGD, arch="cnn2", optimizer="adam", lr=1e-3, schedule="cosine", subset=600, augment=Augment())


def _done(events):
    events = list(events)
    assert isinstance(events[-1], DoneEvent)
    return events, events[-1].result


def _stop_after(cfg, ds, path, epochs, **kw):
    """Train with a snapshot and abandon the run after `epochs` epochs (as a killed process would).

    Returns the last EpochEvent seen."""
    it = iter_training(cfg, ds, snapshot=path, **kw)
    seen = 0
    for ev in it:
        if isinstance(ev, EpochEvent):
            seen += 1
            if seen == epochs:
                break
    it.close()
    return ev


@pytest.fixture(scope="module")
def epoch1(ds, tmp_path_factory):
    """The bytes of SGD's snapshot after epoch 1 (made once, copied by each test)."""
    path = tmp_path_factory.mktemp("snap") / "run.snapshot"
    _stop_after(SGD, ds, path, 1)
    return path.read_bytes()


def test_how_it_runs_may_change_between_sessions(epoch1, ds, tmp_path):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    changed = replace(SGD, epochs=2, log_every=3, device="cpu", precision="auto")
    with pytest.raises(SnapshotError, match=r"\(epochs is 3 there, 2 here\)"):
        list(iter_training(changed, ds, snapshot=path))
    _, result = _done(iter_training(replace(changed, epochs=3), ds, snapshot=path))
    assert result.message.startswith("Continued from run.snapshot after epoch 1.") and len(result.history) == 3


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _rows(history):
    return [{k: v for k, v in r.items() if k not in ("elapsed", "images_per_s")} for r in history]


@pytest.mark.parametrize("cfg", [SGD, ADAM], ids=["sgd", "adam"])
def test_a_continued_run_ends_bit_for_bit_where_the_unbroken_run_ends(cfg, ds, tmp_path):
    _, whole = _done(iter_training(cfg, ds))
    path = tmp_path / "run.snapshot"
    _stop_after(cfg, ds, path, 2)
    events, resumed = _done(iter_training(cfg, ds, snapshot=path))
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == [3]  # only what was left
    _same_weights(whole.model, resumed.model)
    assert _rows(resumed.history) == _rows(whole.history)
    assert (resumed.best_epoch, resumed.val_acc, resumed.status) == (whole.best_epoch, whole.val_acc, "finished")
    assert resumed.message.startswith("Continued from run.snapshot after epoch 2. Finished 3 epochs.")
    assert resumed.train_time_s >= resumed.history[1]["elapsed"] * 0.5  # the earlier epochs' time is counted


def _ticks():
    """A fake clock: one second per reading, from 0 in each process."""
    n = iter(range(10**9))
    return lambda: float(next(n))


def test_elapsed_time_and_the_eta_count_the_earlier_sessions(ds, tmp_path):
    cfg, path = replace(SGD, subset=300), tmp_path / "run.snapshot"
    second = _stop_after(cfg, ds, path, 2, clock=_ticks())
    events = list(iter_training(cfg, ds, clock=_ticks(), snapshot=path))
    (third,) = [e for e in events if isinstance(e, EpochEvent)]
    assert second.epoch == 2 and third.elapsed > second.elapsed  # the clock restarted at 0; the run's time did not
    assert events[-1].result.history[1]["elapsed"] == second.elapsed


def test_the_best_epochs_weights_survive_the_break(ds, tmp_path, monkeypatch):
    """Epoch 1 scores best; the run breaks after epoch 2; the continued run still restores epoch 1."""
    scores = iter([(0.5, 0.9), (0.9, 0.5), (0.8, 0.6)])  # (loss, accuracy) per epoch
    monkeypatch.setattr("fmnist.train._validate", lambda run: next(scores))
    path = tmp_path / "run.snapshot"
    _stop_after(SGD, ds, path, 1)
    run = _start(SGD, ds)
    load_snapshot(run, path)
    epoch1 = {k: v.clone() for k, v in run.trainer.model.state_dict().items()}
    _stop_after(SGD, ds, path, 1)  # epoch 2, continued from the snapshot of epoch 1
    _, result = _done(iter_training(SGD, ds, snapshot=path))
    assert result.best_epoch == 1 and result.val_acc == 0.9
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, epoch1[k]), k
    assert "Restored the best weights (epoch 1" in result.message


def test_a_finished_snapshot_trains_nothing_more(ds, tmp_path):
    path = tmp_path / "run.snapshot"
    cfg = replace(SGD, epochs=1)
    _, first = _done(iter_training(cfg, ds, snapshot=path))
    events, again = _done(iter_training(cfg, ds, snapshot=path))
    assert not [e for e in events if not isinstance(e, DoneEvent)]
    _same_weights(first.model, again.model)
    assert again.message.startswith("Continued from run.snapshot after epoch 1. Finished 1 epochs.")


def test_a_new_snapshot_makes_its_folders(ds, tmp_path):
    path = tmp_path / "runs" / "today" / "run.snapshot"
    _done(iter_training(replace(SGD, epochs=1, subset=300), ds, snapshot=path))
    assert path.is_file()


def test_a_spent_patience_is_not_trained_past(ds, tmp_path, monkeypatch):
    scores = iter([(0.5, 0.9), (0.9, 0.5), (0.9, 0.5)])
    monkeypatch.setattr("fmnist.train._validate", lambda run: next(scores))
    cfg, path = replace(SGD, epochs=5, patience=1), tmp_path / "run.snapshot"
    _, first = _done(iter_training(cfg, ds, snapshot=path))
    assert first.status == "early_stopped" and len(first.history) == 2
    events, again = _done(iter_training(cfg, ds, snapshot=path))
    assert again.status == "early_stopped" and len(again.history) == 2
    assert not [e for e in events if isinstance(e, EpochEvent)]


def test_a_stopped_epoch_leaves_the_last_whole_epoch_in_the_snapshot(ds, tmp_path):
    cfg, path = replace(SGD, log_every=1), tmp_path / "run.snapshot"
    _stop_after(cfg, ds, path, 1)
    before = path.read_bytes()
    stop = threading.Event()
    for ev in iter_training(cfg, ds, stop=stop, snapshot=path):  # noqa: B007 (ev: the last event)
        stop.set()  # at epoch 2's first batch
    assert ev.status == "stopped" and ev.message.startswith("Continued from run.snapshot after epoch 1. Stopped")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "change, said",
    [
        (dict(lr=0.02), "lr is 0.05 there, 0.02 here"),
        (dict(augment=Augment(flip=True, shift=0.1, erase=0.25)), "augment.erase is 0.5 there, 0.25 here"),
        (dict(seed=1), "seed is 0 there, 1 here"),
    ],
)
def test_a_snapshot_of_another_run_is_refused_naming_the_option(epoch1, change, said, ds, tmp_path):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    with pytest.raises(SnapshotError) as e:
        list(iter_training(replace(SGD, **change), ds, snapshot=path))
    assert str(e.value) == (
        f"run.snapshot is a snapshot of another run ({said}); give the same options, or another --snapshot"
    )


def test_another_dataset_is_refused(epoch1, ds, tmp_path):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    other = replace(ds, checksum="0" * 8)
    with pytest.raises(SnapshotError, match="trained on another copy of the dataset"):
        list(iter_training(SGD, other, snapshot=path))


def _meta_edit(path, edit):
    """Rewrite the snapshot's JSON with `edit` applied (tensors unchanged)."""
    from safetensors.torch import load, save

    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8 : 8 + n])["__metadata__"][snapshot.KEY])
    edit(meta)
    path.write_bytes(save(load(data), metadata={snapshot.KEY: json.dumps(meta)}))


def _tensor_edit(path, edit):
    """Rewrite the snapshot's tensors with `edit` applied (JSON unchanged)."""
    from safetensors.torch import load, save

    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    tensors = load(data)
    edit(tensors)
    path.write_bytes(save(tensors, metadata=meta))


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda p: p.write_bytes(b""), "is not a training snapshot"),
        (lambda p: p.write_bytes(b"\x80\x04K\x01."), "is not a training snapshot"),  # a pickle
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "is not a training snapshot"),  # cut short
        (lambda p: p.write_bytes((10**9).to_bytes(8, "little") + b"{}"), "is not a training snapshot"),
        (lambda p: _meta_edit(p, lambda m: m.update(format="fmnist-snapshot/0")), "is not a training snapshot"),
        (lambda p: _meta_edit(p, lambda m: m.update(epoch=7)), "is damaged and cannot continue this run (epoch 7)"),
        (lambda p: _meta_edit(p, lambda m: m.update(epoch=0)), "is damaged and cannot continue this run (epoch 0)"),
        (lambda p: _meta_edit(p, lambda m: m.pop("history")), "is damaged and cannot continue this run (KeyError)"),
        (lambda p: _meta_edit(p, lambda m: m["history"].append({})), "(epoch 1)"),
        (lambda p: _meta_edit(p, lambda m: m["config"].pop("tta_flip")), "(tta_flip is None there, False here)"),
        (lambda p: _tensor_edit(p, lambda t: t.pop("model/1.weight")), "cannot continue this run (RuntimeError)"),
        (
            lambda p: _meta_edit(p, lambda m: m.update(config=[])),
            "is damaged and cannot continue this run (no options)",
        ),
    ],
)
def test_a_damaged_snapshot_is_one_line(epoch1, damage, said, ds, tmp_path):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    damage(path)
    with pytest.raises(SnapshotError) as e:
        list(iter_training(SGD, ds, snapshot=path))
    assert said in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_is_not_a_snapshot(ds, tmp_path, tiny_model):
    path = checkpoints.save_checkpoint(tiny_model.model, {"arch": "mlp", "kwargs": {}}, tmp_path / "m.safetensors")
    with pytest.raises(SnapshotError, match="m.safetensors is not a training snapshot"):
        list(iter_training(SGD, ds, snapshot=path))


def test_a_snapshot_too_large_is_refused_unread(epoch1, ds, tmp_path, monkeypatch):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    monkeypatch.setattr(snapshot, "MAX_BYTES", path.stat().st_size - 1)
    with pytest.raises(SnapshotError, match="too large for a training snapshot"):
        list(iter_training(SGD, ds, snapshot=path))


def test_a_failed_write_keeps_the_previous_snapshot_whole(epoch1, ds, tmp_path, monkeypatch):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    before = path.read_bytes()
    run = _start(SGD, ds)
    load_snapshot(run, path)

    def full_disk(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(SnapshotError) as e:
        save_snapshot(run, 1, path)
    assert str(e.value) == "cannot write the snapshot run.snapshot (No space left on device)"
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.snapshot"]  # no temp file left behind


def test_a_snapshot_that_is_not_a_file_is_refused(ds, tmp_path):
    (tmp_path / "run.snapshot").mkdir()
    with pytest.raises(SnapshotError, match="^run.snapshot is not a regular file$"):
        list(iter_training(SGD, ds, snapshot=tmp_path / "run.snapshot"))


def test_cli_unwritable_snapshot_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr("fmnist.train._train_epoch", None)  # refused before any training
    assert main(_cli(tmp_path, "--snapshot", str(blocker / "run.snapshot"), "--epochs", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write the snapshot run.snapshot (") and "\n" not in err


def test_write_atomic_without_fchmod(tmp_path, monkeypatch):
    """Windows' Python 3.11 has no os.fchmod: saving must not need it."""
    monkeypatch.delattr(os, "fchmod")
    out = checkpoints.write_atomic(tmp_path / "sub" / "deeper" / "f.bin", b"abc")
    assert out.read_bytes() == b"abc" and [p.name for p in out.parent.iterdir()] == ["f.bin"]


def test_write_atomic_writes_beside_the_target_under_a_hidden_temp_name(tmp_path, monkeypatch):
    """One folder (a rename within a filesystem is atomic), and the .NAME.*.tmp that .gitignore knows."""
    moved, real = [], os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (moved.append((Path(a), Path(b))), real(a, b)))
    checkpoints.write_atomic(tmp_path / "f.bin", b"abc")
    ((src, dst),) = moved
    assert src.parent == dst.parent == tmp_path
    assert src.name.startswith(".f.bin.") and src.name.endswith(".tmp") and len(src.name) > len(".f.bin..tmp")


def test_write_atomic_cleans_up_a_failed_write(tmp_path, monkeypatch):
    (tmp_path / "f.bin").write_bytes(b"old")

    def broken_disk(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_disk)
    with pytest.raises(OSError):
        checkpoints.write_atomic(tmp_path / "f.bin", b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"] and (tmp_path / "f.bin").read_bytes() == b"old"


def test_non_tensor_optimiser_state_comes_back(epoch1, ds, tmp_path):
    """Some optimisers keep plain numbers in their state: they travel in the JSON, not as tensors."""
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    run = _start(SGD, ds)
    load_snapshot(run, path)
    opt = run.trainer.opt
    params = [p for g in opt.param_groups for p in g["params"]]
    opt.state[params[1]]["calls"] = 7
    save_snapshot(run, 1, path)
    again = _start(SGD, ds)
    load_snapshot(again, path)
    state = again.trainer.opt.state_dict()["state"]
    assert state[1]["calls"] == 7 and "calls" not in state[0]
    assert torch.equal(state[1]["momentum_buffer"], opt.state_dict()["state"][1]["momentum_buffer"])


def test_write_atomic_shares_the_file(tmp_path):
    out = checkpoints.write_atomic(tmp_path / "f.bin", b"abc")
    assert out.stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- the CLI


def _cli(tmp_path, *extra):
    return [
        "train", "--arch", "logreg", "--epochs", "2", "--subset", "300", "--precision", "fp32",
        "--out", str(tmp_path / "m.safetensors"), "--force", *extra,
    ]  # fmt: skip


def test_cli_snapshot_continues_and_says_so(tmp_path, capsys):
    snap = tmp_path / "run.snapshot"
    assert main(_cli(tmp_path, "--snapshot", str(snap), "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(_cli(tmp_path, "--snapshot", str(snap), "--epochs", "1")) == 0
    assert "Continued from run.snapshot after epoch 1. Finished 1 epochs." in capsys.readouterr().out
    assert main(_cli(tmp_path, "--snapshot", str(snap))) == 2  # 2 epochs: another run
    assert "epochs is 1 there, 2 here" in capsys.readouterr().err


def test_cli_interrupt_names_the_snapshot(tmp_path, capsys, monkeypatch):
    snap = tmp_path / "run.snapshot"
    real = snapshot.save_snapshot

    def save_then_interrupt(run, epoch, path):
        real(run, epoch, path)
        raise KeyboardInterrupt

    monkeypatch.setattr("fmnist.train.save_snapshot", save_then_interrupt)
    assert main(_cli(tmp_path, "--snapshot", str(snap))) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: interrupted: {snap} holds the last whole epoch; the same command continues"
    )
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("extra, said", [(["--dry-run"], "--dry-run"), (["--ray", "127.0.0.1:1"], "--ray")])
def test_cli_snapshot_refuses_what_it_cannot_continue(extra, said, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "fmnist", *_cli(tmp_path, "--snapshot", str(tmp_path / "s"), *extra)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: --snapshot is for a run on this machine; it does not go with {said}"


# ---------------------------------------------------------------- one run per snapshot at a time

IN_USE = "run.snapshot is being continued by another run right now; wait for it to end, or give another --snapshot"
HOLDER = (  # holds the lock until its stdin closes (a name for the lock: garbage would release it)
    "import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
    "sys.stdin.read()"
)


def _hold_in_another_process(path):
    """A process holding `path`'s run lock until its stdin is closed."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(snapshot.lock_path(path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline() == "held\n"
    return p


def _free(path):
    lock = FileLock(snapshot.lock_path(path), thread_local=False, is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def test_a_snapshot_another_process_is_continuing_is_refused_and_left_alone(epoch1, ds, tmp_path):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    holder = _hold_in_another_process(path)
    try:
        with pytest.raises(SnapshotError) as e:
            list(iter_training(SGD, ds, snapshot=path))
        assert str(e.value) == IN_USE
        assert path.read_bytes() == epoch1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    _, result = _done(iter_training(SGD, ds, snapshot=path))  # the other process is gone: it continues
    assert result.message.startswith("Continued from run.snapshot after epoch 1.")


def test_a_run_holds_its_snapshot_until_it_ends_or_is_abandoned(ds, tmp_path):
    path = tmp_path / "deeper" / "run.snapshot"
    it = iter_training(SGD, ds, snapshot=path)
    assert isinstance(next(ev for ev in it if isinstance(ev, EpochEvent)), EpochEvent)
    assert not _free(path)
    with pytest.raises(SnapshotError, match="being continued by another run"):
        next(iter_training(SGD, ds, snapshot=path))  # a second run in this process, at once
    assert _free(path) is False
    it.close()  # a tab closed mid-run, a Ctrl-C: the lock goes with the run
    assert _free(path)
    _, result = _done(iter_training(SGD, ds, snapshot=path))
    assert result.message.startswith("Continued from run.snapshot after epoch 1.") and _free(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [".run.snapshot.lock", "run.snapshot"]


def test_cli_snapshot_in_use_is_one_line(tmp_path, capsys):
    snap = tmp_path / "run.snapshot"
    holder = _hold_in_another_process(snap)
    try:
        assert main(_cli(tmp_path, "--snapshot", str(snap))) == 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    err = capsys.readouterr().err.strip()
    assert err == "error: " + IN_USE
    assert not snap.exists() and not (tmp_path / "m.safetensors").exists()


def test_progress_reads_the_epochs_done_and_the_runs_epochs(epoch1, tmp_path, tiny_model):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    assert snapshot.progress(path) == (1, SGD.epochs) and snapshot.progress(str(path)) == (1, 3)
    not_one = checkpoints.save_checkpoint(tiny_model.model, {"arch": "mlp", "kwargs": {}}, tmp_path / "m.safetensors")
    with pytest.raises(SnapshotError, match="m.safetensors is not a training snapshot"):
        snapshot.progress(not_one)


def test_progress_of_a_snapshot_without_its_epochs_is_one_line(epoch1, tmp_path, monkeypatch):
    path = tmp_path / "run.snapshot"
    path.write_bytes(epoch1)
    monkeypatch.setattr(snapshot, "_read", lambda p: ({"format": snapshot.FORMAT, "epoch": 1}, {}))
    with pytest.raises(SnapshotError, match="run.snapshot is not a training snapshot"):
        snapshot.progress(path)
