"""Every shipped checkpoint loads safely and still scores what its model card says."""

import pytest

from conftest import ROOT
from fmnist.checkpoints import list_checkpoints, load_checkpoint, read_card
from fmnist.evaluate import evaluate

# What scripts/train_zoo.sh ships (models you save from the app may sit beside them).
NAMES = ["quick", "logreg", "mlp", "mlp2", "cnn2", "keras1", "keras2", "keras3", "best", "cnn3bn", "cnn2-k5",
         "cnn2-k7", "ensemble"]  # fmt: skip
SHIPPED = [ROOT / "checkpoints" / f"{n}.safetensors" for n in NAMES]
N = 1000  # the fixed subset: the first 1,000 test images (the card records its accuracy)


def test_shipped_set_is_complete():
    assert {p.stem for p in list_checkpoints(ROOT / "checkpoints")} >= set(NAMES)
    assert sum(p.stat().st_size for p in SHIPPED) < 16 * 2**20  # a few MB, no LFS


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
