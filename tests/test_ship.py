"""Shipping a trained checkpoint under its SHIPPED name (fmnist.shipping.ship, scripts/ship.py)."""

import pytest
from safetensors.torch import load_file
from ship import main as ship_main

from fmnist import checkpoints
from fmnist.checkpoints import (
    CheckpointError,
    CheckpointExists,
    load_checkpoint,
    read_card,
    save_checkpoint,
    shipped_command,
)
from fmnist.cli import main
from fmnist.shipping import HOW_RUN, SHIPPABLE, ship, shipped_config, votes_linking

TINY = "train --arch mlp --epochs 1 --subset 500 --seed 3"  # the shipped command of a test's "tiny"


@pytest.fixture
def shipped(monkeypatch):
    """SHIPPED with two test names whose command trains TINY, and a vote made by its own command."""
    for name in ("tiny", "tiny2"):
        monkeypatch.setitem(checkpoints.SHIPPED, name, TINY)
    vote = "ensemble checkpoints/tiny.safetensors checkpoints/tiny2.safetensors --link"
    monkeypatch.setitem(checkpoints.SHIPPED, "tiny-vote", vote)
    monkeypatch.setitem(checkpoints.SHIPPED, "tiny3", TINY.replace("--epochs 1", "--epochs 2"))
    monkeypatch.setitem(checkpoints.SHIPPED, "tiny4", TINY.replace("--epochs 1", "--epochs 2 --erase 0.5"))
    monkeypatch.setitem(checkpoints.SHIPPED, "tinyq", "train --preset quick --epochs 1 --subset 300")
    monkeypatch.setitem(checkpoints.SHIPPED, "tiny60", TINY + " --time-budget 60")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run as TINY trains it, but executed otherwise: its own file name, fp32, the CPU, its own log_every."""
    out = tmp_path_factory.mktemp("runs") / "mlp-run.safetensors"
    argv = [*TINY.split(), "--precision", "fp32", "--device", "cpu", "--log-every", "3", "--out", str(out)]
    assert main(argv) == 0
    return out


def test_how_a_run_was_executed_is_all_it_may_differ_in():
    assert {"device", "precision", "log_every"} == HOW_RUN
    assert SHIPPABLE == ("finished", "early_stopped")  # keras3 stops early by its recipe; a stopped run is cut short


def test_the_votes_that_link_a_shipped_checkpoint_are_named(shipped, monkeypatch):
    monkeypatch.setitem(
        checkpoints.SHIPPED, "tiny-vote2", "ensemble checkpoints/tiny.safetensors checkpoints/x.safetensors"
    )
    assert votes_linking("tiny") == ["tiny-vote", "tiny-vote2"] and votes_linking("tiny2") == ["tiny-vote"]
    assert votes_linking("tiny3") == [] and votes_linking("tiny-vote") == [] and votes_linking("x") == ["tiny-vote2"]
    assert votes_linking("cnn2") == ["ensemble"] and votes_linking("quick") == []


def test_a_shipped_file_is_replaced_only_with_force(run, shipped, tmp_path):
    out = ship(run, "tiny", tmp_path, note="first")
    before = out.read_bytes()
    with pytest.raises(CheckpointExists, match=f"^{out} exists; replace it with --force$"):
        ship(run, "tiny", tmp_path, note="second")
    assert out.read_bytes() == before
    assert read_card(ship(run, "tiny", tmp_path, note="second", force=True))["note"] == "second"


def test_shipping_keeps_the_weights_and_names_the_shipped_command(run, shipped, tmp_path):
    before = run.read_bytes()
    made_by = read_card(run)["command"]
    out = ship(run, "tiny", tmp_path, note="run on a laptop")
    assert out == tmp_path / "tiny.safetensors" and run.read_bytes() == before  # the source is left as it was
    got, want = load_file(out), load_file(run)
    assert got.keys() == want.keys() and all(got[k].dtype == want[k].dtype and got[k].equal(want[k]) for k in want)
    card = read_card(out)
    assert (card["name"], card["command"], card["trained_as"]) == ("tiny", shipped_command("tiny"), made_by)
    assert card["command"].endswith("--out checkpoints/tiny.safetensors --force") and "mlp-run" in made_by
    assert card["note"] == "run on a laptop" and card["preset"] is None  # TINY names an architecture, no preset
    assert card["metrics"] == read_card(run)["metrics"] and card["config"]["precision"] == "fp32"
    assert load_checkpoint(out).name == "tiny"


def test_shipping_a_shipped_file_again_keeps_the_command_that_ran_and_its_note(run, shipped, tmp_path):
    made_by = read_card(run)["command"]
    first = ship(run, "tiny", tmp_path, note="run on a laptop")
    again = ship(first, "tiny2", tmp_path / "b")
    card = read_card(again)
    assert (card["name"], card["command"], card["trained_as"]) == ("tiny2", shipped_command("tiny2"), made_by)
    assert card["note"] == "run on a laptop"
    same = ship(first, "tiny", tmp_path / "c")  # its own shipped command already: nothing new to record
    assert read_card(same)["trained_as"] == made_by and "note" in read_card(same)


def test_the_card_names_the_shipped_commands_preset_and_adds_no_trained_as_when_nothing_differs(shipped, tmp_path):
    src = tmp_path / "q.safetensors"
    assert main(["train", "--arch", "quickcnn", "--epochs", "1", "--subset", "300", "--out", str(src)]) == 0
    assert read_card(src)["preset"] is None  # trained by naming the architecture: the quick preset's recipe
    assert read_card(ship(src, "tinyq", tmp_path / "a"))["preset"] == "quick"
    ck = load_checkpoint(src)
    own = {k: v for k, v in ck.card.items() if k != "trained_as"} | {"command": shipped_command("tinyq")}
    made_here = save_checkpoint(ck.model, own, tmp_path / "b" / "tinyq.safetensors")  # written by its own command
    assert "trained_as" not in read_card(ship(made_here, "tinyq", tmp_path / "c"))


def test_a_preset_command_is_read_by_the_clis_own_parser():
    cfg, preset = shipped_config("keras3-full")
    assert preset == "keras3" and cfg.arch == "keras3" and cfg.patience is None  # `--patience 0` turns it off
    cfg, preset = shipped_config("cnn2-k5")
    assert preset == "cnn2" and cfg.model_kwargs == {"kernel_size": 5}


def test_a_run_of_other_options_is_refused_naming_each_difference(run, shipped, tmp_path):
    with pytest.raises(CheckpointError) as e:
        ship(run, "tiny3", tmp_path)
    command = shipped_command("tiny3")
    assert str(e.value) == f"mlp-run.safetensors was not trained as `{command}` trains: epochs 1, not 2"
    assert not list(tmp_path.iterdir())  # nothing written
    with pytest.raises(CheckpointError) as e:
        ship(run, "tiny4", tmp_path)
    assert str(e.value).endswith(" trains: epochs 1, not 2; erase 0.0, not 0.5")  # each option once, by its own name


@pytest.mark.parametrize(
    "name, message",
    [
        ("nope", "'nope' is not a shipped name; list its command in fmnist.checkpoints.SHIPPED first"),
        ("tiny-vote", "tiny-vote is made by `python -m fmnist ensemble checkpoints/tiny.safetensors checkpoints/"),
    ],
)
def test_a_name_that_is_not_shipped_by_training_is_refused(run, shipped, tmp_path, name, message):
    with pytest.raises(CheckpointError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        ship(run, name, tmp_path)
    assert not list(tmp_path.iterdir())


def _config(**change):
    return lambda card: {**card, "config": {**card["config"], **change}}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"status": "stopped"}, "mlp-run.safetensors: its run did not finish ('stopped'); ship only finished runs"),
        ({"status": "diverged"}, "mlp-run.safetensors: its run did not finish ('diverged'); ship only finished runs"),
        ({"status": None}, "mlp-run.safetensors: its run did not finish (None); ship only finished runs"),
        ({"config": {"arch": "mlp", "epochs": "many"}}, "mlp-run.safetensors: its card's config cannot be read"),
        ({"config": {"arch": "mlp", "colour": 1}}, "mlp-run.safetensors: its card's config cannot be read"),
        ({"config": None}, "mlp-run.safetensors: its card's config cannot be read (it names no architecture)"),
        ({"config": {"epochs": 1}}, "mlp-run.safetensors: its card's config cannot be read (it names no architecture)"),
        (
            _config(arch="cnn2"),
            "mlp-run.safetensors: its card's config cannot be read (its weights are a 'mlp' with {},",
        ),
        (_config(model_kwargs={"hidden": 64}), "mlp-run.safetensors: its card's config cannot be read (its weights"),
    ],
)
def test_an_unfinished_run_or_an_unreadable_card_is_refused(run, shipped, tmp_path, change, message):
    ck = load_checkpoint(run)
    card = change(ck.card) if callable(change) else {**ck.card, **change}
    bad = save_checkpoint(ck.model, card, tmp_path / "src" / "mlp-run.safetensors")
    with pytest.raises(CheckpointError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        ship(bad, "tiny", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "status, train_time_s, budget, ships",
    [
        ("finished", 59.9, None, True),  # no budget then; 60 s now would not have stopped it
        ("finished", 60.0, None, False),  # it would have
        ("finished", 30.0, 45, True),  # a smaller budget that it also stayed under
        ("finished", 50.0, 45, False),  # a budget it ran past: it was not a finished run under it
        ("early_stopped", 1.0, None, False),  # stopped early: the budget is not known to be moot
        ("finished", None, None, False),  # no time recorded
    ],
)
def test_a_time_budget_that_stopped_nothing_is_the_same_run(
    run, shipped, tmp_path, status, train_time_s, budget, ships
):
    ck = load_checkpoint(run)
    card = {**ck.card, "status": status, "train_time_s": train_time_s}
    card["config"] = {**card["config"], "time_budget": budget}
    src = save_checkpoint(ck.model, card, tmp_path / "src" / "b.safetensors")
    if ships:
        assert read_card(ship(src, "tiny60", tmp_path))["config"]["time_budget"] == budget
    else:
        with pytest.raises(CheckpointError, match=f"trains: time_budget {budget}, not 60.0$"):
            ship(src, "tiny60", tmp_path)


def test_a_run_that_stopped_early_by_its_recipe_ships(run, shipped, tmp_path):
    ck = load_checkpoint(run)
    early = save_checkpoint(ck.model, {**ck.card, "status": "early_stopped"}, tmp_path / "src" / "e.safetensors")
    assert read_card(ship(early, "tiny", tmp_path))["status"] == "early_stopped"


def test_the_script_says_what_it_did_or_why_not_in_one_line(run, shipped, tmp_path, capsys):
    assert ship_main([str(run), "tiny", "--dir", str(tmp_path), "--note", "n"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"shipped {run} as {tmp_path / 'tiny.safetensors'}\n"
        f"tiny-vote links tiny: make it again: {shipped_command('tiny-vote')}\n"
    )
    assert read_card(tmp_path / "tiny.safetensors")["note"] == "n"
    assert ship_main([str(run), "tiny", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'tiny.safetensors'} exists; replace it with --force\n"
    assert ship_main([str(run), "tiny", "--dir", str(tmp_path), "--force", "--note", "m"]) == 0
    assert read_card(tmp_path / "tiny.safetensors")["note"] == "m" and capsys.readouterr().out.startswith("shipped")
    assert ship_main([str(run), "tiny3", "--dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mlp-run.safetensors was not trained as") and err.count("\n") == 1
    assert ship_main([str(tmp_path / "missing.safetensors"), "tiny", "--dir", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "x").exists()
