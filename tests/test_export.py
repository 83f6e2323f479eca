"""ONNX export (fmnist.export, `python -m fmnist export`): the graph matches PyTorch and carries its card."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT
from fmnist.checkpoints import load_checkpoint
from fmnist.cli import main
from fmnist.runtime import predict_logits


# conv + BN, pre-activation blocks, flip TTA, dense, a vote
@pytest.mark.parametrize("name", ["quick", "best", "resnet64", "mlp", "ensemble"])
def test_onnx_matches_pytorch_on_100_test_images(name, ds, tmp_path, capsys):
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    assert main(["export", str(path), "--out", str(tmp_path / name), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ck = load_checkpoint(path)
    x = ds.test_images[:100]
    sess = ort.InferenceSession(out["onnx"], providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"pixels": (x.float() / 255).unsqueeze(1).numpy()})  # [0, 1] pixels, no constants
    ref = predict_logits(ck.model, x, tta_flip=ck.tta_flip).numpy()
    assert logits.shape == (100, 10) and np.abs(logits - ref).max() < 1e-4
    meta = {p.key: p.value for p in onnx.load(out["onnx"]).metadata_props}
    assert json.loads(meta["fmnist_card"])["arch"] == ck.card["arch"]
    assert json.loads(meta["classes"])[1] == "Trouser"
    assert float(meta["temperature"]) == pytest.approx(ck.temperature or 1.0)
    assert meta["input"].startswith("pixels: float32 (N, 1, 28, 28) in [0, 1]")
    assert meta["output"].startswith("logits: float32 (N, 10)")
    assert [o.name for o in sess.get_outputs()] == ["logits"] and sess.get_inputs()[0].name == "pixels"


def test_export_refuses_to_overwrite_and_bad_checkpoints(tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep")
    assert main(["export", str(ROOT / "checkpoints" / "mlp.safetensors"), "--out", str(target)]) == 2
    assert "exists" in capsys.readouterr().err and target.read_bytes() == b"keep"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    assert main(["export", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "not a valid fmnist checkpoint" in capsys.readouterr().err


def test_an_out_path_ending_in_onnx_is_used_as_it_is(tmp_path):
    from fmnist.export import export_onnx

    ck = load_checkpoint(ROOT / "checkpoints" / "logreg.safetensors")
    assert export_onnx(ck, tmp_path / "m.onnx") == tmp_path / "m.onnx"
    assert export_onnx(ck, tmp_path / "m") == tmp_path / "m.onnx"  # the suffix is added once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_an_ensemble_with_a_flip_tta_member_exports_its_flip(ds, tmp_path, capsys):
    from dataclasses import replace

    from fmnist.artifacts import make_ensemble
    from fmnist.checkpoints import Checkpoint, save_checkpoint

    quick = load_checkpoint(ROOT / "checkpoints" / "quick.safetensors")
    flipped = Checkpoint(quick.model, {**quick.card, "config": {**quick.card["config"], "tta_flip": True}})
    small = replace(ds, test_images=ds.test_images[:50], test_labels=ds.test_labels[:50])
    ens, _ = make_ensemble([flipped, quick], data=small)
    path = save_checkpoint(ens.model, ens.card, tmp_path / "ens.safetensors")
    assert main(["export", str(path), "--out", str(tmp_path / "ens"), "--json"]) == 0
    sess = ort.InferenceSession(json.loads(capsys.readouterr().out)["onnx"], providers=["CPUExecutionProvider"])
    x = ds.test_images[:100]
    (logits,) = sess.run(None, {"pixels": (x.float() / 255).unsqueeze(1).numpy()})
    ref = predict_logits(load_checkpoint(path).model, x).numpy()
    plain = predict_logits(quick.model, x).log_softmax(1).numpy()
    assert np.abs(logits - ref).max() < 1e-4 and np.abs(logits - plain).max() > 1e-3  # the flip is in the graph
