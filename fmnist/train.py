"""One training loop for the UI and the CLI: a generator of typed progress events.

    for event in iter_training(TrainConfig(arch="cnn2", epochs=2), stop=threading.Event()):
        ...  # BatchEvent | EpochEvent, and finally one DoneEvent carrying the TrainResult

Speed comes from keeping the (sub)dataset as one uint8 tensor and slicing whole batches out
of it: no per-sample DataLoader, augmentation on the whole batch with one affine_grid call,
channels_last for convolutions, and bf16 autocast where the CPU has native bf16.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .data import (
    MEAN,
    STD,
    FashionMNIST,
    load_dataset,
    stratified_split,
    stratified_subset,
)
from .models import count_params, create_model, get_spec, list_models

Status = Literal["finished", "stopped", "early_stopped", "diverged"]


class ConfigError(ValueError):
    """A training option is out of range; the message names the option."""


@dataclass
class Augment:
    """Per-sample random augmentation, applied to whole batches at once."""

    flip: bool = False  # horizontal flip with p=0.5
    shift: float = 0.0  # max translation, fraction of the image side (0.1 = 2.8 px)
    rotate: float = 0.0  # max rotation, degrees
    zoom: float = 0.0  # max scale change, fraction (0.1 = 90%..110%)
    erase: float = 0.0  # probability of blanking a random square of 4-12 px (random erasing)

    @property
    def active(self) -> bool:
        return self.flip or self.shift > 0 or self.rotate > 0 or self.zoom > 0 or self.erase > 0


@dataclass
class TrainConfig:
    """Everything that defines a run. Recipes and presets are partial dicts of these fields."""

    arch: str = "cnn2"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # peak lr for one-cycle
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.9  # SGD only (Nesterov)
    weight_decay: float = 0.0
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"
    label_smoothing: float = 0.0
    augment: Augment = field(default_factory=Augment)
    val_fraction: float = 0.1
    patience: int | None = None  # early stopping: epochs without val-accuracy gain
    restore_best: bool = True  # end with the weights of the best validation epoch
    subset: int | None = None  # train on a class-balanced subset of this many images
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    tta_flip: bool = False  # predict with the mean of the image and its mirror image
    log_every: int = 20  # batches between BatchEvents

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = Augment(**self.augment)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option."""
        checks = [
            (self.arch in list_models(), f"arch: unknown model {self.arch!r}; valid: {', '.join(list_models())}"),
            (1 <= self.epochs <= 1000, f"epochs must be 1..1000, got {self.epochs}"),
            (2 <= self.batch_size <= 65536, f"batch_size must be 2..65536, got {self.batch_size}"),
            (0 < self.lr <= 100 and math.isfinite(self.lr), f"lr must be in (0, 100], got {self.lr}"),
            (self.optimizer in ("adam", "adamw", "sgd"), f"optimizer must be adam/adamw/sgd, got {self.optimizer!r}"),
            (self.schedule in ("constant", "onecycle", "cosine"), f"unknown schedule {self.schedule!r}"),
            (0 <= self.weight_decay < 1, f"weight_decay must be in [0, 1), got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.val_fraction <= 0.5, f"val_fraction must be in [0, 0.5], got {self.val_fraction}"),
            (self.patience is None or self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.subset is None or self.subset >= 10, f"subset must be >= 10 images, got {self.subset}"),
            (self.device in ("auto", "cpu", "cuda", "mps"), f"device must be auto/cpu/cuda/mps, got {self.device!r}"),
            (self.precision in ("auto", "fp32", "bf16"), f"precision must be auto/fp32/bf16, got {self.precision!r}"),
            (0 <= self.augment.shift <= 0.5, f"augment shift must be in [0, 0.5], got {self.augment.shift}"),
            (0 <= self.augment.rotate <= 180, f"augment rotate must be 0..180 degrees, got {self.augment.rotate}"),
            (0 <= self.augment.zoom <= 0.5, f"augment zoom must be in [0, 0.5], got {self.augment.zoom}"),
            (0 <= self.augment.erase <= 1, f"augment erase must be a probability, got {self.augment.erase}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


# Presets: each model's public recipe, plus the classroom demo and the best model.
PRESETS: dict[str, dict[str, Any]] = {name: {"arch": name, **get_spec(name).recipe} for name in list_models()}
PRESETS["quick"] = {"arch": "quickcnn", **get_spec("quickcnn").recipe}  # >= 91% in < 60 s on 2 CPU cores
PRESETS["best"] = {"arch": "resnet", **get_spec("resnet").recipe}  # the best single model
del PRESETS["quickcnn"]


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """TrainConfig for preset `name` with `overrides` applied (None values are ignored)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    d = copy.deepcopy(PRESETS[name])
    d.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(d)


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
    images_per_s: float
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
    val_acc: float
    val_loss: float
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


# ---------------------------------------------------------------- helpers


def pick_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' requested but Apple MPS is not available")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); then autocast pays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, 28, 28) or float [0,1] (B, 1, 28, 28) -> normalised float (B, 1, 28, 28)."""
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    x = x.unsqueeze(1) if x.dim() == 3 else x
    x = (x - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random flip / shift / rotation / zoom, drawn per sample, applied in one grid_sample.

    Args:
        x: float images in [0, 1], (B, 1, 28, 28); the border fills with 0 (background).
    """
    if not aug.active:
        return x
    b = x.shape[0]

    def u(scale: float) -> torch.Tensor:  # uniform in [-scale, scale], (B,)
        return (torch.rand(b, generator=gen) * 2 - 1) * scale

    if aug.erase > 0:
        x = random_erase(x, aug.erase, gen)
    if not (aug.flip or aug.shift or aug.rotate or aug.zoom):
        return x
    if not (aug.shift or aug.rotate or aug.zoom):  # flip only: no resampling
        flip = torch.rand(b, generator=gen) < 0.5
        return torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-1), x)
    angle = u(math.radians(aug.rotate))
    scale = 1 + u(aug.zoom)
    sx = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if aug.flip else torch.ones(b)
    cos, sin = angle.cos() / scale, angle.sin() / scale
    # affine_grid maps output coords to input coords in [-1, 1]: a shift of f*side is 2f.
    theta = torch.stack(
        [torch.stack([cos * sx, -sin, u(2 * aug.shift)], 1), torch.stack([sin * sx, cos, u(2 * aug.shift)], 1)], 1
    ).to(x.device)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erase(x: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Blank a random square (side 4-12 px, clipped at the border) in each image with probability p."""
    b, _, h, w = x.shape
    side = torch.randint(4, 13, (b, 1, 1), generator=gen)
    y0 = torch.randint(0, h, (b, 1, 1), generator=gen) - side // 2  # top-left corner, may be outside
    x0 = torch.randint(0, w, (b, 1, 1), generator=gen) - side // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    box = (ys >= y0) & (ys < y0 + side) & (xs >= x0) & (xs < x0 + side)  # (B, H, W)
    hit = (torch.rand(b, 1, 1, generator=gen) < p) & box
    return x.masked_fill(hit.unsqueeze(1).to(x.device), 0.0)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
        )
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.25)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 1000,
    tta_flip: bool = False,
    device: torch.device | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Logits (N, 10) in float32 on the CPU for uint8 (N, 28, 28) or [0,1] (N, 1, 28, 28) images."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    cl = has_conv(model)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(images[i : i + batch_size].to(device), cl)
        with autocast(device, precision):
            logits = model(x).float()
            if tta_flip:  # average the logits of the image and its mirror image
                logits = (logits + model(x.flip(-1)).float()) / 2
        out.append(logits.cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)


def split_indices(cfg: TrainConfig, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's (train, validation) indices into the 60k training images.

    A seeded stratified split; with `subset`, both parts shrink class-balanced (validation to
    subset/5, at least 200 images) so that a classroom run stays fast end to end.
    """
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
    if cfg.subset:
        train_idx = train_idx[stratified_subset(labels[train_idx], cfg.subset, cfg.seed)]
        val_idx = val_idx[stratified_subset(labels[val_idx], max(cfg.subset // 5, 200), cfg.seed)]
    return train_idx, val_idx


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- the loop


def iter_training(
    cfg: TrainConfig,
    data: FashionMNIST | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Event]:
    """Train `cfg.arch` and yield progress events; the last event is always a DoneEvent.

    Args:
        cfg: the run's configuration (see TrainConfig, presets in PRESETS).
        data: the dataset; loaded from the default location when None.
        stop: set it from any thread to end the run within one batch, keeping the best weights.
    """
    data = data or load_dataset()
    device = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    train_idx, val_idx = split_indices(cfg, data.train_labels)
    x_tr, y_tr = data.train_images[train_idx].to(device), data.train_labels[train_idx].to(device)
    x_val, y_val = data.train_images[val_idx], data.train_labels[val_idx]

    model = create_model(cfg.arch, **cfg.model_kwargs).to(device)
    channels_last = has_conv(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    n = len(x_tr)
    batches = n // cfg.batch_size + (n % cfg.batch_size >= 2)  # no batch of 1 (BatchNorm)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, cfg.epochs * batches)

    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"acc": -1.0, "loss": math.inf, "epoch": 0, "state": None}
    seen, train_time, t0 = 0, 0.0, time.perf_counter()
    status: Status = "finished"
    message = ""

    def val_metrics() -> tuple[float, float]:
        if len(x_val) == 0:
            return math.nan, math.nan
        logits = predict_logits(model, x_val, device=device, precision=precision)
        return F.cross_entropy(logits, y_val).item(), (logits.argmax(1) == y_val).float().mean().item()

    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum, correct, count = 0.0, 0, 0
        t_epoch = time.perf_counter()
        for b in range(batches):
            if stop is not None and stop.is_set():
                status, message = "stopped", f"Stopped by request in epoch {epoch}, batch {b + 1}."
                break
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = x_tr[idx].float().div_(255.0).unsqueeze_(1)  # (B, 1, 28, 28) in [0, 1]
            x = to_input(augment_batch(x, cfg.augment, gen), channels_last)
            y = y_tr[idx]
            with autocast(device, precision):
                out = model(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
            if not math.isfinite(loss.item()) or loss.item() > 1e3:
                status = "diverged"
                message = (
                    f"Training diverged in epoch {epoch}, batch {b + 1} (loss {loss.item():.3g}). "
                    f"The learning rate {cfg.lr:g} is probably too high; try 10x lower. No model was kept."
                )
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            k = len(y)
            loss_sum += loss.item() * k
            correct += (out.argmax(1) == y).sum().item()
            count += k
            seen += k
            if (b + 1) % cfg.log_every == 0 or b + 1 == batches:
                now = time.perf_counter()
                done = (epoch - 1) * batches + b + 1
                elapsed = now - t0
                yield BatchEvent(
                    epoch, b + 1, batches, loss_sum / count, correct / count, opt.param_groups[0]["lr"],
                    count / (now - t_epoch), elapsed, elapsed / done * (cfg.epochs * batches - done),
                    done / (cfg.epochs * batches),
                )  # fmt: skip
        train_time += time.perf_counter() - t_epoch
        if status == "diverged":
            break
        if status == "stopped" and count == 0 and best["state"] is not None:
            break  # stopped right at an epoch boundary: the best epoch is already kept
        val_loss, val_acc = val_metrics()
        score = val_acc if len(x_val) else correct / max(count, 1)
        is_best = score > best["acc"] or (score == best["acc"] and val_loss < best["loss"])
        if is_best:
            best.update(acc=score, loss=val_loss, epoch=epoch, state=_state_copy(model))
        elapsed = time.perf_counter() - t0
        row = {
            "epoch": epoch, "train_loss": loss_sum / max(count, 1), "train_acc": correct / max(count, 1),
            "val_loss": val_loss, "val_acc": val_acc, "lr": opt.param_groups[0]["lr"],
            "images_per_s": count / max(time.perf_counter() - t_epoch, 1e-9), "elapsed": elapsed,
            "partial": status == "stopped",
        }  # fmt: skip
        history.append(row)
        yield EpochEvent(
            epoch, cfg.epochs, row["train_loss"], row["train_acc"], val_loss, val_acc, row["lr"],
            row["images_per_s"], elapsed, elapsed / epoch * (cfg.epochs - epoch), is_best,
        )  # fmt: skip
        if status == "stopped":
            break
        if cfg.patience and epoch - best["epoch"] >= cfg.patience:
            status = "early_stopped"
            message = f"Early stop after epoch {epoch}: no validation gain for {cfg.patience} epochs."
            break

    opt.zero_grad(set_to_none=True)  # hand out weights only, no stale gradients
    if status == "diverged":
        out_model = None
    else:
        if cfg.restore_best and best["state"] is not None:
            model.load_state_dict(best["state"])
            message += f" Restored the best weights (epoch {best['epoch']}, val acc {best['acc']:.2%})."
        out_model = model.eval()
        if status == "finished":
            message = f"Finished {cfg.epochs} epochs." + message
    result = TrainResult(
        status, message.strip(), cfg, out_model, history, best["epoch"], best["acc"], best["loss"],
        train_time, count_params(model), data.checksum, str(device), precision,
    )  # fmt: skip
    yield DoneEvent(status, result.message, result)


def train(
    cfg: TrainConfig,
    data: FashionMNIST | None = None,
    stop: threading.Event | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> TrainResult:
    """Run `iter_training` to the end, passing every event to `on_event`; return the result."""
    for ev in iter_training(cfg, data, stop):
        if on_event:
            on_event(ev)
        if isinstance(ev, DoneEvent):
            return ev.result
    raise RuntimeError("training ended without a DoneEvent")  # unreachable
