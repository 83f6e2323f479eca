"""scripts/student_widths.py: the student preset trained at each width over seeds, scored on the test set."""

import argparse
import json
import time

import pytest

from fmnist.models import count_params, create_model
from scripts import student_widths


def test_a_width_is_three_whole_numbers():
    assert student_widths.widths_arg("16,48,192") == (16, 48, 192)
    assert student_widths.widths_arg("1,1,1") == (1, 1, 1)  # the smallest network there is
    for bad in ["16,48", "16,48,192,4", "a,b,c", "16,0,192", ""]:
        with pytest.raises(argparse.ArgumentTypeError, match="three whole numbers above 0"):
            student_widths.widths_arg(bad)


@pytest.mark.parametrize("args", [["16,48"], ["16,48,192", "--seeds", "0"], ["16,48,192", "--procs", "0"]])
def test_bad_arguments_are_one_line(args, capsys):
    with pytest.raises(SystemExit) as e:
        student_widths.main(args)
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " in last and ("three whole numbers above 0" in last or "must be at least 1" in last)


def test_the_summary_compares_each_width_with_the_first():
    runs = [
        {"widths": [32, 64, 128], "test_acc": a, "train_s": t} for a, t in [(0.85, 4.0), (0.84, 5.0), (0.86, 4.5)]
    ] + [{"widths": [16, 48, 192], "test_acc": a, "train_s": t} for a, t in [(0.84, 3.0), (0.85, 3.6)]]
    first, second = student_widths.summary(runs, [(32, 64, 128), (16, 48, 192)])
    assert first["runs"] == 3 and first["mean"] == pytest.approx(0.85) and first["median"] == 0.85
    assert first["sd"] == pytest.approx(0.01) and first["lowest"] == 0.84 and first["train_s"] == 4.5
    assert first["points_vs_first"] == 0 and first["faster_than_first"] == 1
    assert second["runs"] == 2 and second["mean"] == pytest.approx(0.845) and second["train_s"] == pytest.approx(3.3)
    assert second["points_vs_first"] == pytest.approx(-0.5) and second["faster_than_first"] == pytest.approx(4.5 / 3.3)
    (alone,) = student_widths.summary(runs[:1], [(32, 64, 128)])
    assert alone["sd"] == 0.0


def test_each_width_and_seed_is_a_real_student_run(capsys):
    assert (
        student_widths.main(["32,64,128", "16,16,32", "--seeds", "2", "--subset", "600", "--procs", "2", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["seeds"] == 2 and report["subset"] == 600 and report["machine"]["cores"] >= 1
    runs = report["runs"]
    assert sorted((tuple(r["widths"]), r["seed"]) for r in runs) == [
        ((16, 16, 32), 0),
        ((16, 16, 32), 1),
        ((32, 64, 128), 0),
        ((32, 64, 128), 1),
    ]
    for r in runs:  # the widths reached the model; the preset's 4 epochs on the subset
        assert r["params"] == count_params(create_model("quickcnn", widths=r["widths"]))
        assert r["epochs"] == 4 and r["subset"] == 600 and 0.1 < r["test_acc"] <= 1
    seeds = {r["seed"]: r["test_acc"] for r in runs if r["widths"] == [16, 16, 32]}
    assert seeds[0] != seeds[1]  # each seed is its own run
    assert [row["widths"] for row in report["widths"]] == [[32, 64, 128], [16, 16, 32]]
    assert report["widths"][1]["runs"] == 2 and report["precision"] in (["bf16"], ["fp32"])


def test_the_text_report_names_the_machine_and_each_width(monkeypatch, capsys):
    fake = lambda job: {
        "widths": list(job[0]),
        "seed": job[1],
        "test_acc": 0.8 + job[1] / 100,
        "train_s": sum(job[0]) / 100,
        "params": 1,
        "epochs": 4,
        "subset": 5000,
        "precision": "bf16",
    }

    class Pool:
        def __init__(self, n):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def map(self, fn, jobs, chunksize):
            return [fake(j) for j in jobs]

    pools = []

    def context(method):
        assert method == "spawn"  # the same on Linux, macOS and Windows
        return type("Ctx", (), {"Pool": lambda n: pools.append(n) or Pool(n)})

    monkeypatch.setattr(student_widths.mp, "get_context", context)
    assert student_widths.main(["32,64,128", "16,48,192", "--seeds", "2"]) == 0
    assert pools == [2]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("student preset, 2 seeds a width, 2 runs at a time, bf16; ")
    assert out[1].split() == [
        "32-64-128:",
        "test",
        "accuracy",
        "mean",
        "80.50%",
        "(median",
        "80.50,",
        "sd",
        "0.71,",
        "lowest",
        "80.00),",
        "+0.00",
        "points;",
        "training",
        "2.24",
        "s,",
        "1.00x",
    ]
    assert "16-48-192:" in out[2] and "+0.00 points" in out[2] and "training 2.56 s, 0.88x" in out[2]


def test_one_run_in_this_process_trains_the_widths_with_the_seed_on_one_thread(monkeypatch):
    import torch

    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    a = student_widths.one_run(((16, 16, 32), 0, 600))
    b = student_widths.one_run(((16, 16, 32), 1, 600))
    assert threads == [1, 1]
    assert a["widths"] == [16, 16, 32] and a["seed"] == 0 and b["seed"] == 1 and a["test_acc"] != b["test_acc"]
    assert a["params"] == count_params(create_model("quickcnn", widths=[16, 16, 32]))
    assert a["epochs"] == 4 and a["subset"] == 600 and a["train_s"] > 0 and a["precision"] in ("bf16", "fp32")
    assert 0.1 < a["test_acc"] <= 1

    # the accuracy is the share of the 10,000 test images the model gets right: a model right on all of them
    from fmnist import runtime
    from fmnist.data import load_dataset

    labels = load_dataset().test_labels
    monkeypatch.setattr(
        runtime, "predict_logits", lambda model, images: torch.nn.functional.one_hot(labels, 10).float()
    )
    assert student_widths.one_run(((16, 16, 32), 0, 600))["test_acc"] == 1.0


def test_the_defaults_are_20_seeds_two_at_a_time_and_the_help_says_what_each_option_is(monkeypatch, capsys):
    jobs = []

    class Pool:
        def __init__(self, n):
            jobs.append(n)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def map(self, fn, given, chunksize):
            assert fn is student_widths.one_run and chunksize == 1  # one run at a time to each process
            jobs.extend(given)
            return [
                {"widths": list(w), "seed": s, "test_acc": 0.8, "train_s": 1.0, "precision": "bf16"}
                for w, s, _ in given
            ]

    monkeypatch.setattr(student_widths.mp, "get_context", lambda method: type("Ctx", (), {"Pool": Pool}))
    assert student_widths.main(["16,48,192", "--json"]) == 0
    assert jobs[0] == 2 and jobs[1:] == [((16, 48, 192), seed, None) for seed in range(20)]
    report = json.loads(capsys.readouterr().out)
    assert report["subset"] is None and report["date"] == time.strftime("%Y-%m-%d")
    jobs.clear()
    assert student_widths.main(["16,48,192", "--seeds", "1", "--procs", "1", "--json"]) == 0  # the least allowed
    assert jobs == [1, ((16, 48, 192), 0, None)]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        student_widths.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(student_widths.__doc__.split("\n\n")[0].split()) in text
    for said in [
        "the first is the reference",
        "seeds 0 to N-1",
        "runs at a time, one thread each",
        "(default: the preset's)",
    ]:
        assert said in text
