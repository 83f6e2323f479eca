"""Every shipped checkpoint loads safely and still scores what its model card says."""

import pytest

from conftest import ROOT
from fmnist.checkpoints import SHIPPED, list_checkpoints, load_checkpoint, read_card, shipped_command
from fmnist.config import preset_config
from fmnist.evaluate import evaluate
from fmnist.shipping import SHIPPABLE, recipe_differences, shipped_config
from fmnist.train import train

PATHS = [ROOT / "checkpoints" / f"{n}.safetensors" for n in SHIPPED]
N = 1000  # the fixed subset: the first 1,000 test images (the card records its accuracy)


def test_shipped_set_is_complete():
    assert {p.stem for p in list_checkpoints(ROOT / "checkpoints")} >= set(SHIPPED)
    assert sum(p.stat().st_size for p in PATHS) < 20 * 2**20  # a few MB each, no LFS


def test_a_shipped_vote_links_its_shipped_members_instead_of_copying_their_weights():
    votes = {p.stem: read_card(p) for p in PATHS if read_card(p)["arch"] == "ensemble"}
    assert {"photo-vote", "ensemble"} <= set(votes)
    for name, card in votes.items():
        files = [m["file"] for m in card["member_files"]]
        others = {p.name for p in PATHS} - {f"{name}.safetensors"}
        assert len(files) == len(card["members"]) > 1 and set(files) <= others
        assert (ROOT / "checkpoints" / f"{name}.safetensors").stat().st_size < 8192


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_checkpoint_matches_its_card(path, ds):
    ck = load_checkpoint(path)  # safetensors only: no pickle can run
    card = ck.card
    test = card["metrics"]["test"]
    assert card["data_checksum"] == ds.checksum  # trained on this exact dataset
    assert card["command"] == shipped_command(path.stem)  # by the command SHIPPED lists
    res = evaluate(ck.model, ds.test_images[:N], ds.test_labels[:N], tta_flip=ck.tta_flip)
    assert res.accuracy == pytest.approx(test[f"subset{N}_accuracy"], abs=0.004)
    assert read_card(path)["arch"] == card["arch"]


@pytest.mark.parametrize("name", [n for n in SHIPPED if SHIPPED[n].startswith("train ")])
def test_every_trained_checkpoint_is_what_its_shipped_command_trains(name):
    """Its card's options are the command's (device, precision and log_every aside): a preset that changes its
    recipe, or a file shipped under the wrong name, fails here until the model is trained again or renamed."""
    card = read_card(ROOT / "checkpoints" / f"{name}.safetensors")
    want, preset = shipped_config(name)
    assert recipe_differences(card, want) == [] and card["arch"] == want.arch
    assert card["status"] in SHIPPABLE and card.get("preset") in (preset, None)


def test_a_model_trained_with_flip_tta_predicts_with_it(ds):
    """resnet64's card's config says tta_flip; loading must honour it, and it must matter."""
    ck = load_checkpoint(ROOT / "checkpoints" / "resnet64.safetensors")
    assert ck.card["config"]["tta_flip"] is True and ck.tta_flip is True
    x, y = ds.test_images[:N], ds.test_labels[:N]
    with_tta = evaluate(ck.model, x, y, tta_flip=True)
    assert with_tta.accuracy == pytest.approx(ck.card["metrics"]["test"][f"subset{N}_accuracy"], abs=1e-9)
    assert not (with_tta.probs == evaluate(ck.model, x, y, tta_flip=False).probs).all()


def test_quick_preset_learns_in_two_short_epochs(ds):
    """The classroom recipe itself (not the shipped file): well above chance on a small subset."""
    res = train(preset_config("quick", epochs=2, subset=6000, precision="fp32"), ds)
    assert res.status == "finished" and res.val_acc > 0.8


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_every_card_metric_names_its_split_and_lies_in_its_range(path):
    """No card may call a negated loss or a training accuracy its validation accuracy (issue 21)."""
    card = read_card(path)
    val, test = card["metrics"]["val"], card["metrics"]["test"]
    assert 0.1 < test["accuracy"] <= 1 and test["loss"] >= 0  # the 10,000 test images
    if val["split"] == "none":  # no validation split (mlp's report trains on all 60k; an ensemble is not trained)
        assert set(val) == {"split"}
        assert card.get("config", {}).get("val_fraction", 0) == 0 or "members" in card
        return
    assert val["split"] == "validation" and card["config"]["val_fraction"] > 0
    assert 0.1 < val["accuracy"] <= 1 and 0 <= val["loss"] < 10
    if "members" in card:  # an ensemble weighed on its members' shared split: it has no epochs of its own
        assert card["history"] == [] and 0.05 < card["temperature"] < 20
        return
    row = card["history"][card["best_epoch"] - 1]  # the best epoch's own validation figures
    assert row["epoch"] == card["best_epoch"] and (row["val_acc"], row["val_loss"]) == (val["accuracy"], val["loss"])
