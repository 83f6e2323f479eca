"""scripts/ablation.py: a preset beside the same recipe with one change, through the project's command line."""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts import ablation


def test_a_change_is_a_label_and_the_train_options_it_adds():
    assert ablation.change_arg("no Cutout=--erase 0") == ("no Cutout", ["--erase", "0"])
    assert ablation.change_arg(" lr = --lr 0.1 ") == ("lr", ["--lr", "0.1"])  # spaces around the label go
    assert ablation.change_arg("kw=--model-kwargs '{\"widths\": [8, 8, 16]}'") == (
        "kw",
        ["--model-kwargs", '{"widths": [8, 8, 16]}'],  # quoted as a shell would
    )
    assert ablation.change_arg("a=b=--x") == ("a", ["b=--x"])  # the first '=' ends the label
    for bad in ["no flip", "=--no-flip", "  =--no-flip", "no flip=", "no flip=  ", ""]:
        with pytest.raises(argparse.ArgumentTypeError, match=r"^a change is LABEL=OPTIONS, e.g. 'no flip=--no-flip'"):
            ablation.change_arg(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"; got \"x='--a\" \(No closing quotation\)$"):
        ablation.change_arg("x='--a")


@pytest.mark.parametrize(
    "args, said",
    [
        ([], "the following arguments are required: --change"),
        (["--change", "nolabel"], "a change is LABEL=OPTIONS"),
        (["--change", "a=--no-flip", "--seeds", "0"], "must be at least 1"),
        (["--change", "a=--no-flip", "--epochs", "0"], "must be at least 1"),
        (["--change", "a=--no-flip", "--subset", "0"], "must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line(args, said, capsys):
    with pytest.raises(SystemExit) as e:
        ablation.main(args)
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " in last and said in last


def test_the_settings_an_arm_changes():
    config = {"epochs": 3, "lr": 0.2, "augment": {"flip": True, "erase": 1.0}}
    assert ablation.flat(config) == {"epochs": 3, "lr": 0.2, "flip": True, "erase": 1.0}
    assert ablation.flat({"epochs": 3}) == {"epochs": 3}
    base = ablation.flat(config)
    assert ablation.changed(base, base) == {}
    assert ablation.changed(base, {**base, "flip": False}) == {"flip": [True, False]}
    assert ablation.changed(base, {**base, "erase": 0.0, "lr": 0.1}) == {"erase": [1.0, 0.0], "lr": [0.2, 0.1]}
    assert ablation.changed(base, {**base, "crop": 4}) == {"crop": [None, 4]}  # a setting the base lacks


def test_each_arm_is_resolved_by_the_command_line():
    common = ["--preset", "best", "--epochs", "3"]
    base, flip, lr = ablation.resolve(
        [(ablation.BASE, []), ("no flip", ["--no-flip"]), ("lr", ["--lr", "0.1"])], common
    )
    assert base == {"arm": "as it is", "options": [], "changed": {}}
    assert flip == {"arm": "no flip", "options": ["--no-flip"], "changed": {"flip": [True, False]}}
    assert lr["changed"] == {"lr": [0.2, 0.1]}  # best's 0.2: the preset was read, not the default's
    with pytest.raises(ValueError) as e:
        ablation.resolve([(ablation.BASE, []), ("typo", ["--erse", "0"])], common)
    assert str(e.value) == "typo: python -m fmnist: error: unrecognized arguments: --erse 0"


def test_an_arm_must_change_exactly_one_setting(monkeypatch):
    seen = []

    def fmnist(args):
        seen.append(args)
        given = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
        return {"config": {"lr": float(given.get("--lr", 0.2)), "augment": {"crop": int(given.get("--crop", 4))}}}

    monkeypatch.setattr(ablation, "fmnist", fmnist)
    refused = {
        "same": (["--lr", "0.2"], "same: --lr 0.2 leaves the recipe as it was; an arm changes one setting"),
        "two": (
            ["--lr", "0.1", "--crop", "0"],
            "two: --lr 0.1 --crop 0 changes 2 settings (lr, crop); an arm changes one setting",
        ),
    }
    for label, (options, said) in refused.items():
        with pytest.raises(ValueError) as e:
            ablation.resolve([(ablation.BASE, []), (label, options)], ["--preset", "best"])
        assert str(e.value) == said
    assert seen[:2] == [
        ["train", "--preset", "best", "--show-config"],
        ["train", "--preset", "best", "--lr", "0.2", "--show-config"],
    ]
    (one,) = ablation.resolve([(ablation.BASE, []), ("crop", ["--crop", "2"])], [])[1:]
    assert one == {"arm": "crop", "options": ["--crop", "2"], "changed": {"crop": [4, 2]}}


def test_the_command_lines_failure_is_its_last_line_or_its_exit_code(monkeypatch):
    calls = []

    def run(cmd, cwd, capture_output, text):
        calls.append((cmd, cwd))
        return subprocess.CompletedProcess(cmd, 3, "", "")

    monkeypatch.setattr(ablation.subprocess, "run", run)
    with pytest.raises(ValueError, match=r"^exit code 3$"):
        ablation.fmnist(["train"])
    assert calls == [([sys.executable, "-m", "fmnist", "train", "--json"], ablation.ROOT)]
    monkeypatch.setattr(
        ablation.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, '{"a": 1}', "")
    )
    assert ablation.fmnist(["models"]) == {"a": 1}


def test_the_comparison_is_against_the_first_arm():
    runs = [{"arm": "a", "test_acc": a, "train_s": t} for a, t in [(0.85, 4.0), (0.84, 5.0), (0.86, 4.5)]] + [
        {"arm": "b", "test_acc": a, "train_s": t} for a, t in [(0.84, 3.0), (0.85, 3.6)]
    ]
    first, second = ablation.compare(runs, ["a", "b"], lambda r: r["arm"])
    assert first["runs"] == 3 and first["mean"] == pytest.approx(0.85) and first["median"] == 0.85
    assert first["sd"] == pytest.approx(0.01) and first["lowest"] == 0.84 and first["train_s"] == 4.5
    assert first["points_vs_first"] == 0 and first["faster_than_first"] == 1
    assert second["runs"] == 2 and second["mean"] == pytest.approx(0.845) and second["train_s"] == pytest.approx(3.3)
    assert second["points_vs_first"] == pytest.approx(-0.5) and second["faster_than_first"] == pytest.approx(4.5 / 3.3)
    (alone,) = ablation.compare(runs[:1], ["a"], lambda r: r["arm"])
    assert alone["sd"] == 0.0


def test_the_markdown_table_has_a_row_per_arm():
    report = {
        "arms": [
            {"arm": "as it is", "changed": {}},
            {"arm": "no flip", "changed": {"flip": [True, False]}},
        ],
        "runs": [
            {"arm": "as it is", "test_acc": 0.9012},
            {"arm": "no flip", "test_acc": 0.8911},
            {"arm": "as it is", "test_acc": 0.9},
            {"arm": "no flip", "test_acc": 0.89},
        ],
        "summary": [
            {"mean": 0.9006, "points_vs_first": 0.0, "train_s": 120.4, "faster_than_first": 1.0},
            {"mean": 0.8906, "points_vs_first": -1.005, "train_s": 100.6, "faster_than_first": 1.1968},
        ],
    }
    head, rule, base, flip = ablation.markdown(report)
    assert head.count("|") == rule.count("|") == 7 and head.startswith("| the one change | setting: preset -> arm |")
    assert base == "| as it is | - | 90.12 / 90.00 | 90.06% | +0.00 points | 120 s (1.00x) |"
    assert flip == "| no flip | flip: True -> False | 89.11 / 89.00 | 89.06% | -1.00 points | 101 s (1.20x) |"


def test_every_arm_and_seed_is_a_real_run_of_the_command_line(capsys):
    args = ["--preset", "student", "--epochs", "1", "--subset", "300", "--seeds", "2", "--change", "lr=--lr 0.001"]
    assert ablation.main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preset"] == "student" and report["epochs"] == 1 and report["subset"] == 300
    assert report["date"] == time.strftime("%Y-%m-%d") and report["machine"]["cores"] >= 1
    assert [a["arm"] for a in report["arms"]] == ["as it is", "lr"]
    assert report["arms"][1]["changed"] == {"lr": [0.004, 0.001]}
    runs = report["runs"]
    assert [(r["arm"], r["seed"]) for r in runs] == [("as it is", 0), ("lr", 0), ("as it is", 1), ("lr", 1)]
    assert runs[1]["command"] == (
        "python -m fmnist train --preset student --epochs 1 --subset 300 --lr 0.001 --seed 0"
    )  # what reproduces the run
    for r in runs:
        assert 0.1 < r["test_acc"] <= 1 and r["train_s"] > 0 and r["precision"] in ("bf16", "fp32")
    assert runs[0]["test_acc"] != runs[2]["test_acc"]  # each seed is its own run
    assert runs[0]["test_acc"] != runs[1]["test_acc"]  # the change reached the run
    assert [s["runs"] for s in report["summary"]] == [2, 2] and report["seeds"] == 2
    assert report["summary"][1]["mean"] == pytest.approx((runs[1]["test_acc"] + runs[3]["test_acc"]) / 2)


def test_the_text_report_names_the_machine_and_a_failed_run_is_one_line(monkeypatch, capsys):
    def fmnist(args):
        if "--show-config" in args:
            return {"config": {"lr": 0.001 if "0.001" in args else 0.004, "augment": {}}}
        if "--lr" in args and "1" in args[args.index("--seed") + 1]:
            raise ValueError("error: diverged")
        return {"test_accuracy": 0.8, "train_time_s": 2.0, "precision": "bf16"}

    monkeypatch.setattr(ablation, "fmnist", fmnist)
    assert ablation.main(["--preset", "student", "--seeds", "1", "--change", "lr=--lr 0.001"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("preset 'student', its epochs, 1 seed(s) an arm, bf16; ")
    assert "cores" in out[0] and out[3] == "| as it is | - | 80.00 | 80.00% | +0.00 points | 2 s (1.00x) |"
    assert out[4] == "| lr | lr: 0.004 -> 0.001 | 80.00 | 80.00% | +0.00 points | 2 s (1.00x) |"
    assert ablation.main(["--preset", "student", "--seeds", "2", "--change", "lr=--lr 0.001"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "error: lr, seed 1: error: diverged\n"
    monkeypatch.setattr(ablation, "fmnist", lambda args: (_ for _ in ()).throw(ValueError("bad data")))
    assert ablation.main(["--change", "lr=--lr 0.001"]) == 2
    assert capsys.readouterr().err == "error: as it is: bad data\n"


def test_the_command_line_is_run_for_real_and_its_error_is_its_last_line():
    assert "quickcnn" in {m["name"] for m in ablation.fmnist(["models"])["models"]}
    with pytest.raises(ValueError, match=r"^python -m fmnist: error: unrecognized arguments: --erse$"):
        ablation.fmnist(["train", "--erse"])


def test_main_trains_each_arm_for_each_seed_with_the_common_options(monkeypatch, capsys):
    calls = []

    def fmnist(args):
        calls.append(args)
        if "--show-config" in args:
            return {"config": {"lr": float(args[args.index("--lr") + 1]) if "--lr" in args else 0.004, "augment": {}}}
        seed = int(args[args.index("--seed") + 1])
        return {"test_accuracy": 0.8 + seed / 100, "train_time_s": 2.0 + seed, "precision": ["bf16", "fp32"][seed]}

    monkeypatch.setattr(ablation, "fmnist", fmnist)
    common = ["--preset", "student", "--epochs", "1", "--subset", "600"]
    args = [*common, "--seeds", "2", "--change", "lr=--lr 0.001"]
    assert ablation.main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    shows, runs = calls[:2], calls[2:]
    assert shows == [["train", *common, "--show-config"], ["train", *common, "--lr", "0.001", "--show-config"]]
    assert [r[:-3] for r in runs] == [
        ["train", *common, "--seed", "0"],
        ["train", *common, "--lr", "0.001", "--seed", "0"],
        ["train", *common, "--seed", "1"],
        ["train", *common, "--lr", "0.001", "--seed", "1"],
    ]
    outs = [r[-2] for r in runs]
    assert all(r[-3] == "--out" and r[-1] == "--force" for r in runs) and len(set(outs)) == 4  # one file a run
    assert [Path(o).name for o in outs] == [f"arm{a}-seed{s}.safetensors" for s in (0, 1) for a in (0, 1)]
    assert not Path(outs[0]).parent.exists()  # the runs' checkpoints go with the temporary folder
    assert {k: report[k] for k in ("preset", "epochs", "subset", "seeds", "precision")} == {
        "preset": "student",
        "epochs": 1,
        "subset": 600,
        "seeds": 2,
        "precision": ["bf16", "fp32"],
    }
    assert report["date"] == time.strftime("%Y-%m-%d") and 0 <= report["wall_s"] < 60
    assert report["arms"] == [
        {"arm": "as it is", "options": [], "changed": {}},
        {"arm": "lr", "options": ["--lr", "0.001"], "changed": {"lr": [0.004, 0.001]}},
    ]
    assert report["runs"][3] == {
        "arm": "lr",
        "seed": 1,
        "test_acc": 0.81,
        "train_s": 3.0,
        "precision": "fp32",
        "command": "python -m fmnist train --preset student --epochs 1 --subset 600 --lr 0.001 --seed 1",
    }
    assert [s["runs"] for s in report["summary"]] == [2, 2] and report["summary"][0]["train_s"] == 2.5
    assert report["machine"]["cores"] >= 1

    calls.clear()
    assert ablation.main([*args]) == 0  # the text report names both precisions
    assert capsys.readouterr().out.startswith("preset 'student', 1 epochs, 2 seed(s) an arm, bf16/fp32; ")

    calls.clear()  # the defaults: best as it is, 2 seeds, its own epochs and images; 1 epoch is allowed
    assert ablation.main(["--change", "lr=--lr 0.1", "--json"]) == 0
    assert [c[:-3] for c in calls[2:]] == [
        ["train", "--preset", "best", *o, "--seed", str(s)] for s in (0, 1) for o in ([], ["--lr", "0.1"])
    ]
    report = json.loads(capsys.readouterr().out)
    assert report["epochs"] is None and report["subset"] is None and report["seeds"] == 2
    assert ablation.main(["--change", "lr=--lr 0.1", "--epochs", "1", "--subset", "1", "--seeds", "1"]) == 0


def test_the_help_says_what_each_option_is(capsys):
    with pytest.raises(SystemExit):
        ablation.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(ablation.__doc__.split("\n\n")[0].split()) in text
    for said in [
        "--preset PRESET the recipe every arm starts from (default: best)",
        "--epochs EPOCHS epochs of every run (default: the preset's)",
        "--subset SUBSET training images of every run (default: the preset's)",
        "--seeds SEEDS runs per arm, seeds 0 to N-1 (default: 2)",
        "--change LABEL=OPTIONS one arm: the preset with these `train` options, e.g. 'no flip=--no-flip' (repeat "
        "for more arms)",
        "--json print one JSON object (the runs and the summary)",
    ]:
        assert said in text
