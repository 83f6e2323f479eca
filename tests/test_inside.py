"""Inside the network (fmnist.inside): the step view's numbers are the model's real ones."""

import pytest
import torch
import torch.nn.functional as F

from fmnist.inside import NoLayersError, conv_activations, conv_step, first_filters, hidden_activations, tile
from fmnist.models import create_model

CONV_ARCHS = ["cnn2", "cnn3bn", "keras1", "keras2", "keras3", "quickcnn", "resnet"]


@pytest.mark.parametrize("arch", CONV_ARCHS)
def test_every_conv_step_is_f_conv2d(arch, ds):
    torch.manual_seed(0)
    model = create_model(arch).eval()
    layers = conv_activations(model, ds.test_images[0])
    assert len(layers) >= (1 if arch == "keras1" else 2)
    for layer in layers:
        m = layer.module
        ref = F.conv2d(layer.input[None], m.weight, m.bias, m.stride, m.padding, m.dilation)[0]
        assert torch.allclose(ref, layer.output, atol=1e-4)  # the hook saw what the layer computed
        c_out, h, w = layer.output.shape
        for channel, y, x in [(0, 0, 0), (c_out - 1, h - 1, w - 1), (c_out // 2, h // 2, w // 3)]:
            step = conv_step(layer, channel, y, x, in_channel=m.in_channels - 1)
            assert step.output == pytest.approx(float(ref[channel, y, x]), abs=1e-4)
            assert step.relu == max(step.output, 0.0)
            assert step.channel_sum == pytest.approx(float(step.products.sum()), abs=1e-5)
            assert torch.equal(step.products, step.kernel * step.patch)
            assert step.kernel.shape == tuple(m.kernel_size) and step.in_channels == m.in_channels


def test_first_layer_patch_is_the_image_itself(ds):
    """On the first layer the patch is the normalised image under the kernel, zero-padded at the edge."""
    from fmnist.runtime import to_input

    model = create_model("quickcnn").eval()
    first = conv_activations(model, ds.test_images[0])[0]
    img = to_input(ds.test_images[0].reshape(1, 28, 28))[0, 0]
    assert torch.allclose(first.input[0], img)
    step = conv_step(first, 0, 10, 12)
    pad = first.module.padding[0]
    assert torch.allclose(step.patch, img[10 - pad : 10 - pad + 3, 12 - pad : 12 - pad + 3])
    assert first_filters(model).shape == (first.module.out_channels, 3, 3)


def test_mlp_hidden_layers_and_clear_refusals(ds):
    hidden = hidden_activations(create_model("mlp2").eval(), ds.test_images[0])
    assert [v.shape[0] for _, v in hidden] == [256, 128] and all((v >= 0).all() for _, v in hidden)
    with pytest.raises(NoLayersError, match="no hidden layer"):
        hidden_activations(create_model("logreg"), ds.test_images[0])
    with pytest.raises(NoLayersError, match="no convolution"):
        conv_activations(create_model("mlp"), ds.test_images[0])
    with pytest.raises(NoLayersError, match="feature maps"):
        hidden_activations(create_model("cnn2"), ds.test_images[0])
    with pytest.raises(IndexError):
        conv_step(conv_activations(create_model("cnn2"), ds.test_images[0])[0], 999, 0, 0)


def test_tile_lays_maps_out_in_a_grid():
    maps = torch.arange(10 * 4 * 4, dtype=torch.float32).reshape(10, 4, 4)
    t = tile(maps, columns=4)
    assert t.shape == (3 * 5 - 1, 4 * 5 - 1) and t.min() >= 0 and t.max() <= 1
    assert t[0, 0] == 0 and t[3, 3] == 1  # each map scaled to its own range


def test_tile_defaults_to_8_columns_and_scales_every_map_to_0_1():
    maps = torch.arange(10 * 4 * 4, dtype=torch.float32).reshape(10, 4, 4) + 3.0  # no map starts at 0
    t = tile(maps)
    assert t.shape == (2 * 5 - 1, 8 * 5 - 1)
    for i in range(10):
        r, c = divmod(i, 8)
        cell = t[r * 5 : r * 5 + 4, c * 5 : c * 5 + 4]
        assert cell.min() == 0 and cell.max() == 1, i
    assert torch.equal(tile(torch.full((1, 3, 3), 7.0)), torch.zeros(3, 3))  # a flat map is 0, not NaN


def test_conv_step_refuses_each_index_out_of_range_alone(ds):
    model = create_model("cnn2").eval()
    layer = conv_activations(model, ds.test_images[0])[0]
    c_out, h_out, w_out = layer.output.shape
    conv_step(layer, c_out - 1, h_out - 1, w_out - 1, 0)  # the last valid cell
    for bad in [(c_out, 0, 0, 0), (0, h_out, 0, 0), (0, 0, w_out, 0), (0, 0, 0, 1), (-1, 0, 0, 0)]:
        with pytest.raises(IndexError, match="is outside"):
            conv_step(layer, *bad)
