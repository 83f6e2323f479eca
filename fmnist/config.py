"""Training options, defined once: TrainConfig, its checks, and the presets.

Each option is one dataclass field whose `Opt` metadata holds its help, choices and range. The
checks (`TrainConfig.validate`), the CLI flags (`fmnist.cli`) and the Train page's widgets
(`app_support.training`) are all derived from it, so a new option is one field here plus its
widget on the page.

    cfg = make_config(preset="quick", epochs=2)     # a preset with overrides
    cfg, origin = explain_config(recipe="cnn2")      # cnn2's own recipe, and where each value came from
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from .models import ModelSizeError, checked_model_size, get_spec, list_models

Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["constant", "onecycle", "cosine"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16"]
Monitor = Literal["val_acc", "val_loss"]


class ConfigError(ValueError):
    """A training option is out of range; the message names the option."""


@dataclass(frozen=True)
class Opt:
    """How one option is described and checked: its help, its label on the Train page, and its
    allowed values (choices, or the closed range lo..hi). The CLI, lesson links, sweeps and the
    Train page's widgets all take an option's range from here."""

    help: str
    label: str = ""  # the Train page's widget label
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    kind: type | None = None  # the value's type where the default (None) does not tell
    cli: bool = True  # offered as a --flag by the CLI


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, **kw: Any) -> Any:
    """A dataclass field carrying its `Opt` description."""
    meta = {"opt": Opt(help, **kw)}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def trainable_models() -> list[str]:
    """Architectures that can be trained (an ensemble is built from saved checkpoints instead)."""
    return [n for n in list_models() if get_spec(n).trainable]


@dataclass
class Augment:
    """Per-sample random augmentation, applied to whole batches at once (fmnist.augment)."""

    flip: bool = option(False, "random horizontal flips (p=0.5)", label="Random flip")
    shift: float = option(
        0.0, "max random shift, fraction of the side (0.1 = 2.8 px)", label="Shift (fraction)", lo=0, hi=0.5
    )
    rotate: float = option(0.0, "max random rotation, degrees", label="Rotation (degrees)", lo=0, hi=180)
    zoom: float = option(0.0, "max random zoom, fraction (0.1 = 90%..110%)", label="Zoom (fraction)", lo=0, hi=0.5)
    erase: float = option(
        0.0, "random-erasing probability (a 4-12 px square, or erase_size)", label="Random erasing (p)", lo=0, hi=1
    )
    erase_size: int = option(
        0,
        "side of the erased square in px; 0 = random 4-12 px (Cutout uses 12-16 with p=1)",
        label="Erased square (px, 0 = 4-12)",
        lo=0,
        hi=28,
    )

    erase_value: float = option(
        0.0,
        "grey of the erased square: 0 = black; 0.286 = the dataset's mean, which is Cutout's 0 after normalising",
        label="Erased square's grey",
        lo=0,
        hi=1,
    )
    crop: int = option(
        0,
        "random crop: pad by N black px and cut 28x28 back (whole-pixel shifts, torchvision's RandomCrop(28, "
        "padding=N)); flip and crop then come before erasing, as in torchvision pipelines",
        label="Random crop padding (px)",
        lo=0,
        hi=14,
    )
    photo: float = option(
        0.0,
        "probability of making an image look as a segmented phone photo does (uneven fill, soft edges, "
        "leftovers at the border)",
        label="Photo-like (p)",
        lo=0,
        hi=1,
    )

    @property
    def active(self) -> bool:
        moves = self.shift > 0 or self.rotate > 0 or self.zoom > 0 or self.crop > 0
        return self.flip or moves or self.erase > 0 or self.photo > 0


@dataclass
class TrainConfig:
    """Everything that defines a run. Recipes and presets are partial dicts of these fields."""

    arch: str = option("cnn2", "architecture", label="Architecture", cli=False)  # choices: trainable_models()
    model_kwargs: dict[str, Any] = option(help="architecture options, e.g. {'kernel_size': 5}", factory=dict, cli=False)
    epochs: int = option(10, "epochs to train", label="Epochs", lo=1, hi=1000)
    batch_size: int = option(128, "images per batch", label="Batch size", lo=2, hi=2048)
    lr: float = option(1e-3, "learning rate (the peak for one-cycle)", label="Learning rate", lo=1e-6, hi=10)
    optimizer: Optimizer = option("adam", "optimizer", label="Optimizer", choices=get_args(Optimizer))
    momentum: float = option(0.9, "SGD momentum (Nesterov); SGD only", label="Momentum", lo=0, hi=0.999)
    weight_decay: float = option(0.0, "weight decay", label="Weight decay", lo=0, hi=0.999)
    schedule: Schedule = option("constant", "learning-rate schedule", label="LR schedule", choices=get_args(Schedule))
    label_smoothing: float = option(0.0, "label smoothing", label="Label smoothing", lo=0, hi=0.5)
    augment: Augment = option(help="augmentation (see Augment)", factory=Augment, cli=False)
    val_fraction: float = option(0.1, "validation split, e.g. 0.1 or 0.2", label="Validation split", lo=0, hi=0.5)
    patience: int | None = option(
        None,
        "early stopping: epochs without a validation gain (0 = off)",
        label="Early-stop patience (0 = off)",
        lo=1,
        hi=1000,
        kind=int,
    )
    restore_best: bool = option(True, "end with the weights of the best validation epoch", label="Restore best weights")
    monitor: Monitor = option(
        "val_acc",
        "what 'best epoch' means for early stopping and restore-best (Keras watches val_loss)",
        label="Best epoch by",
        choices=get_args(Monitor),
    )
    subset: int | None = option(
        None,
        "train on a class-balanced subset of N images (0 = all)",
        label="Training images (0 = all)",
        lo=10,
        hi=60000,
        kind=int,
    )
    seed: int = option(0, "random seed (split, init, shuffling, augmentation)", label="Seed", lo=0, hi=2**31 - 1)
    device: Device = option("auto", "auto picks CUDA, then MPS, then CPU", choices=get_args(Device))
    precision: Precision = option("auto", "auto: bf16 where the hardware has it natively", choices=get_args(Precision))
    time_budget: float | None = option(
        None,
        "stop after this many seconds of training; the LR schedule then follows the clock (0 = none)",
        label="Time budget (s, 0 = none)",
        lo=1,
        hi=86400,
        kind=float,
    )
    tta_flip: bool = option(False, "predict with the mean of the image and its mirror image", label="Flip TTA")
    log_every: int = option(20, "batches between progress events", lo=1, hi=10**6)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            unknown = set(self.augment) - {f.name for f in fields(Augment)}
            if unknown:
                raise ConfigError(f"unknown augment option(s): {', '.join(sorted(unknown))}")
            self.augment = Augment(**self.augment)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option."""
        if self.arch not in trainable_models():
            if self.arch in list_models():
                raise ConfigError(f"arch: {self.arch!r} is not trained; combine saved models with `fmnist ensemble`")
            raise ConfigError(f"arch: unknown model {self.arch!r}; valid: {', '.join(trainable_models())}")
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError("model_kwargs must be a dict of architecture options")
        try:
            checked_model_size(self.arch, **self.model_kwargs)  # on the meta device: no memory spent
        except ModelSizeError as e:
            raise ConfigError(f"model_kwargs: {e}") from None
        for f, value in [*_described(self, ""), *_described(self.augment, "augment.")]:
            check(f, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """Every option under its own name, Augment's fields included (as the CLI and the Train form name them)."""
        d = self.to_dict()
        return {**d, **d["augment"]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


class Described:
    """A field with its Opt, plus the dotted name used in messages."""

    def __init__(self, f: Field, prefix: str):
        self.field, self.opt, self.name = f, f.metadata["opt"], prefix + f.name

    @property
    def kind(self) -> type:
        if self.opt.kind:
            return self.opt.kind
        default = self.field.default
        return type(default) if default is not MISSING else str


def _described(obj: Any, prefix: str) -> list[tuple[Described, Any]]:
    return [
        (Described(f, prefix), getattr(obj, f.name))
        for f in fields(obj)
        if f.name not in ("arch", "model_kwargs", "augment")
    ]


def option_fields() -> list[Described]:
    """Every CLI/UI option, TrainConfig's then Augment's, with its description."""
    out = [Described(f, "") for f in fields(TrainConfig) if f.metadata["opt"].cli]
    return out + [Described(f, "") for f in fields(Augment)]


@functools.cache
def options() -> dict[str, Described]:
    """option_fields() by name (built once; do not mutate)."""
    return {d.name: d for d in option_fields()}


def check(d: Described, value: Any) -> None:
    """Raise ConfigError unless `value` fits option `d` (None means 'off' for optional options)."""
    o, name = d.opt, d.name
    if value is None and d.field.default is None:
        return
    if o.choices and value not in o.choices:
        raise ConfigError(f"{name} must be one of {', '.join(o.choices)}; got {value!r}")
    if d.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return
    if d.kind in (int, float):
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok_type or (d.kind is int and not isinstance(value, int)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a{'n integer' if d.kind is int else ' number'}, got {value!r}")
        if (o.lo is not None and value < o.lo) or (o.hi is not None and value > o.hi):
            raise ConfigError(f"{name} must be in [{o.lo:g}, {o.hi:g}], got {value!r}")


TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_value(d: Described, text: str) -> Any:
    """Text (a lesson link's value, a sweep's `--param`, a CLI flag) into option `d`'s value, checked.

    One set of rules everywhere: booleans are true/false (or 1/0, yes/no, on/off); an integer
    option takes whole numbers only ("2" or "2.0", never "2.5"); 0 turns an optional option off
    (it is returned as 0, which `explain_config` and the Train form read as off). Raises
    ConfigError naming the option.
    """
    text = str(text).strip()
    if d.kind is bool:
        if text.lower() not in TRUE + FALSE:
            raise ConfigError(f"{d.name} must be true or false, got {text!r}")
        value: Any = text.lower() in TRUE
    elif d.kind in (int, float):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if d.kind is int and number.is_integer():
            value = int(number)
        elif d.kind is float and math.isfinite(number):
            value = number
        else:
            raise ConfigError(f"{d.name} must be a{'n integer' if d.kind is int else ' number'}, got {text!r}")
    else:
        value = text
    if d.field.default is None and value == 0:  # an optional option's "off"
        return value
    check(d, value)
    return value


# ---------------------------------------------------------------- presets

DEFAULT_PRESET = "quick"
# Each trainable model's public recipe under its own name, plus the classroom demo and the best model.
PRESETS: dict[str, dict[str, Any]] = {n: {"arch": n, **get_spec(n).recipe} for n in trainable_models()}
PRESETS["quick"] = PRESETS.pop("quickcnn")  # >= 91% on 2 CPU cores; see docs/RESULTS.md for its time
# The best single model (docs/RESULTS.md, "The public recipe for 95.5%"): the pre-activation ResNet-20 with Cutout,
# hysts/pytorch_image_classification's recipe, 200 epochs on all 60,000 images, the last epoch kept.
PRESETS["best"] = copy.deepcopy(PRESETS["preact20"])
# The best model before it (docs/RESULTS.md, "The best single model"): the ResNet's recipe run 64 epochs,
# with Cutout (a 12 px square on every image) and label smoothing 0.2.
PRESETS["resnet64"] = {
    **PRESETS["resnet"],
    "epochs": 64,
    "label_smoothing": 0.2,
    "augment": {"flip": True, "shift": 0.1, "rotate": 0.0, "zoom": 0.0, "erase": 1.0, "erase_size": 12},
}
# Predict's model for photos (docs/RESULTS.md, "Photos from a phone"): the ResNet's recipe run resnet64's 64 epochs,
# with half of its images made to look as a segmented phone photo does (Augment.photo), and a phone's tilt and zoom.
PRESETS["photo"] = {
    **PRESETS["resnet"],
    "epochs": 64,
    "augment": {"flip": True, "shift": 0.1, "rotate": 12.0, "zoom": 0.1, "erase": 0.5, "photo": 0.5},
}
# A class of 30 queues on one server: the quick recipe on 5,000 balanced images, seconds per run, with
# quickcnn's stages 16-48-192 wide instead of 32-64-128: the first stage's passes over 28x28 maps are most
# of a step. Over 20 seeds each (scripts/student_widths.py; docs/RELIABILITY.md): training 1.29x faster,
# test accuracy 84.69% against 84.85% on average, within the half point the class may lose.
PRESETS["student"] = {**copy.deepcopy(PRESETS["quick"]), "subset": 5000, "model_kwargs": {"widths": [16, 48, 192]}}


def base_recipe(preset: str | None = None, recipe: str | None = None) -> tuple[str, dict[str, Any]]:
    """(where it comes from, recipe dict) for a preset, or for architecture `recipe`'s own public recipe."""
    if preset and recipe:
        raise ConfigError("give an architecture or a preset, not both")
    if recipe:
        arch = recipe
        try:
            spec = get_spec(arch)
        except KeyError as e:
            raise ConfigError(str(e.args[0])) from None
        if not spec.trainable:
            raise ConfigError(f"{arch!r} is not trained; combine saved models with `python -m fmnist ensemble`")
        return f"the {arch} recipe", {"arch": arch, **copy.deepcopy(spec.recipe)}
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return f"preset {name!r}", copy.deepcopy(PRESETS[name])


def explain_config(
    preset: str | None = None, recipe: str | None = None, **overrides: Any
) -> tuple[TrainConfig, dict[str, str]]:
    """The TrainConfig of a preset (or an architecture's recipe) with `overrides`, and each option's origin.

    Args:
        preset: a PRESETS name; or
        recipe: an architecture, for its own public recipe (default: the quick preset).
        **overrides: TrainConfig fields, or Augment fields by their own names (flip, shift, ...);
            None values are ignored; 0 turns an optional option (patience, subset, time_budget) off.

    Returns:
        (config, origin) where origin maps every option name to 'command line', the recipe
        ("preset 'quick'"), or 'default'.
    """
    source, d = base_recipe(preset, recipe)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "arch" in given and given["arch"] != d.get("arch"):
        d.pop("model_kwargs", None)  # the recipe's architecture options are its own architecture's
    for f in fields(TrainConfig):  # an optional option given as 0 is turned off (--patience 0)
        if f.default is None and given.get(f.name) == 0:
            given[f.name] = None
    aug_names = {f.name for f in fields(Augment)}
    aug = {k: given.pop(k) for k in list(given) if k in aug_names}
    recipe_aug = d.get("augment", {})
    if aug:
        d["augment"] = {**recipe_aug, **aug}
    d.update(given)
    cfg = TrainConfig.from_dict(d)
    origin = {}
    for f in fields(TrainConfig):
        origin[f.name] = "command line" if f.name in given else source if f.name in d else "default"
    for name in aug_names:
        origin[name] = "command line" if name in aug else source if name in recipe_aug else "default"
    return cfg, origin


def make_config(preset: str | None = None, recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """TrainConfig of a preset or an architecture's recipe, with overrides (see explain_config)."""
    return explain_config(preset, recipe, **overrides)[0]


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """TrainConfig for preset `name` with `overrides` applied (None values are ignored)."""
    return make_config(preset=name, **overrides)
