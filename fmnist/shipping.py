"""Shipping a trained checkpoint under its name in `fmnist.checkpoints.SHIPPED` (scripts/ship.py), and checking
that a card's options are what a command trains (tests/test_shipped.py, scripts/results_table.py).

A leaf module: it reads SHIPPED's commands with the CLI's own parser, so nothing in the core imports it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from .checkpoints import SHIPPED, CheckpointError, CheckpointExists, load_checkpoint, save_checkpoint, shipped_command
from .cli import build_config, parser  # the CLI's own reading of a command: no second parser to drift
from .config import ConfigError, TrainConfig

# The options a shipped model may have been run with other than its SHIPPED command says: how the run was
# executed (the card records what it ran on), not what it trained.
HOW_RUN = frozenset({"device", "precision", "log_every"})
SHIPPABLE = ("finished", "early_stopped")  # a run that ended as its recipe ends it (not stopped, not diverged)


def shipped_config(name: str) -> tuple[TrainConfig, str | None]:
    """(the TrainConfig, the preset) that shipped checkpoint `name`'s SHIPPED command trains.

    Raises CheckpointError for a name SHIPPED does not list, or one made by another command (a vote).
    """
    if name not in SHIPPED:
        raise CheckpointError(f"{name!r} is not a shipped name; list its command in fmnist.checkpoints.SHIPPED first")
    argv = shlex.split(SHIPPED[name])
    if argv[:1] != ["train"]:
        raise CheckpointError(f"{name} is made by `{shipped_command(name)}`, which writes it: run that instead")
    a = parser().parse_args(argv)
    return build_config(a)[0], a.preset


def recipe_differences(card: dict[str, Any], want: TrainConfig) -> list[str]:
    """What a checkpoint's card says it trained, where that differs from `want` ("epochs 1, not 2"); `HOW_RUN`
    aside. An option newer than the card takes its default, the behaviour before the option existed.

    Raises ConfigError (or TypeError) when the card's config cannot be read or does not describe its weights.
    """
    config = card.get("config")
    if not isinstance(config, dict) or "arch" not in config:
        raise ConfigError("it names no architecture")
    if card.get("arch") != config["arch"] or (card.get("kwargs") or {}) != (config.get("model_kwargs") or {}):
        raise ConfigError(f"its weights are a {card.get('arch')!r} with {card.get('kwargs')}, its config another model")
    have = TrainConfig.from_dict(config).flat()
    same = HOW_RUN | {"augment"}  # augment's options are compared one by one
    t = card.get("train_time_s")
    finished = card.get("status") == "finished" and isinstance(t, (int, float))
    if finished and all(b is None or t < b for b in (have["time_budget"], want.time_budget)):
        same |= {"time_budget"}  # no budget stopped this run, nor would have: the same run
    return [f"{k} {have[k]!r}, not {v!r}" for k, v in want.flat().items() if k not in same and have[k] != v]


def votes_linking(name: str) -> list[str]:
    """The shipped votes whose SHIPPED command takes shipped checkpoint `name` as a member."""
    member = f"checkpoints/{name}.safetensors"
    return [v for v, command in SHIPPED.items() if command.startswith("ensemble ") and member in shlex.split(command)]


def ship(
    src: str | os.PathLike, name: str, directory: str | os.PathLike, note: str | None = None, force: bool = False
) -> Path:
    """Put trained checkpoint `src` into `directory` as shipped checkpoint `name`, its weights unchanged.

    The card then names `name` and the command SHIPPED lists for it (what tests/test_shipped.py checks);
    the command that actually ran is kept as `trained_as`, and `note` says how it ran, if given. Refused
    in one line (CheckpointError) unless the run ended as its recipe ends it and its card's options are those
    the shipped command trains (`recipe_differences`), so a card never claims a recipe its weights did not
    come from; and unless `force`, when `name` is there already (a vote linking it would then need re-making:
    `votes_linking`).
    """
    want, preset = shipped_config(name)
    ck = load_checkpoint(src)
    label = Path(src).name
    if ck.card.get("status") not in SHIPPABLE:
        raise CheckpointError(f"{label}: its run did not finish ({ck.card.get('status')!r}); ship only finished runs")
    try:
        differ = recipe_differences(ck.card, want)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{label}: its card's config cannot be read ({e})") from None
    if differ:
        raise CheckpointError(f"{label} was not trained as `{shipped_command(name)}` trains: " + "; ".join(differ))
    out = Path(directory) / f"{name}.safetensors"
    if out.exists() and not force:
        raise CheckpointExists(f"{out} exists; replace it with --force")
    card = {**ck.card, "name": name, "command": shipped_command(name), "preset": preset}
    if ck.card.get("command") != card["command"]:
        card["trained_as"] = ck.card.get("trained_as") or ck.card.get("command")
    if note:
        card["note"] = note
    return save_checkpoint(ck.model, card, out)
