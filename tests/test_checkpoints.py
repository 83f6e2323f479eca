import os
import pickle

import pytest
import torch

from conftest import ROOT
from fmnist.artifacts import build_card
from fmnist.checkpoints import (
    LOCK_NAME,
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    from_bytes,
    load_checkpoint,
    read_card,
    sanitize_name,
    save_checkpoint,
    to_bytes,
)
from fmnist.models import create_model
from fmnist.runtime import to_input


def _card(arch="mlp"):
    return {
        "arch": arch,
        "kwargs": {},
        "history": [{"epoch": 1, "val_acc": 0.5}],
        "metrics": {"test": {"accuracy": 0.5}},
    }


def test_roundtrip(tmp_path, tiny_model, ds):
    card = build_card(tiny_model, {"accuracy": 0.8}, "python -m fmnist train --arch mlp")
    path = save_checkpoint(tiny_model.model, card, tmp_path / "m")
    assert path.name == "m.safetensors"
    ck = load_checkpoint(path)
    x = to_input(ds.test_images[:16])
    with torch.no_grad():
        a, b = tiny_model.model.eval()(x), ck.model(x)
    assert torch.allclose(a, b, atol=2e-2)  # weights stored as fp16
    assert (a.argmax(1) == b.argmax(1)).all()
    c = ck.card
    assert c["arch"] == "mlp" and c["params"] == 101_770 and c["command"].startswith("python -m fmnist")
    assert c["data_checksum"] == ds.checksum and c["versions"]["torch"] == torch.__version__
    assert c["history"] == tiny_model.history and c["config"]["epochs"] == 1
    assert read_card(path)["arch"] == "mlp"


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = save_checkpoint(create_model("mlp"), _card(), tmp_path / "keep")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(create_model("mlp"), {**_card(), "note": "new"}, path)
    assert path.read_bytes() == before  # old checkpoint intact
    assert [p.name for p in tmp_path.iterdir() if p.name != LOCK_NAME] == ["keep.safetensors"]  # no temp file left


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(evil)
    torch_file = tmp_path / "torch.safetensors"
    torch.save({"x": Payload()}, torch_file)  # a torch zip pickle, also refused
    with pytest.raises(CheckpointError, match="not a valid fmnist checkpoint"):
        load_checkpoint(torch_file)
    assert not marker.exists()


@pytest.mark.parametrize("data", [b"", b"garbage" * 10, b"\xff" * 8 + b"{}"])
def test_corrupt_files_refused(data):
    with pytest.raises(CheckpointError, match="not a valid fmnist checkpoint"):
        from_bytes(data, "x.safetensors")


def test_truncated_file_refused(tmp_path):
    path = save_checkpoint(create_model("mlp"), _card(), tmp_path / "t")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_wrong_architecture_refused():
    data = to_bytes(create_model("mlp"), _card("cnn2"))  # card lies about the weights
    with pytest.raises(CheckpointError, match="do not match architecture 'cnn2'"):
        from_bytes(data)


def test_names_are_sanitised(tmp_path):
    assert sanitize_name("../../etc/passwd") == "passwd"
    assert sanitize_name("my model!.safetensors") == "my-model"
    assert checkpoint_path("../../x", tmp_path).parent == tmp_path
    for bad in ("", "../", "..", "///"):
        with pytest.raises(ValueError):
            sanitize_name(bad)


def test_card_with_bad_kwargs_is_refused():
    data = to_bytes(create_model("mlp"), {**_card(), "kwargs": {"hidden": -5}})
    with pytest.raises(CheckpointError, match="cannot build 'mlp'"):
        from_bytes(data)


def test_read_card_refuses_non_object_header(tmp_path):
    p = tmp_path / "odd.safetensors"
    p.write_bytes((2).to_bytes(8, "little") + b"[]")
    with pytest.raises(CheckpointError, match="not an fmnist checkpoint"):
        read_card(p)


def test_saliency_leaves_shared_model_untouched(tiny_model, ds):
    from fmnist.explain import grad_cam, saliency

    model = tiny_model.model
    model.zero_grad(set_to_none=True)
    sal = saliency(model, ds.test_images[0], 9)
    assert sal.shape == (28, 28) and sal.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())
    assert grad_cam(model, ds.test_images[0], 9) is None  # an MLP has no conv layer


def test_tta_flip_is_read_from_the_cards_config():
    model = create_model("mlp")
    assert Checkpoint(model, {**_card(), "config": {"tta_flip": True}}).tta_flip is True
    assert Checkpoint(model, {**_card(), "tta_flip": True, "config": {"tta_flip": False}}).tta_flip is False
    assert Checkpoint(model, _card()).tta_flip is False
    ck = from_bytes(to_bytes(model, {**_card(), "config": {"tta_flip": True}}))
    assert ck.tta_flip is True  # survives the file round trip


def test_make_ensemble_card_and_metrics(tiny_model, ds):
    from fmnist.artifacts import make_ensemble
    from fmnist.evaluate import evaluate_test

    member = Checkpoint(tiny_model.model, {**build_card(tiny_model, {"accuracy": 0.7}), "name": "m1"})
    ens, ev = make_ensemble([member, member], "soft", "python -m fmnist ensemble a b")
    card = ens.card
    assert card["arch"] == "ensemble" and card["kwargs"]["vote"] == "soft" and len(ens.model.members) == 2
    assert card["members"] == [{"name": "m1", "arch": "mlp", "test_accuracy": 0.7}] * 2
    assert card["metrics"]["test"]["accuracy"] == ev.accuracy == evaluate_test(tiny_model.model).accuracy
    assert card["data_checksum"] == ds.checksum and card["command"] == "python -m fmnist ensemble a b"


def test_sanitize_name_edge_cases(tmp_path):
    assert sanitize_name("C:\\models\\MyNet_v2") == "MyNet_v2"  # Windows separators, case kept
    assert sanitize_name("-.-good.name-.-") == "good.name"  # leading/trailing '-' and '.' go
    assert sanitize_name("a" * 63 + "!" + "b" * 10) == "a" * 63  # cut at 64, then the dangling '-' goes
    assert sanitize_name("x" * 70) == "x" * 64
    with pytest.raises(ValueError, match=r"^'\.\./' is not a usable checkpoint name"):
        sanitize_name("../")
    assert checkpoint_path("My Net", tmp_path) == tmp_path / "My-Net.safetensors"


def test_an_ensemble_of_nothing_is_one_clear_error():
    from fmnist.artifacts import build_ensemble

    with pytest.raises(CheckpointError, match="^an ensemble needs at least one checkpoint$"):
        build_ensemble([])


def test_an_ensemble_keeps_each_members_architecture_options_and_its_vote():
    from fmnist.artifacts import build_ensemble

    k5 = load_checkpoint(ROOT / "checkpoints" / "cnn2-k5.safetensors")
    assert k5.card["kwargs"] == {"kernel_size": 5}
    model = build_ensemble([k5, k5], "majority")  # kwargs lost: the k5 weights would not fit a default cnn2
    assert model.vote == "majority"
    assert model.member_specs[0] == {"arch": "cnn2", "kwargs": {"kernel_size": 5}, "tta_flip": False}
    assert build_ensemble([k5]).vote == "soft"
    with pytest.raises(CheckpointError, match="^an ensemble cannot contain another ensemble$"):
        build_ensemble([k5, Checkpoint(model, {"arch": "ensemble"})])


def flipping(ck: Checkpoint) -> Checkpoint:
    """The same weights, with a card that answers by flip TTA (as best's does)."""
    return Checkpoint(ck.model, {**ck.card, "config": {**ck.card.get("config", {}), "tta_flip": True}})


def test_an_ensemble_member_votes_with_its_own_flip_tta_as_it_answers_alone(ds):
    from fmnist.artifacts import build_ensemble
    from fmnist.runtime import predict_logits

    quick = load_checkpoint(ROOT / "checkpoints" / "quick.safetensors")
    assert not quick.tta_flip
    ens = build_ensemble([flipping(quick), quick])
    assert ens.flips == [True, False] and [m["tta_flip"] for m in ens.member_specs] == [True, False]
    x = ds.test_images[:200]
    alone = predict_logits(quick.model, x, tta_flip=True).softmax(1)
    plain = predict_logits(quick.model, x).softmax(1)
    assert (alone - plain).abs().max() > 1e-2  # the flip changes the answers, so the test can tell
    assert torch.allclose(predict_logits(ens, x).exp(), (alone + plain) / 2, atol=1e-5)
    # a spec saved before members carried their flip votes without it
    assert create_model("ensemble", members=[{"arch": "cnn2"}]).flips == [False]


def test_make_ensemble_measures_on_the_data_it_is_given(tiny_model, ds):
    from dataclasses import replace

    from fmnist.artifacts import make_ensemble

    member = Checkpoint(tiny_model.model, {**build_card(tiny_model, {"accuracy": 0.7}), "name": "m1"})
    untimed = Checkpoint(tiny_model.model, {"arch": "mlp", "name": "m2"})  # a card without a training time
    small = replace(ds, test_images=ds.test_images[:100], test_labels=ds.test_labels[:100])
    ens, ev = make_ensemble([member, untimed], data=small)
    card = ens.card
    assert len(ev.labels) == 100 and card["kwargs"]["vote"] == "soft"
    assert card["train_time_s"] == member.card["train_time_s"] > 0  # the sum over the members that have one
    assert card["metrics"]["val"] == {"split": "none"} and card["history"] == []  # not validated itself
    assert card["config"] == {"tta_flip": False, "arch": "ensemble"} and card["data_checksum"] == ds.checksum
    assert make_ensemble([member, untimed], "majority", data=small)[0].model.vote == "majority"  # measured as saved


def test_validation_split_names_only_checkpoints_that_held_images_out():
    from fmnist.artifacts import validation_split

    assert validation_split({"arch": "cnn2", "config": {"seed": 3, "val_fraction": 0.1}}) == (3, 0.1)
    assert validation_split({"arch": "cnn2", "config": {"val_fraction": 0.2}}) == (0, 0.2)
    assert validation_split({"arch": "cnn2", "config": {"seed": 0, "val_fraction": 0.0}}) is None  # trained on all
    assert validation_split({"arch": "cnn2", "config": {"seed": 0, "val_fraction": 0.1, "subset": 5000}}) is None
    assert validation_split({"arch": "ensemble", "config": {"seed": 0, "val_fraction": 0.1}}) is None
    assert validation_split({"arch": "cnn2"}) is None


def test_an_ensemble_whose_members_held_out_the_same_images_is_validated_and_calibrated_on_them(ds, tmp_path):
    """Members trained on one split (the same seed and fraction): the vote's card has that split's accuracy
    and loss, and a temperature fitted there, as a trained run's card has; on different splits, neither."""
    from dataclasses import replace

    import torch.nn.functional as F

    from fmnist.artifacts import make_ensemble
    from fmnist.calibrate import fit_temperature
    from fmnist.config import TrainConfig
    from fmnist.data import split_indices
    from fmnist.runtime import predict_logits

    quick = load_checkpoint(ROOT / "checkpoints" / "quick.safetensors")
    assert (quick.card["config"]["seed"], quick.card["config"]["val_fraction"]) == (0, 0.1)
    small = replace(ds, test_images=ds.test_images[:300], test_labels=ds.test_labels[:300])
    ens, ev = make_ensemble([quick, flipping(quick)], data=small)
    card = ens.card
    _, val_idx = split_indices(TrainConfig(seed=0, val_fraction=0.1), ds.train_labels)
    assert len(val_idx) == 6000
    logits, y = predict_logits(ens.model, ds.train_images[val_idx]), ds.train_labels[val_idx]
    val = card["metrics"]["val"]
    assert val["split"] == "validation" and val["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean())
    assert val["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert card["temperature"] == pytest.approx(fit_temperature(logits, y), abs=1e-4) and card["temperature"] < 0.9
    assert card["metrics"]["test"]["ece_calibrated"] == ev.calibrated_ece(card["temperature"])
    assert card["config"] == {"tta_flip": False, "arch": "ensemble", "seed": 0, "val_fraction": 0.1}
    save_checkpoint(ens.model, card, tmp_path / "vote.safetensors")
    assert load_checkpoint(tmp_path / "vote.safetensors").temperature == card["temperature"]  # Predict uses it
    other = Checkpoint(quick.model, {**quick.card, "config": {**quick.card["config"], "seed": 1}})
    for members in ([quick, other], [quick, Checkpoint(quick.model, {"arch": "quickcnn"})]):
        unvalidated = make_ensemble(members, data=small)[0].card
        assert unvalidated["metrics"]["val"] == {"split": "none"} and "temperature" not in unvalidated
        assert unvalidated["config"] == {"tta_flip": False, "arch": "ensemble"}


def _linked_vote(tmp_path):
    """Two saved cnn2 members (kernel 3 and 5) and their soft vote, linked, in one folder."""
    from fmnist.artifacts import build_ensemble

    torch.manual_seed(0)
    paths = [
        save_checkpoint(
            create_model("cnn2", kernel_size=k), {**_card("cnn2"), "kwargs": {"kernel_size": k}}, tmp_path / n
        )
        for n, k in (("a", 3), ("b", 5))
    ]
    members = [load_checkpoint(p) for p in paths]
    ens = build_ensemble(members)
    card = {"arch": "ensemble", "kwargs": {"members": ens.member_specs, "vote": "soft"}, "command": "REMAKE"}
    return paths, ens, save_checkpoint(ens, card, tmp_path / "vote", linked=paths)


def test_a_linked_ensemble_stores_no_weights_and_loads_its_members_files(tmp_path, ds):
    (a, b), ens, path = _linked_vote(tmp_path)
    copied = save_checkpoint(ens, {"arch": "ensemble", "kwargs": {"members": ens.member_specs}}, tmp_path / "copy")
    assert path.stat().st_size < 4096 < a.stat().st_size + b.stat().st_size < copied.stat().st_size + 4096
    files = read_card(path)["member_files"]
    assert [m["file"] for m in files] == ["a.safetensors", "b.safetensors"]
    assert files[0]["sha256"] == __import__("hashlib").sha256(a.read_bytes()).hexdigest()
    x = to_input(ds.test_images[:8])
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).model(x), load_checkpoint(copied).model(x))
    with pytest.raises(
        CheckpointError, match="^vote links its members' files: load it from the folder it was saved in$"
    ):
        from_bytes(path.read_bytes(), "vote")


def test_a_linked_ensemble_refuses_a_changed_or_missing_member_in_one_line(tmp_path):
    (a, b), _, path = _linked_vote(tmp_path)
    save_checkpoint(create_model("cnn2", kernel_size=5), {**_card("cnn2"), "kwargs": {"kernel_size": 5}}, b)
    with pytest.raises(
        CheckpointError,
        match=r"^vote.safetensors: its member b.safetensors has changed since the vote was made; "
        r"make it again \(REMAKE\)$",
    ):
        load_checkpoint(path)
    assert read_card(path)["arch"] == "ensemble"  # still listed: the file is there
    a.unlink()
    with pytest.raises(CheckpointError, match="^vote.safetensors: its member a.safetensors is missing$"):
        read_card(path)
    with pytest.raises(
        CheckpointError,
        match=r"^vote.safetensors: its member a.safetensors cannot be read \(no checkpoint at a.safetensors\)$",
    ):
        load_checkpoint(path)
    from fmnist.checkpoints import scan_cards

    assert [p.name for p, _ in scan_cards(tmp_path)] == ["b.safetensors"]  # the broken vote is not listed


def test_only_an_ensemble_links_and_only_to_files_beside_it(tmp_path):
    (a, b), ens, _ = _linked_vote(tmp_path)
    card = {"arch": "ensemble", "kwargs": {"members": ens.member_specs}}
    with pytest.raises(CheckpointError, match="^only an ensemble can link its members' files, one file per member$"):
        save_checkpoint(ens, card, tmp_path / "v", linked=[a])
    with pytest.raises(CheckpointError, match="^only an ensemble can link"):
        save_checkpoint(create_model("mlp"), _card(), tmp_path / "v", linked=[a])
    (tmp_path / "sub").mkdir()
    with pytest.raises(
        CheckpointError, match="^a.safetensors: a linked member must be a checkpoint in the ensemble's own folder$"
    ):
        save_checkpoint(ens, card, tmp_path / "sub" / "v", linked=[a, b])
    assert not (tmp_path / "v.safetensors").exists() and not (tmp_path / "sub" / "v.safetensors").exists()
    before = a.read_bytes()
    with pytest.raises(
        CheckpointError, match="^a.safetensors is a member of this vote: the vote cannot be saved over it$"
    ):
        save_checkpoint(ens, card, a, linked=[a, b])
    assert a.read_bytes() == before  # the member is untouched
    odd = tmp_path / "my model.safetensors"
    odd.write_bytes(before)
    with pytest.raises(CheckpointError, match="^my model.safetensors: a linked member's name may hold only letters"):
        save_checkpoint(ens, card, tmp_path / "v", linked=[odd, b])


@pytest.mark.parametrize(
    "files",
    [
        "a.safetensors",
        [{"file": "a.safetensors", "sha256": "0" * 64}],  # one file for two members
        [{"file": "../a.safetensors", "sha256": "0" * 64}] * 2,  # outside the folder
        [{"file": "a.safetensors", "sha256": "0" * 63}] * 2,
        [{"file": "a.safetensors", "sha256": "0" * 63 + "G"}] * 2,
        [{"file": "a.pt", "sha256": "0" * 64}] * 2,
        [{"sha256": "0" * 64}] * 2,
        ["a.safetensors"] * 2,
    ],
)
def test_a_damaged_member_list_is_refused_in_one_line(tmp_path, files):
    import json

    from safetensors.torch import save

    (a, b), ens, path = _linked_vote(tmp_path)
    card = read_card(path) | {"member_files": files}
    data = save({}, metadata={"format": "fmnist-checkpoint/1", "card": json.dumps(card)})
    with pytest.raises(CheckpointError, match=r"^x: model card is damaged \(member_files\)$"):
        from_bytes(data, "x", tmp_path)
    one = [{"file": "a.safetensors", "sha256": "0" * 64}]
    for odd in (  # not an ensemble; an ensemble card without kwargs; no members and no files
        _card() | {"member_files": one},
        {"arch": "ensemble", "member_files": one},
        {"arch": "ensemble", "kwargs": {"members": []}, "member_files": []},
    ):
        data = save({}, metadata={"format": "fmnist-checkpoint/1", "card": json.dumps(odd)})
        with pytest.raises(CheckpointError, match=r"^x: model card is damaged \(member_files\)$"):
            from_bytes(data, "x", tmp_path)


def test_a_linked_member_that_is_not_a_checkpoint_is_one_line_and_the_remedy_is_named(tmp_path):
    import hashlib
    import json

    from safetensors.torch import save

    (a, b), _, path = _linked_vote(tmp_path)
    b.write_bytes(b"not safetensors at all")
    card = read_card(path)
    card.pop("command")
    card["member_files"][1]["sha256"] = hashlib.sha256(b.read_bytes()).hexdigest()
    data = save({}, metadata={"format": "fmnist-checkpoint/1", "card": json.dumps(card)})
    with pytest.raises(CheckpointError, match=r"^v: its member b.safetensors is not valid: \S.{0,119}$"):
        from_bytes(data, "v", tmp_path)
    card["member_files"][1]["sha256"] = "0" * 64
    data = save({}, metadata={"format": "fmnist-checkpoint/1", "card": json.dumps(card)})
    with pytest.raises(CheckpointError, match=r"make it again \(python -m fmnist ensemble \.\.\. --link\)$"):
        from_bytes(data, "v", tmp_path)


def test_read_card_names_the_file_in_its_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08" + b"\x00" * 7 + b"{}")
    with pytest.raises(CheckpointError, match="^bad.safetensors is not a valid fmnist checkpoint: bad header length$"):
        read_card(bad)
    bad.write_bytes(b"\x02" + b"\x00" * 7 + b"{}")
    with pytest.raises(CheckpointError, match="^bad.safetensors is a safetensors file but not an fmnist checkpoint"):
        read_card(bad)
