import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import ROOT
from fmnist.explain import grad_cam, last_conv, saliency, to_input  # to_input: the input path explain itself uses
from fmnist.models import create_model


@pytest.fixture(scope="module")
def quick():
    """The shipped quick CNN (conv-bn blocks; its last conv is the third block's)."""
    from fmnist.checkpoints import load_checkpoint

    return load_checkpoint(ROOT / "checkpoints" / "quick.safetensors").model


@pytest.fixture(scope="module")
def cnn2():
    torch.manual_seed(0)
    return create_model("cnn2").eval()


def _last_conv_by_hand(model: nn.Module) -> nn.Conv2d:
    """Named explicitly per architecture, so the test does not trust fmnist.explain.last_conv."""
    if hasattr(model, "features"):  # cnn2: conv, relu, pool, conv, relu, pool
        layer = model.features[3]
    else:  # quickcnn: Sequential(conv_bn, pool, conv_bn, pool, conv_bn, ...)
        layer = model[4][0]
    assert isinstance(layer, nn.Conv2d)
    return layer


def _manual_grad_cam(model: nn.Module, image: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM from its definition: ReLU(sum_k mean_ij(dy/dA_k) * A_k), bilinear to 28x28, scaled to [0, 1]."""
    layer = _last_conv_by_hand(model)
    saved = {}

    def keep(module, inputs, output):
        # Keep the conv output itself and pass a copy on: cnn2's next op is an in-place ReLU.
        saved["a"] = output
        return output.clone()

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            out = model.eval()(to_input(image.reshape(1, 28, 28)))
            act = saved["a"]
            (grad,) = torch.autograd.grad(out[0, target], act)
    finally:
        handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True)).detach()
    up = F.interpolate(cam, size=(28, 28), mode="bilinear", align_corners=False)[0, 0].double()
    up = up - up.min()
    assert up.max() > 0
    return (up / up.max()).numpy()


def _no_grads(model: nn.Module) -> bool:
    params = list(model.parameters())
    assert params and all(p.requires_grad for p in params)  # else "no grads" would be trivially true
    return all(p.grad is None for p in params)


def _predicted(model: nn.Module, image: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model.eval()(to_input(image.reshape(1, 28, 28))).argmax())


@pytest.mark.parametrize("which", ["quick", "cnn2"])
def test_grad_cam_matches_the_definition(which, request, ds):
    model = request.getfixturevalue(which)
    assert last_conv(model) is _last_conv_by_hand(model)
    image = ds.test_images[0]  # an ankle boot
    pred = _predicted(model, image)
    for target in (pred, (pred + 3) % 10):
        cam = grad_cam(model, image, target)
        manual = _manual_grad_cam(model, image, target)
        assert isinstance(cam, np.ndarray) and cam.shape == (28, 28)
        assert np.issubdtype(cam.dtype, np.floating)
        assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
        assert cam.std() > 0.05  # not a constant map
        np.testing.assert_allclose(cam, manual, atol=1e-4)
    assert _no_grads(model)


def test_grad_cam_depends_on_target_and_image(quick, ds):
    boot, trouser = ds.test_images[0], ds.test_images[2]
    assert int(ds.test_labels[0]) == 9 and int(ds.test_labels[2]) == 1
    a = grad_cam(quick, boot, 9)
    assert np.abs(a - grad_cam(quick, trouser, 1)).mean() > 0.05
    assert np.array_equal(a, grad_cam(quick, boot, 9))  # deterministic
    assert _no_grads(quick)


def test_grad_cam_is_none_without_conv(ds):
    torch.manual_seed(0)
    mlp = create_model("mlp")
    assert last_conv(mlp) is None
    assert grad_cam(mlp, ds.test_images[0], 0) is None
    assert _no_grads(mlp)


def _manual_saliency(model: nn.Module, image: torch.Tensor, target: int) -> np.ndarray:
    """SmoothGrad as documented: 8 copies with N(0, 0.1) noise (seed 0), mean |d logit / d x|, scaled."""
    x = to_input(image.reshape(1, 28, 28)).repeat(8, 1, 1, 1)
    x = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(model.eval()(x)[:, target].sum(), x)
    s = g.abs().mean(0)[0].double()
    s = s - s.min()
    return (s / s.max()).numpy()


@pytest.mark.parametrize("which", ["quick", "cnn2"])
def test_saliency(which, request, ds):
    model = request.getfixturevalue(which)
    image = ds.test_images[0]
    s = saliency(model, image, 9)
    assert isinstance(s, np.ndarray) and s.shape == (28, 28) and np.issubdtype(s.dtype, np.floating)
    assert s.min() >= 0 and s.max() == pytest.approx(1.0) and s.std() > 0.01
    np.testing.assert_allclose(s, _manual_saliency(model, image, 9), atol=1e-4)
    assert np.array_equal(s, saliency(model, image.reshape(1, 28, 28), 9))  # both input shapes, deterministic
    assert _no_grads(model)


def test_saliency_on_mlp_leaves_no_grads(ds):
    torch.manual_seed(0)
    mlp = create_model("mlp")
    s = saliency(mlp, ds.test_images[0], 3)
    assert s.shape == (28, 28) and s.min() >= 0 and s.max() == pytest.approx(1.0)
    assert _no_grads(mlp)
