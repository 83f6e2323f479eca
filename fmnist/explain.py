"""Why did the model answer that? Saliency and Grad-CAM maps for one 28x28 image.

Each function returns a (28, 28) float map scaled to [0, 1], ready to overlay.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from .runtime import device_of, to_input

# Models are shared between app sessions (cached once per server): Grad-CAM hooks must not
# interleave, and nothing here may leave gradients on the shared weights.
_LOCK = threading.Lock()


def _norm(a: torch.Tensor) -> np.ndarray:
    a = a.detach().float().cpu()
    a = a - a.min()
    return (a / a.max()).numpy() if a.max() > 0 else a.numpy()


def last_conv(model: nn.Module) -> nn.Conv2d | None:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def saliency(model: nn.Module, image: torch.Tensor, target: int) -> np.ndarray:
    """|d logit_target / d pixel|, smoothed over a few noisy copies (SmoothGrad).

    Args:
        image: uint8 (1, 28, 28) or (28, 28).
    """
    x = to_input(image.reshape(1, 28, 28)).repeat(8, 1, 1, 1)
    x = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).to(device_of(model))
    x.requires_grad_(True)
    with _LOCK, torch.enable_grad():
        model.eval()
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)  # no .grad left on the weights
    return _norm(grad.abs().mean(0)[0])


def grad_cam(model: nn.Module, image: torch.Tensor, target: int) -> np.ndarray | None:
    """Grad-CAM on the last conv layer (captum), upsampled to 28x28; None for models without conv."""
    from captum.attr import LayerAttribution, LayerGradCam

    layer = last_conv(model)
    if layer is None:
        return None
    x = to_input(image.reshape(1, 28, 28)).to(device_of(model))
    with _LOCK, torch.enable_grad():
        model.eval()
        attr = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    up = LayerAttribution.interpolate(attr, (28, 28), interpolate_mode="bilinear")
    return _norm(up[0, 0])
