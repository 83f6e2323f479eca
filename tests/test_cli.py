import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from fmnist.checkpoints import load_checkpoint
from fmnist.cli import main


def run_json(capsys, *args):
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_models_json(capsys):
    code, out = run_json(capsys, "models")
    names = [m["name"] for m in out["models"]]
    assert code == 0 and "cnn2" in names and "quick" in out["presets"]
    assert next(m for m in out["models"] if m["name"] == "cnn2")["params"] == 225_034


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "tiny"
    code = main(
        [
            "train",
            "--arch",
            "mlp",
            "--epochs",
            "1",
            "--subset",
            "2000",
            "--val-fraction",
            "0.1",  # mlp's own recipe has no validation split; this run has one
            "--precision",
            "fp32",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    return out.with_name("tiny.safetensors")


def test_train_saves_checkpoint_with_card(trained):
    ck = load_checkpoint(trained)
    card = ck.card
    assert card["arch"] == "mlp" and card["config"]["subset"] == 2000
    assert 0.6 < card["metrics"]["test"]["accuracy"] < 1 and "subset1000_accuracy" in card["metrics"]["test"]
    assert card["command"].startswith("python -m fmnist train") and card["train_time_s"] > 0


def test_the_student_preset_trains_and_saves_its_narrower_quickcnn(tmp_path, capsys):
    """The preset's architecture options reach the model and the card, and the temperature fit after
    training rebuilds the run's split without them (it failed there, after training, before saving)."""
    out = tmp_path / "student.safetensors"
    code, printed = run_json(
        capsys, "train", "--preset", "student", "--epochs", "1", "--subset", "600", "--out", str(out)
    )
    assert code == 0 and printed["checkpoint"] == str(out)
    ck = load_checkpoint(out)
    assert ck.card["arch"] == "quickcnn" and ck.card["config"]["model_kwargs"] == {"widths": [16, 48, 192]}
    assert [m.out_channels for m in ck.model.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 48, 192]
    assert 0.05 <= ck.card["temperature"] <= 20


def test_train_refuses_to_overwrite(trained, capsys):
    before = trained.read_bytes()
    assert main(["train", "--arch", "mlp", "--epochs", "1", "--subset", "500", "--out", str(trained)]) == 2
    assert "exists" in capsys.readouterr().err and trained.read_bytes() == before


def test_evaluate_json(trained, capsys):
    code, out = run_json(capsys, "evaluate", str(trained), "--limit", "2000")
    assert code == 0 and out["n"] == 2000 and len(out["per_class"]) == 10
    assert np.array(out["confusion"]).sum() == 2000
    assert out["accuracy"] == pytest.approx(np.trace(np.array(out["confusion"])) / 2000)


def test_predict(trained, ds, tmp_path, capsys):
    good = tmp_path / "trouser.png"
    Image.fromarray(255 - ds.test_images[2].numpy()).resize((300, 300)).save(good)  # dark on white
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    code, out = run_json(capsys, "predict", str(trained), str(good))
    p = out["predictions"][0]
    assert code == 0 and p["class"] == "Trouser" and p["inverted"] and abs(sum(p["probabilities"].values()) - 1) < 1e-4
    assert main(["predict", str(trained), str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.png" in err[0] and "not a readable image" in err[0]


def test_diverged_run_saves_nothing(tmp_path, capsys):
    out = tmp_path / "div"
    code = main(["train", "--arch", "mlp", "--lr", "10", "--subset", "1000", "--epochs", "1", "--out", str(out)])
    assert code == 3 and "diverged" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_ensemble_from_saved(trained, tmp_path, capsys):
    code, out = run_json(
        capsys, "ensemble", str(trained), str(trained), "--vote", "majority", "--out", str(tmp_path / "ens")
    )
    ck = load_checkpoint(out["checkpoint"])
    assert code == 0 and ck.card["arch"] == "ensemble" and ck.card["kwargs"]["vote"] == "majority"
    assert len(ck.model.members) == 2
    again = ["ensemble", str(trained), "--out", out["checkpoint"], "--json"]
    assert main(again) == 2 and "exists" in capsys.readouterr().err  # never silently replaced
    assert main([*again, "--force"]) == 0
    assert len(load_checkpoint(out["checkpoint"]).model.members) == 1


def test_a_linked_ensemble_from_the_cli_is_small_and_answers_as_the_copied_one(trained, tmp_path, capsys, ds):
    import torch

    from fmnist.runtime import to_input

    copied = tmp_path / "copied.safetensors"
    assert main(["ensemble", str(trained), str(trained), "--out", str(copied)]) == 0
    linked = trained.with_name("linked.safetensors")  # beside its member
    assert main(["ensemble", str(trained), str(trained), "--link", "--out", str(linked)]) == 0
    assert "soft vote of 2 models" in capsys.readouterr().out
    assert linked.stat().st_size < 4096 < trained.stat().st_size
    x = to_input(ds.test_images[:8])
    with torch.no_grad():
        assert torch.equal(load_checkpoint(linked).model(x), load_checkpoint(copied).model(x))
    assert main(["ensemble", str(trained), "--link", "--out", str(tmp_path / "far")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: tiny.safetensors: a linked member must be a checkpoint in the ensemble's own folder"
    assert not (tmp_path / "far.safetensors").exists()


@pytest.mark.parametrize(
    "args, msg",
    [
        (["train", "--arch", "vgg"], "unknown model 'vgg'; valid models: logreg"),
        (["train", "--preset", "quick", "--val-fraction", "0.9", "--dry-run"], "val_fraction"),
        (["evaluate", "/nonexistent.safetensors"], "no checkpoint at"),
        (["train", "--arch", "cnn2", "--model-kwargs", '{"kernel_size": 40}', "--dry-run"], "too large"),
        (["train", "--arch", "mlp", "--model-kwargs", "[1]", "--dry-run"], "rejected"),
        (["train", "--arch", "mlp", "--device", "mps", "--dry-run"], "mps"),
        (["train", "--arch", "ensemble"], "not trained"),
        (["train", "--preset", "quick", "--arch", "cnn2"], "not both"),
        (["train", "--epochs", "0"], "epochs must be in [1, 1000]"),
        (["train", "--lr", "0", "--dry-run"], "lr must be in [1e-06, 10], got 0.0"),
        (["train", "--epochs", "2.5", "--dry-run"], "epochs must be an integer, got '2.5'"),
        (["train", "--optimizer", "rmsprop", "--dry-run"], "optimizer must be one of adam, adamw, sgd"),
        (["train", "--batch-size", "65536", "--dry-run"], "batch_size must be in [2, 2048]"),
        (["train", "--arch", "logreg", "--ray", "127.0.0.1:1", "--out", "/tmp/never"], "cannot reach the Ray cluster"),
        (["sweep", "--arch", "mlp", "--param", "lr=1:0.1"], "is empty"),
        (["train", "--arch", "mlp", "--model-kwargs", '{"hidden": 1000000000}', "--dry-run"], "over the limit"),
    ],
)
def test_bad_input_one_line_no_traceback(args, msg):
    r = subprocess.run([sys.executable, "-m", "fmnist", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and msg in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_times_the_shipped_training_step(capsys, monkeypatch):
    """The tensor sides must run fmnist.train.Trainer.step, the loop's own step, not a copy."""
    from fmnist import bench
    from fmnist.runtime import cpu_has_bf16
    from fmnist.train import Trainer

    calls = []
    real = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self, x, y: calls.append(self.precision) or real(self, x, y))
    code, out = run_json(capsys, "bench", "--batches", "4", "--rounds", "2")
    sides = ["tensor_fp32", *(["tensor_bf16"] if cpu_has_bf16() else [])]
    assert code == 0 and set(out["images_per_s"]) == {"dataloader_fp32", *sides}
    # 3 warm-up steps + rounds * batches per precision, each through Trainer.step
    assert sorted(calls) == sorted([s.split("_")[1] for s in sides for _ in range(3 + 2 * 4)])
    assert all(len(v) == 2 for v in out["rounds_images_per_s"].values())
    assert set(out["speedup_vs_dataloader"]) == set(sides)
    assert out["machine"]["cpu_flags"] == bench.machine()["cpu_flags"] and out["eval_precision"] == "fp32"


def test_train_json_reports_the_saved_models_test_accuracy(trained, capsys):
    """train --json's test_accuracy is the test set's (what evaluate says), not the validation's."""
    code, out = run_json(capsys, "evaluate", str(trained))
    card = load_checkpoint(trained).card
    assert code == 0 and card["metrics"]["test"]["accuracy"] == out["accuracy"]
    assert card["metrics"]["val"]["split"] == "validation" and card["metrics"]["val"]["accuracy"] != out["accuracy"]


def test_train_json_keys(tmp_path, capsys):
    code, out = run_json(
        capsys, "train", "--arch", "logreg", "--epochs", "1", "--subset", "500", "--out", str(tmp_path / "m")
    )
    assert code == 0
    assert {
        "status",
        "message",
        "arch",
        "preset",
        "train_time_s",
        "wall_time_s",
        "best_epoch",
        "val_accuracy",
        "params",
        "device",
        "precision",
        "test_accuracy",
        "test_loss",
        "macro_f1",
        "checkpoint",
    } <= set(out)
    ev = main(["evaluate", out["checkpoint"], "--json"])
    full = json.loads(capsys.readouterr().out)
    assert ev == 0 and out["test_accuracy"] == full["accuracy"] and out["val_accuracy"] != full["accuracy"]


def test_show_config_names_origins(capsys):
    code, out = run_json(capsys, "train", "--preset", "cnn3bn", "--epochs", "3", "--no-restore-best", "--show-config")
    assert code == 0 and out["config"]["epochs"] == 3 and out["config"]["restore_best"] is False
    assert out["config"]["augment"]["rotate"] == 10
    assert out["origin"]["epochs"] == "command line" and out["origin"]["rotate"] == "preset 'cnn3bn'"


def test_every_option_has_a_flag_with_its_default():
    from fmnist.cli import parser
    from fmnist.config import option_fields

    train_parser = parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train_parser._actions}
    for d in option_fields():
        assert d.name in helps, d.name
        assert "(quick: " in helps[d.name]
    assert "(quick: 4)" in helps["epochs"] and "(quick: adamw)" in helps["optimizer"]


def test_arch_takes_its_own_recipe(capsys):
    code, out = run_json(capsys, "train", "--arch", "quickcnn", "--dry-run")
    assert code == 0 and out["arch"] == "quickcnn" and out["checkpoint"] is None


def test_predict_hostile_files_one_line_each(tmp_path, trained):
    """A PostScript file named .png, a FIFO and an animated bomb: one clear line each, the good image still answered."""
    import os

    from PIL import Image

    eps = tmp_path / "eps.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    img = Image.new("L", (64, 64), 0)
    img.paste(255, (16, 8, 48, 56))
    img.save(good)
    r = subprocess.run(
        [sys.executable, "-m", "fmnist", "predict", str(trained), str(eps), str(fifo), str(good), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "not a readable image" in lines[0] and "not a regular file" in lines[1]
    out = json.loads(r.stdout)
    assert out["failed"] == 2 and [p["image"] for p in out["predictions"]] == [str(good)]


def test_predict_never_prints_nan(trained, tmp_path, capsys, monkeypatch):
    import torch
    from PIL import Image

    import fmnist.cli as cli

    monkeypatch.setattr(cli, "predict_logits", lambda *a, **k: torch.full((1, 10), float("nan")))
    img = tmp_path / "x.png"
    im = Image.new("L", (32, 32), 0)
    im.paste(255, (8, 8, 24, 24))
    im.save(img)
    code = main(["predict", str(trained), str(img), "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)  # valid JSON: no NaN in it
    assert code == 1 and out["failed"] == 1 and out["predictions"] == []
    assert "non-finite" in captured.err


def test_train_says_where_it_saved_or_that_a_dry_run_saved_nothing(tmp_path, capsys):
    out = tmp_path / "said.safetensors"
    args = ["train", "--arch", "logreg", "--epochs", "1", "--subset", "300", "--precision", "fp32", "--out", str(out)]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().endswith(f"saved {out}")
    assert main([*args[:-2], "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("dry run: nothing saved")
    assert [p.name for p in tmp_path.glob("*.safetensors")] == ["said.safetensors"]


def test_each_command_describes_itself_in_its_help(capsys):
    for command in ("train", "evaluate", "predict", "export", "models", "bench"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        usage, _, rest = capsys.readouterr().out.partition("\n\n")
        description = rest.split("\n\n")[0].strip()
        assert usage.startswith(f"usage: python -m fmnist {command}"), command
        assert description and not description.startswith(("options:", "positional arguments:")), command
