"""Hyperparameter sweeps (fmnist.sweep, `python -m fmnist sweep`): parsing, pruning, storage, resume."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from fmnist.checkpoints import load_checkpoint
from fmnist.cli import main
from fmnist.sweep import Param, SweepError, SweepSpec, check_spec, parse_param


@pytest.mark.parametrize(
    "text, want",
    [
        ("lr=1e-4:1e-1:log", Param("lr", 1e-4, 0.1, True)),
        ("batch_size=64,128,256", Param("batch_size", choices=(64, 128, 256))),
        ("batch-size=32:256", Param("batch_size", 32, 256)),
        ("optimizer=adam,sgd", Param("optimizer", choices=("adam", "sgd"))),
        ("flip=true,false", Param("flip", choices=(True, False))),
        ("weight_decay=0:0.01", Param("weight_decay", 0.0, 0.01)),
    ],
)
def test_parse_param(text, want):
    assert parse_param(text) == want


@pytest.mark.parametrize(
    "text, message",
    [
        ("lr=0.1:0.01", "is empty"),
        ("lr=0.1:0.1", "is empty"),
        ("lr=", "write NAME=LOW:HIGH"),
        ("lr", "write NAME=LOW:HIGH"),
        ("learning_rate=1:2", "unknown parameter 'learning_rate'"),
        ("device=cpu,cuda", "unknown parameter 'device'"),
        ("lr=0:0.1:log", "lr must be in [1e-06, 10], got 0.0"),
        ("lr=0.001:20", "lr must be in [1e-06, 10], got 20.0"),
        ("patience=0:5", "patience must be in [1, 1000], got 0"),
        ("weight_decay=0:0.1:log", "log range needs LOW > 0"),
        ("batch_size=16,99999", "batch_size must be in [2, 2048]"),
        ("optimizer=adam,rmsprop", "optimizer must be one of"),
        ("optimizer=a:b", "not a number"),
        ("epochs=1.5:3", "epochs must be an integer, got '1.5'"),
        ("lr=1:2:linear", "LOW:HIGH:log"),
    ],
)
def test_bad_params_are_one_clear_line(text, message):
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_param(text)


def test_spec_checks():
    lr = parse_param("lr=1e-3:1e-1:log")
    with pytest.raises(SweepError, match="validation split, and this one has none: set val_fraction"):
        check_spec(SweepSpec("s", [lr], fixed={"arch": "mlp"}))  # report 002's recipe trains on all 60k
    with pytest.raises(SweepError, match="has none"):  # a searched value without a split is refused too
        check_spec(SweepSpec("s", [parse_param("val_fraction=0,0.1")], fixed={"arch": "cnn2"}))
    check_spec(SweepSpec("s", [lr], fixed={"arch": "mlp", "val_fraction": 0.1}))
    with pytest.raises(SweepError, match="nothing to search"):
        check_spec(SweepSpec("s", []))
    with pytest.raises(SweepError, match="both fixed and searched"):
        check_spec(SweepSpec("s", [lr], fixed={"arch": "cnn2", "lr": 0.01}))
    with pytest.raises(SweepError, match="invalid"):  # a trial of this range could not be configured
        check_spec(SweepSpec("s", [parse_param("patience=1:3")], fixed={"arch": "cnn2", "epochs": 1, "subset": 5}))


def _sweep(capsys, *args):
    code = main(["sweep", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


TINY = ["--arch", "mlp", "--val-fraction", "0.1", "--epochs", "2", "--subset", "2000", "--precision", "fp32"]


def test_a_sweep_prunes_stores_resumes_and_saves_its_best(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FMNIST_MAX_TRAININGS", "1")  # one trial at a time, whatever the machine's default
    storage = f"sqlite:///{tmp_path / 'sweeps.db'}"
    out = tmp_path / "best"
    # 8 epochs on 10,000 images: long enough that a pruned trial's run is stopped well before its end
    common = [
        "--arch",
        "mlp",
        "--val-fraction",
        "0.1",
        "--epochs",
        "8",
        "--subset",
        "10000",
        "--precision",
        "fp32",
        "--param",
        "lr=1e-5:1e-1:log",
        "--param",
        "batch_size=32,64,128",
        "--study",
        "tiny",
        "--storage",
        storage,
        "--out",
        str(out),
    ]
    code, res = _sweep(capsys, *common, "--trials", "6")
    assert code == 0 and res["study"] == "tiny" and res["arch"] == "mlp"
    assert len(res["trials"]) == 6 and {"number", "params", "state", "value"} <= set(res["trials"][0])
    states = [t["state"] for t in res["trials"]]
    assert "pruned" in states and states.count("complete") >= 2, states  # the median pruner stopped a poor trial
    pruned = [t for t in res["trials"] if t["state"] == "pruned"]
    assert all(t["epochs"] < 8 for t in pruned), pruned  # ... and its run really ended early
    # ... because it was below the median: trials run one at a time here, so the median pruner compared a
    # pruned trial's best value so far with the completed trials before it, at the step where it stopped
    assert all(v == v for t in res["trials"] for v in t["intermediate"].values())  # real values, no NaN
    for p in pruned:
        step = max(int(s) for s in p["intermediate"])
        before = [
            t["intermediate"][str(step)]
            for t in res["trials"]
            if t["state"] == "complete" and t["number"] < p["number"] and str(step) in t["intermediate"]
        ]
        assert len(before) >= 2, (p, before)  # n_startup_trials=2
        assert max(v for s, v in p["intermediate"].items() if int(s) <= step) < statistics.median(before), (p, before)
    assert all(t["epochs"] == 8 for t in res["trials"] if t["state"] == "complete")
    best = res["best"]
    assert best["value"] == max(t["value"] for t in res["trials"] if t["state"] == "complete")
    card = load_checkpoint(res["checkpoint"]).card
    assert card["sweep"]["study"] == "tiny" and card["sweep"]["trial"] == best["number"]
    assert card["sweep"]["params"] == best["params"] and card["metrics"]["val"]["accuracy"] == best["value"]
    best_row = card["history"][card["best_epoch"] - 1]  # the value is the run's own best-epoch validation accuracy
    assert best_row["epoch"] == card["best_epoch"] and best_row["val_acc"] == best["value"] and 0.5 < best["value"] < 1

    assert main(["sweep", *common, "--trials", "1"]) == 2  # the same study again, without --resume
    assert "exists; pass --resume" in capsys.readouterr().err

    code, more = _sweep(capsys, *common, "--trials", "2", "--resume")
    assert code == 0 and len(more["trials"]) == 8 and [t["number"] for t in more["trials"]] == list(range(8))

    other = ["--arch", "logreg", "--epochs", "1", "--param", "lr=1e-3:1e-1", "--study", "tiny", "--storage", storage]
    assert main(["sweep", *other, "--resume", "--trials", "1"]) == 2  # another architecture under the same name
    assert "is a sweep of mlp, not logreg" in capsys.readouterr().err


def test_a_storage_that_does_not_connect_is_one_line_without_its_password(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fmnist",
            "sweep",
            *TINY,
            "--param",
            "lr=1e-3:1e-1",
            "--trials",
            "1",
            "--storage",
            "postgresql://teacher:s3cret@127.0.0.1:1/fmnist",
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "cannot open the study storage" in r.stderr
    assert "s3cret" not in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://teacher:s3cret@db.school:5432/fmnist", "postgresql://teacher:***@db.school:5432/fmnist"),
        ("mysql://root@127.0.0.1/optuna", "mysql://root:***@127.0.0.1/optuna"),
        ("sqlite:////srv/studies/lesson3.db", "sqlite:///.../lesson3.db"),  # no folders for web visitors
        ("postgresql://db.school/fmnist", "postgresql://db.school/fmnist"),  # nothing to hide
        ("teacher@db.school", "teacher@db.school"),  # not a URL
    ],
)
def test_a_storage_url_is_shown_without_its_password_or_folders(url, shown):
    from fmnist.sweep import _redact

    assert _redact(url) == shown


def test_sweep_cli_bad_params(capsys):
    assert main(["sweep", *TINY, "--param", "lr=0.1:0.01"]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["sweep", *TINY]) == 2
    assert "nothing to search" in capsys.readouterr().err


def test_a_full_folder_keeps_the_sweep_going_and_says_so(tmp_path):
    from fmnist.checkpoints import FolderLimits
    from fmnist.jobs import JobManager
    from fmnist.sweep import run_sweep

    spec = SweepSpec(
        "full",
        [parse_param("lr=1e-3:1e-1:log")],
        trials=2,
        fixed={"arch": "logreg", "epochs": 1, "subset": 600},
        storage=f"sqlite:///{tmp_path / 's.db'}",
        save_to=tmp_path / "best",
        limits=FolderLimits(max_models=0),
    )
    m = JobManager(heartbeat_s=None)
    try:
        res = run_sweep(spec, m)
    finally:
        m.shutdown()
    assert [t["state"] for t in res["trials"]] == ["complete", "complete"]
    assert res["checkpoint"] is None and "folder is full" in res["save_error"]
    assert not (tmp_path / "best.safetensors").exists()


class _FakeJob:
    """A trial's run that has already ended, reporting `curve` as its validation accuracy per epoch."""

    def __init__(self, cfg, curve):
        from types import SimpleNamespace

        self.config, self.curve, self.stopped = cfg, curve, False
        self.epochs = [SimpleNamespace(epoch=i + 1, val_acc=v) for i, v in enumerate(curve)]
        self.state, self.error = "finished", None
        self.result = SimpleNamespace(val_acc=max(curve), status="finished", message="")

    def snapshot(self):
        from types import SimpleNamespace

        return SimpleNamespace(epochs=self.epochs, active=False)

    def stop(self):
        self.stopped = True


class _FakeManager:
    """Hands out runs whose curves are set in advance, in the order trials are submitted."""

    max_running = 1

    def __init__(self, curves):
        self.curves, self.jobs = list(curves), []

    def submit(self, cfg, label=""):
        self.jobs.append(_FakeJob(cfg, self.curves.pop(0)))
        return self.jobs[-1]


def _fake_sweep(tmp_path, monkeypatch, curves, trials, resume=False):
    import fmnist.artifacts
    from fmnist.sweep import run_sweep

    saves = []

    def save(result, path, command, **kw):
        saves.append(result.val_acc)
        Path(path).write_bytes(b"")
        return Path(path), None

    monkeypatch.setattr(fmnist.artifacts, "save_trained", save)
    spec = SweepSpec(
        study="fake",
        params=[Param("lr", 1e-4, 1e-1, log=True)],
        trials=trials,
        resume=resume,
        fixed={"arch": "mlp", "val_fraction": 0.1, "epochs": 3},
        storage=f"sqlite:///{tmp_path / 's.db'}",
        save_to=tmp_path / "best.safetensors",
    )
    manager = _FakeManager(curves)
    return run_sweep(spec, manager), saves, manager


def test_a_sweep_maximises_and_keeps_its_best_model_across_resume(tmp_path, monkeypatch):
    res, saves, _ = _fake_sweep(tmp_path, monkeypatch, [[0.7, 0.8], [0.8, 0.9], [0.8, 0.85]], trials=3)
    assert saves == [0.8, 0.9]  # each new best is saved; 0.85 is not better than 0.9
    assert res["best"]["value"] == 0.9 and res["best"]["number"] == 1
    res, saves, _ = _fake_sweep(tmp_path, monkeypatch, [[0.8, 0.86], [0.9, 0.95]], trials=2, resume=True)
    assert saves == [0.95]  # 0.86 is this session's first trial, but not better than the stored best 0.9
    assert res["best"]["value"] == 0.95 and res["best"]["number"] == 4


def test_the_median_pruner_stops_the_trial_below_the_others_not_the_one_above(tmp_path, monkeypatch):
    curves = [[0.80, 0.85, 0.90], [0.82, 0.86, 0.91], [0.50, 0.55, 0.60], [0.90, 0.92, 0.95]]
    res, _, manager = _fake_sweep(tmp_path, monkeypatch, curves, trials=4)
    assert [t["state"] for t in res["trials"]] == ["complete", "complete", "pruned", "complete"]
    assert [j.stopped for j in manager.jobs] == [False, False, True, False]
    assert res["trials"][2]["intermediate"][1] == 0.50  # below the median (0.81) of the others at epoch 1


def test_a_failed_trial_is_reported_by_the_first_line_of_its_error():
    from fmnist.sweep import _line

    assert _line(ValueError("  first line\nsecond line")) == "first line"
    assert _line(RuntimeError("")) == "RuntimeError"
    assert _line(ValueError("x" * 500)) == "x" * 160
