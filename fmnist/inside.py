"""Inside the network: every conv layer's feature maps, its filters, and one convolution step in numbers.

    layers = conv_activations(model, image)        # what each conv layer saw and produced
    step = conv_step(layers[0], channel=3, y=10, x=12)
    step.output == F.conv2d(layers[0].input[None], weight, bias, ...)[0, 3, 10, 12]

Every number is the model's own: the weights of its modules, and the tensors that flowed through
them for this image (forward hooks), so a student can redo one step of the network by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import device_of, to_input


class NoLayersError(ValueError):
    """The model has nothing of the asked kind; the message says why in plain words."""


@dataclass
class ConvLayer:
    """One conv layer for one image: its module, what it saw (input) and what it computed (output)."""

    name: str
    module: nn.Conv2d
    input: torch.Tensor  # (C_in, H, W), exactly what the layer received
    output: torch.Tensor  # (C_out, H', W'), the convolution before any BatchNorm or ReLU
    followed_by_bn: bool  # a BatchNorm sits between this conv and its ReLU

    @property
    def label(self) -> str:
        c_in, c_out = self.module.in_channels, self.module.out_channels
        k = "x".join(map(str, self.module.kernel_size))
        return (
            f"{self.name}: {c_in} -> {c_out} channels, {k} kernels, maps {self.output.shape[1]}x{self.output.shape[2]}"
        )


@dataclass
class ConvStep:
    """One output value of a conv layer, computed by hand at (channel, y, x)."""

    kernel: torch.Tensor  # (kh, kw) of input channel `in_channel`
    patch: torch.Tensor  # (kh, kw): the input under the kernel (zero padding included)
    products: torch.Tensor  # kernel * patch
    channel_sum: float  # the sum of `products`
    all_channels_sum: float  # the same sum over every input channel
    in_channels: int
    bias: float
    output: float  # all_channels_sum + bias: the conv's value there
    relu: float  # max(output, 0)


def _conv_children(model: nn.Module) -> list[tuple[str, nn.Conv2d, bool]]:
    """(name, conv, followed by BatchNorm) in forward order of registration."""
    mods = list(model.named_modules())
    out = []
    for i, (name, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            nxt = next((n for _, n in mods[i + 1 :] if not isinstance(n, (nn.Sequential, nn.ModuleList))), None)
            out.append((name or "conv", m, isinstance(nxt, nn.BatchNorm2d)))
    return out


@torch.no_grad()
def conv_activations(model: nn.Module, image: torch.Tensor) -> list[ConvLayer]:
    """Every Conv2d's input and output for one uint8 (28, 28) image, in the order they ran.

    Raises:
        NoLayersError: the model has no convolution (an MLP, logreg).
    """
    convs = _conv_children(model)
    if not convs:
        raise NoLayersError(f"{type(model).__name__} has no convolution layers: it looks at all pixels at once")
    seen: list[ConvLayer] = []
    info = {id(m): (name, bn) for name, m, bn in convs}

    def hook(m: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        name, bn = info[id(m)]
        seen.append(ConvLayer(name, m, _copy(inputs[0][0]), _copy(output[0]), bn))

    _run_hooked(model, image, [(m, hook) for _, m, _ in convs])
    return seen


def _copy(t: torch.Tensor) -> torch.Tensor:
    """A float copy on the CPU (a hook's tensor may be changed in place later, by an in-place ReLU)."""
    return t.detach().float().cpu().clone()


def _run_hooked(model: nn.Module, image: torch.Tensor, hooks: list[tuple[nn.Module, Any]]) -> None:
    """One forward pass of `image` in eval mode with forward `hooks`; the model is left as it was."""
    handles = [m.register_forward_hook(h) for m, h in hooks]
    was_training = model.training
    try:
        model.eval()
        model(to_input(image.reshape(1, 28, 28).to(device_of(model))))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def conv_step(layer: ConvLayer, channel: int, y: int, x: int, in_channel: int = 0) -> ConvStep:
    """The value of output map `channel` at (y, x), as products, sums, bias and ReLU.

    Raises:
        IndexError: a position or channel outside the layer.
    """
    m = layer.module
    if m.groups != 1:
        raise NoLayersError(f"{layer.name} is a grouped convolution: its step is not a plain sum")
    c_out, h_out, w_out = layer.output.shape
    if not (0 <= channel < c_out and 0 <= y < h_out and 0 <= x < w_out and 0 <= in_channel < m.in_channels):
        raise IndexError(f"({channel}, {y}, {x}, {in_channel}) is outside {layer.name}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = m.kernel_size, m.stride, m.padding, m.dilation
    padded = F.pad(layer.input, (pw, pw, ph, ph))
    y0, x0 = y * sh, x * sw
    patch = padded[:, y0 : y0 + dh * (kh - 1) + 1 : dh, x0 : x0 + dw * (kw - 1) + 1 : dw]
    weight = m.weight[channel].detach().float().cpu()
    products = weight * patch
    total = float(products.sum())
    bias = float(m.bias[channel]) if m.bias is not None else 0.0  # float() reads it from any device
    out = total + bias
    return ConvStep(
        kernel=weight[in_channel],
        patch=patch[in_channel],
        products=products[in_channel],
        channel_sum=float(products[in_channel].sum()),
        all_channels_sum=total,
        in_channels=m.in_channels,
        bias=bias,
        output=out,
        relu=max(out, 0.0),
    )


def first_filters(model: nn.Module) -> torch.Tensor:
    """The first conv layer's kernels, (C_out, kh, kw) for its first input channel."""
    convs = _conv_children(model)
    if not convs:
        raise NoLayersError(f"{type(model).__name__} has no convolution layers, so no filters")
    return convs[0][1].weight.detach().float().cpu()[:, 0]


@torch.no_grad()
def hidden_activations(model: nn.Module, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, values after ReLU) of every hidden dense layer, for MLPs.

    Raises:
        NoLayersError: no hidden layer (logreg), or a convolutional model (use conv_activations).
    """
    if _conv_children(model):
        raise NoLayersError("this is a convolutional network: see its feature maps")
    relus = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise NoLayersError(
            f"{type(model).__name__} has no hidden layer: each of its 10 scores is a weighted sum of the pixels"
        )
    seen: list[tuple[str, torch.Tensor]] = []
    _run_hooked(model, image, [(m, lambda m, i, o, n=n: seen.append((n, _copy(o[0])))) for n, m in relus])
    return seen


def tile(maps: torch.Tensor, columns: int = 8, gap: int = 1) -> torch.Tensor:
    """(N, H, W) maps -> one (rows*(H+gap), columns*(W+gap)) image in [0, 1], each map scaled to its own range."""
    n, h, w = maps.shape
    rows = (n + columns - 1) // columns
    out = torch.ones(rows * (h + gap) - gap, min(n, columns) * (w + gap) - gap)
    for i in range(n):
        m = maps[i]
        lo, hi = float(m.min()), float(m.max())
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = (
            (m - lo) / (hi - lo) if hi > lo else 0
        )
    return out
