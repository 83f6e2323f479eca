"""The Predict page's "inside the network" view: feature maps, first-layer filters, one convolution step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from app_support.plots import LAYOUT, upscale
from fmnist.checkpoints import Checkpoint
from fmnist.inside import NoLayersError, conv_activations, conv_step, first_filters, hidden_activations, tile

MAX_MAPS = 64  # maps drawn per layer (the ResNet's last layer has 256)


def _u8(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(a, dtype=np.float32), 0, 1) * 255).astype(np.uint8)


def _scaled(m: torch.Tensor) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return _u8((m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m))


def _boxed(gray: np.ndarray, y: int, x: int, h: int, w: int, scale: int) -> np.ndarray:
    """A gray map upscaled to RGB with an orange box around rows y..y+h, columns x..x+w."""
    rgb = np.repeat(upscale(gray, scale)[..., None], 3, -1).copy()
    y0, x0, y1, x1 = y * scale, x * scale, (y + h) * scale - 1, (x + w) * scale - 1
    for t in range(2):
        rgb[max(y0 + t, 0), x0 : x1 + 1] = rgb[min(y1 - t, rgb.shape[0] - 1), x0 : x1 + 1] = (255, 140, 0)
        rgb[y0 : y1 + 1, max(x0 + t, 0)] = rgb[y0 : y1 + 1, min(x1 - t, rgb.shape[1] - 1)] = (255, 140, 0)
    return rgb


def _numbers(t: torch.Tensor) -> pd.DataFrame:
    return pd.DataFrame(
        t.numpy().round(3),
        index=[f"row {i}" for i in range(t.shape[0])],
        columns=[f"col {j}" for j in range(t.shape[1])],
    )


def show_layers(ckpt: Checkpoint, image: np.ndarray) -> None:
    """Draw the layers view of `ckpt`'s network for one 28x28 uint8 image."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8))
    try:
        layers = conv_activations(ckpt.model, x)
    except NoLayersError:
        _show_dense(ckpt, x)
        return
    c1, c2 = st.columns([1, 2])
    filters = first_filters(ckpt.model)
    said = f"The first layer's {len(filters)} filters, each scaled on its own (light = positive weight)."
    c1.image(upscale(_u8(tile(filters, columns=8)), 12), width=260, caption=said, alt=said)
    i = c2.selectbox(
        "Layer",
        range(len(layers)),
        format_func=lambda k: f"conv layer {k + 1} of {len(layers)} ({layers[k].label})",
        key="pr_layer",
    )
    layer = layers[i]
    maps = layer.output.clamp(min=0) if not layer.followed_by_bn else layer.output
    shown = maps[:MAX_MAPS]
    said = f"{len(shown)} of the {len(maps)} maps this layer computed for the image, each scaled on its own" + (
        " (before its BatchNorm and ReLU)." if layer.followed_by_bn else " (after ReLU: dark = 0)."
    )
    c2.image(
        upscale(_u8(tile(shown, columns=16)), max(1, 320 // (16 * maps.shape[2]))),
        width="stretch",
        caption=said,
        alt=said,
    )

    st.markdown("#### One step of the convolution, with this network's own numbers")
    m = layer.module
    c_out, h_out, w_out = layer.output.shape
    cols = st.columns(4)
    channel = cols[0].number_input("Output map", 0, c_out - 1, 0, key="pr_step_map")
    row = cols[1].slider("Row", 0, h_out - 1, h_out // 2, key="pr_step_y")
    col = cols[2].slider("Column", 0, w_out - 1, w_out // 2, key="pr_step_x")
    in_ch = cols[3].number_input(
        "Input channel shown", 0, m.in_channels - 1, 0, key="pr_step_in", disabled=m.in_channels == 1
    )
    step = conv_step(layer, int(channel), int(row), int(col), int(in_ch))
    kh, kw = m.kernel_size
    pad = m.padding[0]
    padded = torch.nn.functional.pad(layer.input[int(in_ch)], (pad, pad, pad, pad))
    scale = max(4, 240 // padded.shape[0])
    a, b, c, d = st.columns(4)
    said = f"Input channel {in_ch}" + (f", zero-padded by {pad}" if pad else "") + ": the kernel's window"
    a.image(
        _boxed(_scaled(padded), int(row) * m.stride[0], int(col) * m.stride[1], kh, kw, scale), caption=said, alt=said
    )
    b.markdown("**Kernel** (the weights)")
    b.dataframe(_numbers(step.kernel), key="pr_step_kernel")
    c.markdown("**Input patch** under it" + (" (normalised pixels)" if i == 0 else ""))
    c.dataframe(_numbers(step.patch), key="pr_step_patch")
    d.markdown("**Products** (kernel x patch)")
    d.dataframe(_numbers(step.products), key="pr_step_products")
    terms = f"sum of these {kh * kw} products = **{step.channel_sum:.3f}**"
    if step.in_channels > 1:
        terms += f"; the same over all {step.in_channels} input channels = **{step.all_channels_sum:.3f}**"
    st.markdown(
        f"{terms}; + bias {step.bias:.3f} = **{step.output:.3f}**; "
        + (
            f"ReLU: max(0, {step.output:.3f}) = **{step.relu:.3f}**."
            if not layer.followed_by_bn
            else "then this network's BatchNorm rescales it before the ReLU."
        )
    )
    st.image(
        _boxed(_scaled(maps[int(channel)]), int(row), int(col), 1, 1, max(4, 240 // h_out)),
        width=240,
        caption=f"Output map {channel}: the value lands in the boxed pixel",
        alt=f"Output map {channel} with the computed pixel boxed",
    )


def _show_dense(ckpt: Checkpoint, x: torch.Tensor) -> None:
    try:
        hidden = hidden_activations(ckpt.model, x)
    except NoLayersError as e:
        st.info(f"{ckpt.card.get('arch', 'This model')}: {e}.")
        return
    for name, v in hidden:
        fig = go.Figure(go.Bar(y=v.numpy(), marker_color="#4E79A7", hovertemplate="unit %{x}: %{y:.3f}<extra></extra>"))
        fig.update_layout(
            title=f"Hidden layer {name}: {len(v)} units after ReLU ({int((v > 0).sum())} active)",
            height=260,
            xaxis_title="unit",
            yaxis_title="activation",
            **LAYOUT,
        )
        st.plotly_chart(fig, key=f"pr_hidden_{name}")
