import json
import subprocess
import sys

import numpy as np
import pytest
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


@pytest.mark.parametrize(
    "args, msg",
    [
        (["train", "--arch", "vgg"], "unknown model 'vgg'; valid models: logreg"),
        (["train", "--preset", "quick", "--val-fraction", "0.9", "--dry-run"], "val_fraction"),
        (["evaluate", "/nonexistent.safetensors"], "no checkpoint at"),
        (["train", "--arch", "cnn2", "--model-kwargs", '{"kernel_size": 40}', "--dry-run"], "too large"),
        (["train", "--arch", "mlp", "--model-kwargs", "[1]", "--dry-run"], "rejected"),
        (["train", "--arch", "mlp", "--device", "mps", "--dry-run"], "mps"),
    ],
)
def test_bad_input_one_line_no_traceback(args, msg):
    r = subprocess.run([sys.executable, "-m", "fmnist", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and msg in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_reports_both_loops(capsys):
    code, out = run_json(capsys, "bench", "--batches", "3", "--rounds", "1")
    assert code == 0 and {"dataloader_fp32", "tensor_fp32"} <= set(out["images_per_s"])
    assert out["eval_test_set_s"] > 0 and out["predict_latency_ms"]["p95"] >= out["predict_latency_ms"]["median"]


def test_arch_takes_its_own_recipe(capsys):
    code, out = run_json(capsys, "train", "--arch", "quickcnn", "--dry-run")
    assert code == 0 and out["arch"] == "quickcnn" and out["checkpoint"] is None
