"""One training loop for the UI and the CLI: a generator of typed progress events.

    for event in iter_training(TrainConfig(arch="cnn2", epochs=2), stop=threading.Event()):
        ...  # BatchEvent | EpochEvent, and finally one DoneEvent carrying the TrainResult

Speed comes from keeping the (sub)dataset as one uint8 tensor and slicing whole batches out
of it: no per-sample DataLoader, augmentation on the whole batch with one affine_grid call,
channels_last for convolutions, and bf16 autocast where the hardware has native bf16.
`Trainer.step` is the one optimisation step; `fmnist.bench` times that same step.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .augment import augment_batch
from .config import TrainConfig
from .data import FashionMNIST, load_dataset, split_indices
from .models import count_params, create_model
from .runtime import autocast, has_conv, pick_device, pick_precision, predict_logits, to_input
from .snapshot import held, resume, save_snapshot

Status = Literal["finished", "stopped", "early_stopped", "diverged"]
MAX_LOSS = 1e3  # a batch loss above this (or not finite) means the run diverged


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class BatchEvent:
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int  # per epoch
    loss: float  # running mean over this epoch so far
    acc: float  # running train accuracy over this epoch so far
    lr: float
    images_per_s: float
    elapsed: float  # s since training started
    eta: float  # s left, estimated
    progress: float  # 0..1 over the whole run


@dataclass(frozen=True)
class EpochEvent:
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    images_per_s: float  # training images per second of this epoch
    elapsed: float
    eta: float
    is_best: bool


@dataclass
class TrainResult:
    status: Status
    message: str
    config: TrainConfig
    model: nn.Module | None  # None when diverged: nothing broken is handed out
    history: list[dict[str, float]]
    best_epoch: int
    val_acc: float  # the best epoch's validation accuracy (NaN without a validation split)
    val_loss: float  # and its validation loss (NaN without a split)
    train_time_s: float
    params: int
    data_checksum: str
    device: str
    precision: str


@dataclass(frozen=True)
class DoneEvent:
    status: Status
    message: str
    result: TrainResult


Event = BatchEvent | EpochEvent | DoneEvent


# ---------------------------------------------------------------- one step


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        nesterov = cfg.momentum > 0  # Nesterov needs momentum: plain SGD at 0
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov, weight_decay=cfg.weight_decay
        )
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


# The one-cycle shape of torch's OneCycleLR (pct_start 0.25, div_factor 25, final_div_factor 1e4, cosine
# annealing, momentum cycled 0.95 -> 0.85 -> 0.95), written as a function of the position in the run so that
# a time budget can move it forward without touching a scheduler's private step counter.
ONECYCLE_PCT_START, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.25, 25.0, 1e4
ONECYCLE_MOMENTUM = (0.95, 0.85)  # (max, base)


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def schedule_at(cfg: TrainConfig, pos: float, total_steps: int) -> tuple[float, float | None]:
    """(learning rate, momentum or None) of `cfg.schedule` at step position `pos` in [0, total_steps - 1].

    The first step is at 0 and the last at total_steps - 1, where one-cycle reaches its floor
    (lr / 25 / 1e4). Values equal torch's OneCycleLR / the closed-form cosine at whole positions;
    momentum is None where the schedule leaves it alone.
    """
    pos = min(max(pos, 0.0), max(total_steps - 1, 0))
    if cfg.schedule == "onecycle":
        hi, lo = ONECYCLE_MOMENTUM
        first, peak = cfg.lr / ONECYCLE_DIV, cfg.lr
        floor = first / ONECYCLE_FINAL_DIV
        warm_end, last = ONECYCLE_PCT_START * total_steps - 1, total_steps - 1
        if pos <= warm_end:  # warm-up: first -> peak, momentum hi -> lo
            pct = pos / warm_end if warm_end > 0 else 1.0
            return _cos(first, peak, pct), _cos(hi, lo, pct)
        pct = (pos - warm_end) / (last - warm_end)  # last - warm_end = 0.75 * total_steps > 0
        return _cos(peak, floor, pct), _cos(lo, hi, pct)  # annealing: peak -> floor, momentum lo -> hi
    if cfg.schedule == "cosine":  # CosineAnnealingLR's closed form over the run's steps (eta_min 0)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * pos / total_steps)), None
    return cfg.lr, None


def describe_val(acc: float) -> str:
    """'val acc 91.23%', or 'no validation split': never another split's accuracy under that name."""
    return "no validation split" if math.isnan(acc) else f"val acc {acc:.2%}"


def healthy(loss: float) -> bool:
    """False once a batch loss shows the run has diverged."""
    return math.isfinite(loss) and loss <= MAX_LOSS


@dataclass
class Trainer:
    """A model with its optimiser, schedule and precision: `step` is one optimisation step."""

    cfg: TrainConfig
    model: nn.Module
    opt: torch.optim.Optimizer
    device: torch.device
    precision: str
    gen: torch.Generator
    channels_last: bool
    total_steps: int = 1
    steps_done: int = 0  # optimisation steps taken (diverged batches are not steps)

    @classmethod
    def build(cls, cfg: TrainConfig, steps: int, device: torch.device, precision: str, gen: torch.Generator) -> Trainer:
        """A fresh model of `cfg.arch` (initialised from torch's global RNG) on `device`."""
        model = create_model(cfg.arch, **cfg.model_kwargs).to(device)
        channels_last = has_conv(model)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = make_optimizer(model, cfg)
        return cls(cfg, model, opt, device, precision, gen, channels_last, max(steps, 1))

    def position(self, clock: float | None = None) -> float:
        """Where the schedule is, in steps: the steps taken, or the clock's share of the run if further on."""
        last = self.total_steps - 1
        return min(max(float(self.steps_done), (clock or 0.0) * last), last)

    def _apply_schedule(self, clock: float | None) -> None:
        lr, momentum = schedule_at(self.cfg, self.position(clock), self.total_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
            if momentum is not None:
                if "betas" in group:  # Adam(W): beta1 plays momentum's part, as in OneCycleLR
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum

    def step(
        self, images: torch.Tensor, labels: torch.Tensor, clock: float | None = None
    ) -> tuple[float, torch.Tensor]:
        """Augment, forward, loss, backward, update on one uint8 batch (B, 28, 28).

        Args:
            clock: the fraction of the run's time budget already spent, if it has one; the LR
                schedule then runs at whichever is further along, the steps or the clock. Either
                way it stops at its last position (one-cycle's floor), however many steps follow.

        Returns (loss, logits). A diverged loss (see `healthy`) leaves the weights untouched.
        """
        x = images.float().div_(255.0).unsqueeze_(1)  # (B, 1, 28, 28) in [0, 1]
        x = to_input(augment_batch(x, self.cfg.augment, self.gen), self.channels_last)
        with autocast(self.device, self.precision):
            out = self.model(x)
        loss = F.cross_entropy(out.float(), labels, label_smoothing=self.cfg.label_smoothing)
        value = loss.item()  # the one host sync per batch
        if healthy(value):
            self._apply_schedule(clock)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.steps_done += 1
        return value, out

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]


# ---------------------------------------------------------------- the run's state


@dataclass
class Best:
    """The best epoch so far by its score (what `monitor` watches), with a copy of its weights.

    `score` is only for comparing epochs (minus the loss under monitor="val_loss"; the training
    accuracy without a validation split); `acc` and `loss` are that epoch's validation accuracy
    and loss, NaN without a validation split.
    """

    score: float = -math.inf
    loss: float = math.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None
    acc: float = math.nan

    def consider(self, score: float, loss: float, epoch: int, model: nn.Module, acc: float = math.nan) -> bool:
        """Keep `model`'s weights if this epoch is the best so far (ties: lower loss wins)."""
        if not (score > self.score or (score == self.score and loss < self.loss)):
            return False
        self.score, self.loss, self.epoch, self.acc = score, loss, epoch, acc
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # a copy: training goes on
        return True


@dataclass
class Tally:
    """One epoch's running totals, and why it ended early, if it did."""

    loss_sum: float = 0.0
    correct: torch.Tensor | int = 0  # a tensor: summed on the device, read once per event
    count: int = 0
    seconds: float = 0.0
    halt: Status | None = None  # 'stopped' or 'diverged'
    message: str = ""

    def add(self, loss: float, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss * len(labels)
        self.correct = self.correct + (logits.argmax(1) == labels).sum()
        self.count += len(labels)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def acc(self) -> float:
        return int(self.correct) / max(self.count, 1)


@dataclass
class _Run:
    trainer: Trainer
    data: FashionMNIST
    x_tr: torch.Tensor  # uint8 (N, 28, 28) on the device
    y_tr: torch.Tensor
    x_val: torch.Tensor  # uint8, on the CPU (predict_logits moves batches)
    y_val: torch.Tensor
    batches: int
    clock: Callable[[], float] = time.perf_counter  # seconds; a fake one in tests
    t0: float = 0.0
    train_time: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best: Best = field(default_factory=Best)

    @property
    def cfg(self) -> TrainConfig:
        return self.trainer.cfg


def _start(cfg: TrainConfig, data: FashionMNIST, clock: Callable[[], float] = time.perf_counter) -> _Run:
    device = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_idx, val_idx = split_indices(cfg, data.train_labels)
    x_tr, y_tr = data.train_images[train_idx].to(device), data.train_labels[train_idx].to(device)
    n = len(x_tr)
    batches = n // cfg.batch_size + (n % cfg.batch_size >= 2)  # no batch of 1 (BatchNorm)
    trainer = Trainer.build(cfg, cfg.epochs * batches, device, precision, gen)
    x_val, y_val = data.train_images[val_idx], data.train_labels[val_idx]
    return _Run(trainer, data, x_tr, y_tr, x_val, y_val, batches, clock=clock, t0=clock())


# ---------------------------------------------------------------- the loop


def _train_epoch(run: _Run, epoch: int, stop: threading.Event | None) -> Generator[BatchEvent, None, Tally]:
    """Train one epoch, yielding BatchEvents; return its Tally."""
    cfg, tr, tally = run.cfg, run.trainer, Tally()
    tr.model.train()
    perm = torch.randperm(len(run.x_tr), generator=tr.gen).to(tr.device)
    t_epoch = run.clock()
    for b in range(run.batches):
        if stop is not None and stop.is_set():
            tally.halt, tally.message = "stopped", f"Stopped by request in epoch {epoch}, batch {b + 1}."
            break
        spent = run.train_time + run.clock() - t_epoch
        if cfg.time_budget and spent >= cfg.time_budget:
            tally.halt = "finished"
            tally.message = f"Time budget of {cfg.time_budget:g} s reached in epoch {epoch}, batch {b + 1}."
            break
        idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        y = run.y_tr[idx]
        loss, logits = tr.step(run.x_tr[idx], y, spent / cfg.time_budget if cfg.time_budget else None)
        if not healthy(loss):
            tally.halt = "diverged"
            tally.message = (
                f"Training diverged in epoch {epoch}, batch {b + 1} (loss {loss:.3g}). "
                f"The learning rate {cfg.lr:g} is probably too high; try 10x lower. No model was kept."
            )
            break
        tally.add(loss, logits, y)
        if (b + 1) % cfg.log_every == 0 or b + 1 == run.batches:
            now, done, total = run.clock(), (epoch - 1) * run.batches + b + 1, cfg.epochs * run.batches
            elapsed = now - run.t0
            yield BatchEvent(
                epoch=epoch,
                batch=b + 1,
                batches=run.batches,
                loss=tally.loss,
                acc=tally.acc,
                lr=tr.lr,
                images_per_s=tally.count / max(now - t_epoch, 1e-9),
                elapsed=elapsed,
                eta=elapsed / done * (total - done),
                progress=done / total,
            )
    tally.seconds = run.clock() - t_epoch
    run.train_time += tally.seconds
    return tally


def _validate(run: _Run) -> tuple[float, float]:
    """(loss, accuracy) on the validation split, un-augmented; NaN without one."""
    if len(run.x_val) == 0:
        return math.nan, math.nan
    tr = run.trainer
    logits = predict_logits(tr.model, run.x_val, device=tr.device, precision=tr.precision)
    return F.cross_entropy(logits, run.y_val).item(), (logits.argmax(1) == run.y_val).float().mean().item()


def _end_epoch(run: _Run, epoch: int, tally: Tally) -> EpochEvent:
    """Validate, keep the best weights, record the history row."""
    val_loss, val_acc = _validate(run)
    if not len(run.x_val):
        score = tally.acc
    else:  # a higher score is better: accuracy, or minus the loss (Keras's monitor="val_loss")
        score = -val_loss if run.cfg.monitor == "val_loss" else val_acc
    is_best = run.best.consider(score, val_loss, epoch, run.trainer.model, acc=val_acc)
    elapsed = run.clock() - run.t0
    row = {
        "epoch": epoch,
        "train_loss": tally.loss,
        "train_acc": tally.acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": run.trainer.lr,
        "images_per_s": tally.count / max(tally.seconds, 1e-9),
        "elapsed": elapsed,
        "partial": tally.halt in ("stopped", "finished"),
    }
    run.history.append(row)
    eta = elapsed / epoch * (run.cfg.epochs - epoch)
    return EpochEvent(
        **{k: v for k, v in row.items() if k != "partial"}, epochs=run.cfg.epochs, eta=eta, is_best=is_best
    )


def _patience_spent(run: _Run, epoch: int) -> bool:
    return bool(run.cfg.patience) and epoch - run.best.epoch >= run.cfg.patience


def _ending(run: _Run, epoch: int, tally: Tally) -> tuple[Status, str]:
    """The run's status and message: the one place a status is decided."""
    if tally.halt:
        return tally.halt, tally.message
    if _patience_spent(run, epoch):
        return "early_stopped", f"Early stop after epoch {epoch}: no validation gain for {run.cfg.patience} epochs."
    return "finished", f"Finished {run.cfg.epochs} epochs."


def _finish(run: _Run, status: Status, message: str) -> DoneEvent:
    """Restore the best weights (unless diverged) and package the result."""
    tr, best = run.trainer, run.best
    tr.opt.zero_grad(set_to_none=True)  # hand out weights only, no stale gradients
    model = None
    if status != "diverged":
        if run.cfg.restore_best and best.state is not None:
            tr.model.load_state_dict(best.state)
            message += f" Restored the best weights (epoch {best.epoch}, {describe_val(best.acc)})."
        model = tr.model.eval()
    result = TrainResult(
        status=status,
        message=message,
        config=run.cfg,
        model=model,
        history=run.history,
        best_epoch=best.epoch,
        val_acc=best.acc,
        val_loss=best.loss,
        train_time_s=run.train_time,
        params=count_params(tr.model),
        data_checksum=run.data.checksum,
        device=str(tr.device),
        precision=tr.precision,
    )
    return DoneEvent(status=status, message=message, result=result)


def iter_training(
    cfg: TrainConfig,
    data: FashionMNIST | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.perf_counter,
    snapshot: str | os.PathLike | None = None,
) -> Iterator[Event]:
    """Train `cfg.arch` and yield progress events; the last event is always a DoneEvent.

    Args:
        cfg: the run's configuration (see fmnist.config: TrainConfig, PRESETS).
        data: the dataset; loaded from the default location when None.
        stop: set it from any thread to end the run within one batch, keeping the best weights.
        clock: seconds, for elapsed times and the time budget (a fake clock in tests).
        snapshot: a file for the run's whole state, written after every whole epoch; if it exists,
            the run continues after its last epoch (fmnist.snapshot; SnapshotError if it is of
            another run).
    """
    run = _start(cfg, data or load_dataset(), clock)
    path = Path(snapshot) if snapshot is not None else None
    with held(path) if path is not None else contextlib.nullcontext():  # one run per snapshot at a time
        start = resume(run, path) if path is not None else 0
        epoch, tally = start, Tally()
        if not _patience_spent(run, start):
            for epoch in range(start + 1, cfg.epochs + 1):
                tally = yield from _train_epoch(run, epoch, stop)
                if tally.halt == "diverged" or (tally.halt and tally.count == 0 and run.best.state is not None):
                    break  # nothing new to validate (a stop or time-out at an epoch boundary keeps the best epoch)
                ended = _end_epoch(run, epoch, tally)
                if path is not None and not tally.halt:
                    save_snapshot(run, epoch, path)  # before the event: an epoch shown is an epoch saved
                yield ended
                if tally.halt or _patience_spent(run, epoch):
                    break
    status, message = _ending(run, epoch, tally)
    if start:
        message = f"Continued from {path.name} after epoch {start}. {message}"
    yield _finish(run, status, message)


def train(cfg: TrainConfig, data: FashionMNIST | None = None, stop: threading.Event | None = None) -> TrainResult:
    """Run `iter_training` to the end and return the result."""
    for ev in iter_training(cfg, data, stop):
        if isinstance(ev, DoneEvent):
            return ev.result
    raise RuntimeError("training ended without a DoneEvent")  # unreachable
