"""The model zoo: a registry of architectures, each with its description and public recipe.

Every model maps a normalised batch (B, 1, 28, 28) to logits (B, 10).

    >>> list_models()
    ['logreg', 'mlp', 'mlp2', 'cnn2', 'cnn3bn', 'keras1', 'keras2', 'keras3', 'quickcnn', 'resnet', 'ensemble']
    >>> create_model("cnn2")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import NUM_CLASSES


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    recipe: dict[str, Any]  # TrainConfig fields of the public recipe
    reported: float | None = None  # test accuracy claimed by the public source, in %
    source: str = ""
    trainable: bool = True  # False: built from saved checkpoints (the ensemble), never trained


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, recipe: dict, reported: float | None = None, source: str = "", trainable: bool = True):
    """Add the decorated builder to the zoo; its docstring's first line is the model's description."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        description = (builder.__doc__ or name).strip().splitlines()[0].rstrip(".")
        _REGISTRY[name] = ModelSpec(name, builder, description, recipe, reported, source, trainable)
        return builder

    return deco


def list_models() -> list[str]:
    """Names of all registered architectures, in zoo order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`; an unknown name raises KeyError listing the valid ones."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a fresh, randomly initialised model of architecture `name`.

    Args:
        name: a registered architecture (see `list_models()`).
        **kwargs: architecture options, e.g. `kernel_size=5` for `cnn2`.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        TypeError: an option the architecture does not take.
    """
    return get_spec(name).builder(**kwargs)


MAX_PARAMS = 50_000_000  # 30x the ResNet; a 100 MB checkpoint. Bigger builds are refused before allocating.


class ModelSizeError(ValueError):
    """An architecture's options make a model too large, or its builder refuses them."""


def checked_model_size(name: str, **kwargs: Any) -> int:
    """Parameters and buffers of architecture `name` with `kwargs`, counted on the meta device.

    Nothing is allocated, so `{"hidden": 10**9}` costs nothing to check. Training options and
    checkpoint cards both pass through here before a real model is built.

    Raises:
        KeyError: unknown architecture.
        ModelSizeError: the builder refuses the options, or the model is over MAX_PARAMS.
    """
    spec = get_spec(name)
    try:
        with torch.device("meta"):
            model = spec.builder(**kwargs)
    except Exception as e:  # any builder error, for any bad option, becomes one line
        raise ModelSizeError(f"{name} cannot be built with {kwargs}: {type(e).__name__}: {str(e)[:160]}") from None
    n = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    if n > MAX_PARAMS:
        raise ModelSizeError(f"{name} with {kwargs} has {n:,} parameters: over the limit of {MAX_PARAMS:,}")
    return n


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def param_count(name: str, **kwargs: Any) -> int:
    """Parameter count of architecture `name`, without training anything."""
    return count_params(create_model(name, **kwargs))


# ---------------------------------------------------------------- building blocks


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def dense_stack(sizes: list[int], dropout: float | Sequence[float]) -> list[nn.Module]:
    """Linear+ReLU(+Dropout) layers through `sizes`, then a Linear head to 10 classes.

    `dropout` is one rate for every hidden layer, or one rate per hidden layer (0 = none).
    """
    rates = [dropout] * (len(sizes) - 1) if isinstance(dropout, (int, float)) else list(dropout)
    if len(rates) != len(sizes) - 1:
        raise ValueError(f"{len(sizes) - 1} hidden layers need {len(sizes) - 1} dropout rates, got {len(rates)}")
    layers: list[nn.Module] = []
    for a, b, p in zip(sizes, sizes[1:], rates):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        if p:
            layers.append(nn.Dropout(p))
    return layers + [nn.Linear(sizes[-1], NUM_CLASSES)]


# Recipes name TrainConfig fields (see fmnist.config).
KERAS_AUG = {"rotate": 10.0, "shift": 0.1, "zoom": 0.1, "flip": False}


def keras_recipe(epochs: int, batch_size: int, val_fraction: float, **more: Any) -> dict[str, Any]:
    """A public recipe that keeps Keras's optimiser defaults: Adam at lr 1e-3."""
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": 1e-3,
        "optimizer": "adam",
        "val_fraction": val_fraction,
        **more,
    }


# ---------------------------------------------------------------- the zoo


@register("logreg", keras_recipe(10, 256, 0.1), reported=84.2, source="Zalando benchmark, sklearn LogisticRegression")
def logreg() -> nn.Module:
    """Logistic regression on raw pixels: the classical linear baseline."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, NUM_CLASSES))


# Report 002 (Naik): fit(epochs=10, validation_data=(x_test, y_test)), Keras's default batch 32. It
# trains on all 60,000 images and only watches the test set; here nothing is held out or selected.
@register(
    "mlp",
    keras_recipe(10, 32, 0.0, restore_best=False),
    reported=88.0,
    source="public MLP report (Naik; also the TensorFlow tutorial): 60k images, 10 epochs",
)
def mlp(hidden: int = 128, dropout: float = 0.2) -> nn.Module:
    """Flatten - Dense 128 (ReLU) - Dropout 0.2 - Dense 10 (TensorFlow tutorial MLP)."""
    return nn.Sequential(nn.Flatten(), *dense_stack([28 * 28, hidden], dropout))


@register("mlp2", keras_recipe(15, 64, 0.1), reported=88.0, source="public two-hidden-layer MLP report")
def mlp2(h1: int = 256, h2: int = 128, dropout: float = 0.2) -> nn.Module:
    """MLP with two hidden layers, 256 and 128 (ReLU, Dropout 0.2)."""
    return nn.Sequential(nn.Flatten(), *dense_stack([28 * 28, h1, h2], dropout))


class CNN2(nn.Module):
    """conv32 - pool - conv64 - pool - dense128 - dense10 (Keras 'valid' padding).

    Each max-pool runs before its ReLU (here and in the keras models): ReLU is monotonic, so
    max-pool then ReLU is the same function, with the same gradients bit for bit, as ReLU then
    max-pool, and the ReLU touches 4x fewer values: a cnn2 training step 1.37-1.45x faster in fp32
    on a 2-core AMD EPYC (scripts/pool_order.py). Parameter names do not change, so checkpoints load either
    way. The BatchNorm models keep conv-BN-ReLU-pool: there the order made no measurable difference.
    """

    def __init__(self, kernel_size: int = 3, c1: int = 32, c2: int = 64, hidden: int = 128):
        super().__init__()
        k = kernel_size
        s1 = (28 - k + 1) // 2  # after conv1 + pool
        s2 = (s1 - k + 1) // 2  # after conv2 + pool
        if s2 < 1:
            raise ValueError(f"kernel_size={k} is too large for 28x28 input")
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, k),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, k),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Flatten(), *dense_stack([c2 * s2 * s2, hidden], 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register(
    "cnn2",
    keras_recipe(10, 128, 0.1, restore_best=False),
    reported=90.2,
    source="public Keras CNN report (Adam, batch 128, 10 epochs, 90/10 split)",
)
def cnn2(kernel_size: int = 3, c1: int = 32, c2: int = 64, hidden: int = 128) -> nn.Module:
    """conv32-pool-conv64-pool-dense128-dense10, the classic two-conv CNN."""
    return CNN2(kernel_size, c1, c2, hidden)


def keras_bn(n: int, dims: int = 2) -> nn.Module:
    """Keras's BatchNormalization defaults: epsilon 1e-3, moving average 0.99 (torch's momentum 0.01)."""
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(n, eps=1e-3, momentum=0.01)


# Report 001: "Three convolutional layers ... using 3x3 kernels and ReLU activation. Each convolutional
# layer is followed by: Batch Normalization ... Max Pooling ... Dropout", and "A fully connected layer
# with 128 neurons and ReLU activation, followed by Batch Normalization and a Dropout of 0.5": Keras's
# Conv2D(activation="relu") (with its bias) then BatchNormalization, i.e. BN after the ReLU
# (`keras_order`, the preset). Without it: conv (no bias) - BN - ReLU, the first cnn3bn checkpoints.
@register(
    "cnn3bn",
    keras_recipe(20, 32, 0.2, augment=KERAS_AUG, patience=5, restore_best=True, model_kwargs={"keras_order": True}),
    reported=99.4,
    source="public report claiming 99.4% (its supports are MNIST digits'; see docs/RESULTS.md)",
)
def cnn3bn(widths: tuple[int, int, int] = (64, 128, 256), hidden: int = 128, keras_order: bool = False) -> nn.Module:
    """Three conv blocks 64/128/256 with BatchNorm, max-pool, dropout 0.2/0.3/0.4; dense128+BN.

    `keras_order`: BN after the ReLU, with Keras's BN constants (the report's order); else BN before it.
    """
    layers: list[nn.Module] = []
    c_in = 1
    for w, p in zip(widths, (0.2, 0.3, 0.4)):
        block = (
            [nn.Conv2d(c_in, w, 3, padding=1), nn.ReLU(inplace=True), keras_bn(w)]
            if keras_order
            else [conv_bn(c_in, w)]
        )
        layers += [*block, nn.MaxPool2d(2), nn.Dropout(p)]
        c_in = w
    if keras_order:
        dense = [nn.Linear(c_in * 3 * 3, hidden), nn.ReLU(inplace=True), keras_bn(hidden, dims=1)]
    else:
        dense = [nn.Linear(c_in * 3 * 3, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
    return nn.Sequential(
        *layers,  # 28 -> 14 -> 7 -> 3
        nn.Flatten(),
        *dense,
        nn.Dropout(0.5),
        nn.Linear(hidden, NUM_CLASSES),
    )


# Report 004 (Roy): Keras, Adam, batch 512, train_test_split(test_size=0.2), no augmentation. Keras
# keeps the last epoch's weights (restore_best_weights=False), and so do these recipes.
def roy_recipe(epochs: int, **more: Any) -> dict[str, Any]:
    return keras_recipe(epochs, 512, 0.2, restore_best=False, **more)


def _same(size: int, k: int, stride: int) -> int:
    """Output side of a Keras padding='same' conv: ceil(size / stride)."""
    return -(-size // stride)


@register("keras1", roy_recipe(10), reported=89.0, source="public Keras CNN report (Roy), model 1: epochs=10")
def keras1(kernel_size: int = 3) -> nn.Module:
    """Keras CNN 1: conv32 (valid) - pool - dense128."""
    s = (28 - kernel_size + 1) // 2
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        *dense_stack([32 * s * s, 128], 0.0),
    )


@register("keras2", roy_recipe(20), reported=91.0, source="public Keras CNN report (Roy), model 2: epochs=20")
def keras2(kernel_size: int = 3) -> nn.Module:
    """Keras CNN 2: conv32 (valid) - pool - conv64/2 (same) - pool - dense 128/256/128, dropout 0.25 twice."""
    k = kernel_size
    s = _same((28 - k + 1) // 2, k, 2) // 2  # 26 -> 13 -> 7 -> 3
    return nn.Sequential(
        nn.Conv2d(1, 32, k),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, k, stride=2, padding=k // 2),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        *dense_stack([64 * s * s, 128, 256, 128], [0.25, 0.25, 0.0]),
    )


# Model 3: epochs=50 with EarlyStopping(monitor="val_loss"), Keras's default patience=0. Keras stops at
# the first epoch without a lower val_loss; here that is patience=1 (fmnist.train counts differently).
@register(
    "keras3",
    roy_recipe(50, patience=1, monitor="val_loss"),
    reported=82.0,
    source="public Keras CNN report (Roy), model 3: epochs=50, EarlyStopping(monitor='val_loss')",
)
def keras3(kernel_size: int = 3) -> nn.Module:
    """Keras CNN 3: conv64 (valid), conv128/2, conv64/2 (same), each + pool; dense 128/256/256/128."""
    k, p = kernel_size, kernel_size // 2
    s = _same(_same((28 - k + 1) // 2, k, 2) // 2, k, 2) // 2  # 26 -> 13 -> 7 -> 3 -> 2 -> 1
    return nn.Sequential(
        nn.Conv2d(1, 64, k),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 128, k, stride=2, padding=p),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Conv2d(128, 64, k, stride=2, padding=p),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        *dense_stack([64 * s * s, 128, 256, 256, 128], [0.25, 0.5, 0.25, 0.10]),
    )


@register(
    "quickcnn",
    {
        "epochs": 4,
        "batch_size": 256,
        "lr": 4e-3,
        "optimizer": "adamw",
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "val_fraction": 0.1,
        "time_budget": 55,  # seconds: where 4 epochs take longer (fp32 CPUs), the schedule follows the clock
    },
    source="this project",
)
def quickcnn(widths: tuple[int, int, int] = (32, 64, 128)) -> nn.Module:
    """Small BatchNorm CNN (32-64-128) built for the quick classroom demo; the student preset runs it 16-48-192."""
    a, b, c = widths
    return nn.Sequential(
        conv_bn(1, a),
        nn.MaxPool2d(2),  # 14
        conv_bn(a, b),
        nn.MaxPool2d(2),  # 7
        conv_bn(b, c),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(c, NUM_CLASSES),
    )


class ResBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers with an identity shortcut."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """A ResNet-9-style net for 28x28: stem, then per stage conv-pool and a residual block."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.0):
        super().__init__()
        stages: list[nn.Module] = [conv_bn(1, widths[0])]  # (B, w0, 28, 28)
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            stages += [conv_bn(a, b), nn.MaxPool2d(2)]  # 28 -> 14 -> 7 -> 3
            if i != 1:  # as in ResNet-9 (DAWNBench): the middle stage has no residual block
                stages.append(ResBlock(b))
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(widths[-1], NUM_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register(
    "resnet",
    {
        "epochs": 24,
        "batch_size": 256,
        "lr": 0.2,
        "optimizer": "sgd",
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "val_fraction": 0.1,
        "augment": {"flip": True, "shift": 0.1, "rotate": 0.0, "zoom": 0.0, "erase": 0.5},
        "tta_flip": True,
    },
    source="this project (ResNet18 reaches 94.9% in Zalando's benchmark)",
)
def resnet(widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.0) -> nn.Module:
    """ResNet-9-style net (32-64-128-256, residual blocks); the shipped resnet64 is it run 64 epochs."""
    return ResNet(tuple(widths), dropout)


class PreActBlock(nn.Module):
    """A pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, plus the shortcut.

    `first` (a stage's first block): the BN-ReLU is applied to the input itself, which then feeds both
    the branch and the shortcut; otherwise the shortcut is the raw input. The shortcut is a 1x1
    convolution where the width changes, else the identity.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, first: bool):
        super().__init__()
        self.first = first
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(x))
        if self.first:
            x = y
        y = self.conv2(F.relu(self.bn2(self.conv1(y))))
        return y + self.shortcut(x)


class PreActResNet(nn.Module):
    """Pre-activation ResNet for 28x28 (He et al. 2016): a 3x3 stem, three stages of basic blocks
    (widths w, 2w, 4w; strides 1, 2, 2), then BN-ReLU, global average pooling and a linear head."""

    def __init__(self, depth: int = 20, width: int = 16):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        blocks, c = [], width
        for i, c_out in enumerate(widths):
            for j in range(n):
                blocks.append(PreActBlock(c, c_out, (1 if i == 0 else 2) if j == 0 else 1, first=j == 0))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, NUM_CLASSES)
        )
        for m in self.modules():  # the source's initialisation; the Linear keeps torch's default weights
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# hysts/pytorch_image_classification (2018 code that produced its README's Fashion-MNIST table; read
# in docs/RESULTS.md): SGD with Nesterov momentum 0.9, lr 0.2, weight decay 1e-4 on every parameter,
# batch 128, 200 epochs, cosine to 0 per step; all 60,000 images, the last epoch kept; a 28x28 random
# crop after 4 px of black padding, a flip, and Cutout 16 px (p=1) filled with the mean after normalising.
PREACT_SOURCE = (
    "hysts/pytorch_image_classification README, Fashion-MNIST: ResNet-preact-20 + Cutout 16, "
    "4.49% test error (median of 3), 200 epochs"
)


@register(
    "preact20",
    {
        "epochs": 200,
        "batch_size": 128,
        "lr": 0.2,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "val_fraction": 0.0,
        "restore_best": False,
        "augment": {"flip": True, "crop": 4, "erase": 1.0, "erase_size": 16, "erase_value": 0.286},
    },
    reported=95.51,
    source=PREACT_SOURCE,
)
def preact20(depth: int = 20, width: int = 16) -> nn.Module:
    """Pre-activation ResNet-20 (16-32-64, 0.27M parameters), the public recipe's model with Cutout."""
    return PreActResNet(depth, width)


class Ensemble(nn.Module):
    """Combines member models by soft vote (mean probability) or majority vote.

    Returns log-probabilities, so its output works as logits everywhere. Under majority
    vote the class with most votes wins and the mean probability breaks ties. A member whose
    spec says `"tta_flip": True` votes as its checkpoint answers alone: with the mean of its
    logits for the image and its mirror image (`tta_logits`).
    """

    def __init__(self, members: list[dict[str, Any]] | None = None, vote: str = "soft"):
        super().__init__()
        if vote not in ("soft", "majority"):
            raise ValueError(f"vote must be 'soft' or 'majority', got {vote!r}")
        if members is None:  # the report's idea: the same CNN with different kernel sizes
            members = [{"arch": "cnn2", "kwargs": {"kernel_size": k}} for k in (3, 5, 7)]
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.member_specs = members
        self.vote = vote
        self.members = nn.ModuleList(create_model(m["arch"], **m.get("kwargs", {})) for m in members)
        self.flips = [bool(m.get("tta_flip", False)) for m in members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([tta_logits(m, x, flip).softmax(-1) for m, flip in zip(self.members, self.flips)])
        mean = probs.mean(0)
        if self.vote == "soft":
            return mean.clamp_min(1e-9).log()
        votes = nn.functional.one_hot(probs.argmax(-1), NUM_CLASSES).sum(0).float()  # (B, 10)
        score = votes + 0.5 * mean  # mean < 1 only breaks ties between equal vote counts
        return (score / score.sum(-1, keepdim=True)).log()


def tta_logits(model: nn.Module, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """`model`'s float logits for a batch (B, 1, 28, 28), or with flip test-time augmentation the mean of
    the logits for each image and its mirror image: the one place flip TTA is computed (prediction,
    ensembles, the ONNX graph)."""
    logits = model(x).float()
    if flip:
        logits = (logits + model(x.flip(-1)).float()) / 2
    return logits


@register(
    "ensemble", {}, source="public report combining CNNs of different kernel sizes by majority vote", trainable=False
)
def ensemble(members: list[dict[str, Any]] | None = None, vote: str = "soft") -> nn.Module:
    """Soft or majority vote over saved models (default: cnn2 with kernel sizes 3, 5, 7)."""
    return Ensemble(members, vote)
