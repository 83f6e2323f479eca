"""Every shipped checkpoint loads safely and still scores what its model card says."""

import pytest

from conftest import ROOT
from fmnist.checkpoints import list_checkpoints, load_checkpoint, read_card
from fmnist.evaluate import evaluate

SHIPPED = list_checkpoints(ROOT / "checkpoints")
N = 1000  # the fixed subset: the first 1,000 test images (the card records its accuracy)


def test_shipped_set_is_complete():
    names = {p.stem for p in SHIPPED}
    assert {"quick", "cnn2", "mlp", "logreg"} <= names
    assert sum(p.stat().st_size for p in SHIPPED) < 20 * 2**20  # a few MB, no LFS


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_checkpoint_matches_its_card(path, ds):
    ck = load_checkpoint(path)  # safetensors only: no pickle can run
    card = ck.card
    test = card["metrics"]["test"]
    assert card["data_checksum"] == ds.checksum  # trained on this exact dataset
    assert card["command"].startswith("python -m fmnist ")
    res = evaluate(ck.model, ds.test_images[:N], ds.test_labels[:N], tta_flip=ck.tta_flip)
    assert res.accuracy == pytest.approx(test[f"subset{N}_accuracy"], abs=0.004)
    assert read_card(path)["arch"] == card["arch"]


def test_quick_preset_claim():
    card = read_card(ROOT / "checkpoints" / "quick.safetensors")
    assert card["metrics"]["test"]["accuracy"] >= 0.91 and card["train_time_s"] <= 60
