"""Finishing a run: evaluate it on the test set, fit its temperature, build its model card, save it.

`fmnist.checkpoints` only reads and writes files; this module decides what goes into them. The UI,
the CLI and sweeps all save a trained model through `save_trained`, so every card's test metrics
describe exactly the saved weights.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import nn

from .calibrate import fit_for, fit_temperature, validation_logits
from .checkpoints import (
    Checkpoint,
    CheckpointError,
    FolderLimits,
    card_test_accuracy,
    round_to_fp16,
    save_checkpoint,
    versions,
)
from .data import FashionMNIST, load_dataset
from .evaluate import EvalResult, evaluate_test
from .models import create_model
from .runtime import machine


def build_card(result: Any, test: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """The model card for a `fmnist.train.TrainResult`: recipe, history, metrics, provenance.

    Args:
        result: the TrainResult of a run that did not diverge.
        test: test-set metrics (EvalResult.summary() plus per-class rows), if measured.
        command: the command line that produced the run, for reproduction.
    """
    cfg = result.config
    return {
        "arch": cfg.arch,
        "kwargs": cfg.model_kwargs,
        "config": cfg.to_dict(),
        "status": result.status,
        "message": result.message,
        "seed": cfg.seed,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "metrics": {"val": val_metrics(result.val_acc, result.val_loss), "test": test or {}},
        "train_time_s": round(result.train_time_s, 2),
        "device": result.device,
        "precision": result.precision,
        "data_checksum": result.data_checksum,
        "command": command,
        "versions": versions(),
        "machine": machine(),  # what train_time_s was measured on: CPU model and flags, cores, GPU
    }


def val_metrics(acc: float, loss: float) -> dict[str, Any]:
    """A card's validation metrics, naming their split: {"split": "none"} when the run had none."""
    if math.isnan(acc):
        return {"split": "none"}
    return {"split": "validation", "accuracy": float(acc), "loss": float(loss)}


def save_trained(
    result: Any,
    path: str | os.PathLike,
    command: str | None = None,
    *,
    overwrite: bool = True,
    limits: FolderLimits | None = None,
    data: FashionMNIST | None = None,
    **extra: Any,
) -> tuple[Path, EvalResult]:
    """Round a finished run's weights to fp16, evaluate them on the test set, write the card.

    `overwrite` and `limits` are save_checkpoint's; `data` is the dataset (default: load_dataset()).
    Returns (path, EvalResult).
    """
    data = data or load_dataset()
    round_to_fp16(result.model)
    ev = evaluate_test(result.model, tta_flip=result.config.tta_flip, data=data)
    card = {**build_card(result, ev.card_metrics(), command), **extra}
    if result.config.val_fraction > 0:  # temperature scaling, fitted on the run's own validation split
        card["temperature"] = fit_for(result.model, result.config.to_dict(), data)
        card["metrics"]["test"]["ece_calibrated"] = ev.calibrated_ece(card["temperature"])
    return save_checkpoint(result.model, card, path, overwrite=overwrite, limits=limits), ev


def validation_split(card: dict[str, Any]) -> tuple[int, float] | None:
    """(seed, validation fraction) of the run that made a checkpoint: the split `fmnist.data.split_indices`
    rebuilds from them. None when it cannot be validated: no split, a subset run, or an ensemble."""
    cfg = card.get("config") or {}
    if card.get("arch") == "ensemble" or cfg.get("subset") or not cfg.get("val_fraction"):
        return None
    return int(cfg.get("seed", 0)), float(cfg["val_fraction"])


def build_ensemble(members: list[Checkpoint], vote: str = "soft") -> nn.Module:
    """An Ensemble whose members carry the weights of saved checkpoints, and each one's flip TTA."""
    if not members:
        raise CheckpointError("an ensemble needs at least one checkpoint")
    if any(m.card["arch"] == "ensemble" for m in members):
        raise CheckpointError("an ensemble cannot contain another ensemble")
    specs = [{"arch": m.card["arch"], "kwargs": m.card.get("kwargs", {}), "tta_flip": m.tta_flip} for m in members]
    model = create_model("ensemble", members=specs, vote=vote)
    for slot, m in zip(model.members, members):
        slot.load_state_dict(m.model.state_dict())
    return model.eval()


def make_ensemble(
    members: list[Checkpoint], vote: str = "soft", command: str | None = None, data: FashionMNIST | None = None
) -> tuple[Checkpoint, EvalResult]:
    """An ensemble of saved checkpoints, evaluated on the test set, with its model card.

    Returns (checkpoint, EvalResult); save it with `save_checkpoint(ck.model, ck.card, path)`.
    """
    data = data or load_dataset()
    model = build_ensemble(members, vote)
    ev = evaluate_test(model, data=data)
    config: dict[str, Any] = {"tta_flip": False, "arch": "ensemble"}
    val: dict[str, Any] = {"split": "none"}  # an ensemble is not trained: only its members' split can validate it
    splits = {validation_split(m.card) for m in members}
    if len(splits) == 1 and None not in splits:  # every member held out the same images: the vote is weighed there
        seed, fraction = splits.pop()
        config |= {"seed": seed, "val_fraction": fraction}
        logits, labels = validation_logits(model, config, data)
        val = val_metrics(
            float((logits.argmax(1) == labels).float().mean()), float(F.cross_entropy(logits.float(), labels))
        )
    card = {
        "arch": "ensemble",
        "kwargs": {"members": model.member_specs, "vote": vote},
        "members": [
            {"name": m.name, "arch": m.card["arch"], "test_accuracy": card_test_accuracy(m.card)} for m in members
        ],
        "metrics": {"test": ev.card_metrics(), "val": val},
        "train_time_s": sum(m.card.get("train_time_s", 0) for m in members),
        "data_checksum": data.checksum,
        "command": command,
        "history": [],
        "config": config,
    }
    if val["split"] == "validation":  # temperature scaling, fitted on the members' shared validation split
        card["temperature"] = round(fit_temperature(logits, labels), 4)
        card["metrics"]["test"]["ece_calibrated"] = ev.calibrated_ece(card["temperature"])
    return Checkpoint(model, card), ev
