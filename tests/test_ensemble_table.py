"""scripts/ensemble_table.py: members chosen on validation images only, and its rows equal the CLI's ensemble.

Imported as `scripts.ensemble_table` (not from scripts/ on sys.path), so that mutmut maps its mutants to these tests.
"""

from pathlib import Path

import pytest
import torch

from fmnist.checkpoints import load_checkpoint
from scripts.ensemble_table import (
    Member,
    accuracy,
    declared,
    forward_selection,
    main,
    markdown,
    markdown_declared,
    run,
    run_declared,
    vote,
)

ROOT_CKPT = "checkpoints"


def member(name: str, val: list[list[float]], test: list[list[float]] | None = None) -> Member:
    v = torch.tensor(val)
    return Member(name, v, torch.tensor(test) if test is not None else v.clone())


# four validation images of classes 0, 1, 2, 3; each row a member's probabilities over 4 classes
Y = torch.tensor([0, 1, 2, 3])


def test_forward_selection_adds_what_helps_on_validation_and_stops_when_nothing_does():
    a = member("a", [[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0.6, 0.4]])  # 2 of 4
    b = member("b", [[0.2, 0.8, 0, 0], [0.6, 0.4, 0, 0], [0, 0, 0.9, 0.1], [0, 0, 0.2, 0.8]])  # 2 of 4
    c = member("c", [[0.0, 1.0, 0, 0], [1.0, 0.0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])  # 0 of 4: hurts
    assert accuracy(a.val, Y) == accuracy(b.val, Y) == 0.5
    assert accuracy(vote([a, b], "val"), Y) == 1.0
    # a is first (ties keep the earlier one), b lifts the vote to 4 of 4, c would only lower it
    assert [m.name for m in forward_selection([a, b, c], Y)] == ["a", "b"]
    assert [m.name for m in forward_selection([b, a, c], Y)] == ["b", "a"]


def test_forward_selection_needs_a_strict_gain_and_starts_from_the_best_single_model():
    a = member("a", [[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0.6, 0.4]])  # 2 of 4
    best = member("best", [[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0, 0, 0.9, 0.1], [0, 0.6, 0, 0.4]])  # 3 of 4
    twin = member("twin", best.val.tolist())  # the same answers: no gain, so not added
    assert [m.name for m in forward_selection([a, twin, best], Y)][0] == "twin"  # equal to best, earlier
    assert [m.name for m in forward_selection([best, twin], Y)] == ["best"]
    assert [m.name for m in forward_selection([best], Y)] == ["best"]


def test_the_test_set_never_decides_membership():
    # b is useless on validation but perfect on test: it must not be chosen
    a = member("a", [[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0, 0, 0.9, 0.1], [0, 0.6, 0, 0.4]], [[0.25] * 4] * 4)
    b = member("b", [[0.25] * 4] * 4, [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    assert [m.name for m in forward_selection([a, b], Y)] == ["a"]


def test_vote_is_the_mean_probability():
    a, b = member("a", [[1.0, 0, 0, 0]]), member("b", [[0, 0.5, 0.5, 0]])
    assert torch.allclose(vote([a, b], "val"), torch.tensor([[0.5, 0.25, 0.25, 0]]))


def test_on_shipped_checkpoints_a_row_equals_the_ensemble_the_cli_builds(ds, tmp_path):
    from fmnist.artifacts import make_ensemble
    from fmnist.checkpoints import Checkpoint, save_checkpoint
    from fmnist.evaluate import evaluate_test

    quick = load_checkpoint(f"{ROOT_CKPT}/quick.safetensors")
    # quick's weights with a card that answers by flip TTA, as best's does: a member votes with its own flip
    flipped = Checkpoint(quick.model, {**quick.card, "config": {**quick.card["config"], "tta_flip": True}})
    paths = {"qflip": save_checkpoint(flipped.model, flipped.card, tmp_path / "qflip.safetensors")}
    paths |= {n: Path(f"{ROOT_CKPT}/{n}.safetensors") for n in ("cnn2", "keras2", "mlp")}
    res = run(list(paths.values()), ds)
    assert res["split"] == {"seed": 0, "val_fraction": 0.1, "images": 6000}
    assert res["machine"]["cores"] >= 1 and "cpu_flags" in res["machine"]  # every figure carries its machine
    assert res["left_out"] == [
        {"name": "keras2", "why": "another split"},
        {"name": "mlp", "why": "no validation split"},
    ]
    singles = {r["name"]: r for r in res["singles"]}
    with_flip = evaluate_test(quick.model, tta_flip=True, data=ds).accuracy
    assert with_flip != evaluate_test(quick.model, data=ds).accuracy  # the flip shows in the figure
    assert singles["qflip"]["test"] == pytest.approx(with_flip)
    assert singles["cnn2"]["val"] == pytest.approx(0.9107, abs=5e-4)  # cnn2's last epoch on the held-out 6,000
    # every row's test figure is what `python -m fmnist ensemble <its members> --vote soft` reports
    chosen = res["steps"][-1]["members"]
    rows = [(r["members"], r) for r in res["steps"]] + [([*chosen, r["with"]], r) for r in res["added"]]
    rows += [([n for n in chosen if n != r["without"]], r) for r in res["without"]]
    assert {n for names, _ in rows for n in names} == {"qflip", "cnn2"}  # both candidates were weighed
    for names, row in rows:
        members = [load_checkpoint(paths[n]) for n in names]
        assert row["test"] == pytest.approx(make_ensemble(members, "soft", data=ds)[1].accuracy, abs=1e-4)
    table = markdown(res)
    assert "| candidate alone | validation | test |" in table and "Left out: keras2 (another split)" in table
    assert ("| the chosen vote plus |" in table) == bool(res["added"])
    assert ("| the chosen vote without |" in table) == bool(res["without"])


def test_a_missing_or_broken_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    for path in (tmp_path / "nope.safetensors", bad):
        with pytest.raises(SystemExit, match=r"^error: .*(no checkpoint at|not a valid fmnist checkpoint)"):
            main([str(path)])


def test_a_declared_vote_reports_what_each_member_adds_and_chooses_nothing():
    a = member("a", [], [[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0.6, 0.4]])  # 2 of 4
    b = member("b", [], [[0.2, 0.8, 0, 0], [0.6, 0.4, 0, 0], [0, 0, 0.9, 0.1], [0, 0, 0.2, 0.8]])  # 2 of 4
    c = member("c", [], [[1.0, 0, 0, 0]] * 4)  # 1 of 4
    res = declared([a, b, c], Y)
    assert res["members"] == ["a", "b", "c"] and res["test"] == accuracy(vote([a, b, c], "test"), Y) == 0.75
    assert res["singles"] == [{"name": "a", "test": 0.5}, {"name": "b", "test": 0.5}, {"name": "c", "test": 0.25}]
    assert [(r["without"], r["test"], r["adds"]) for r in res["without"]] == [
        ("a", 0.25, 0.5),  # b and c: 1 of 4
        ("b", 0.25, 0.5),
        ("c", 1.0, -0.25),  # a member that costs the vote an image: kept (nothing is chosen), and shown
    ]
    assert declared([a], Y)["without"] == []
    assert [r["without"] for r in declared([a, b], Y)["without"]] == ["a", "b"]  # two members: each one's share
    table = markdown_declared(res)
    assert "| a + b + c | **75.00%** | |" in table and "| without c | 100.00% | -25.00 points |" in table
    assert "| without a | 25.00% | +50.00 points |" in table
    assert "| member alone | test |" in table and "| c | 25.00% |" in table


def test_a_declared_vote_of_shipped_checkpoints_equals_the_clis(ds, capsys, tmp_path):
    from fmnist.artifacts import make_ensemble
    from fmnist.checkpoints import save_checkpoint
    from fmnist.evaluate import evaluate_test

    quick = load_checkpoint(f"{ROOT_CKPT}/quick.safetensors")  # its weights, answering with flip TTA
    qflip = save_checkpoint(
        quick.model, {**quick.card, "config": {**quick.card["config"], "tta_flip": True}}, tmp_path / "qflip"
    )
    paths = [qflip, Path(f"{ROOT_CKPT}/mlp.safetensors")]  # mlp trained on all 60,000 images: no split to choose on
    res = run_declared(paths, ds)
    members = [load_checkpoint(p) for p in paths]
    assert res["test"] == pytest.approx(make_ensemble(members, "soft", data=ds)[1].accuracy, abs=1e-4)
    assert res["singles"][0]["test"] == pytest.approx(evaluate_test(quick.model, tta_flip=True, data=ds).accuracy)
    assert res["singles"][1]["test"] == pytest.approx(members[1].card["metrics"]["test"]["accuracy"], abs=1e-4)
    assert "cpu_flags" in res["machine"]
    assert main(["--declared", *map(str, paths)]) == 0
    assert capsys.readouterr().out.startswith("| soft vote, fixed beforehand | test | the member adds |")
    with pytest.raises(SystemExit, match="^error: --declared needs the vote's checkpoints$"):
        main(["--declared"])
