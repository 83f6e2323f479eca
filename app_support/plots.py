"""Plotly figures with one colour per class everywhere, and image helpers."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from fmnist.data import CLASSES

# One colour per class, on every page (Tableau 10: distinct, colour-blind friendly).
CLASS_COLORS = [
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
]
SHORT = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), font=dict(size=14))


def upscale(img: np.ndarray, factor: int = 6) -> np.ndarray:
    """Nearest-neighbour enlargement so 28x28 pixels stay crisp on a projector."""
    return img.repeat(factor, 0).repeat(factor, 1)  # (H, W) or (H, W, 3)


def pixel_img(image: np.ndarray, px: int, alt: str) -> str:
    """HTML for a small uint8 image shown `px` wide with crisp pixels, its PNG inline.

    It arrives with the page update itself (no second request for a media file, as st.image
    needs), and is sent at its own size: the browser enlarges it (image-rendering: pixelated).
    """
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, "PNG")
    src = base64.b64encode(buf.getvalue()).decode()
    return (
        f'<img src="data:image/png;base64,{src}" alt="{html.escape(alt)}" width="{px}" height="{px}" '
        f'style="width: {px}px; height: {px}px; object-fit: fill; image-rendering: pixelated; display: block">'
    )


def step_tiles(steps: list[np.ndarray], side: int = 140) -> list[np.ndarray]:
    """Each preprocessing step at its display size (`side` px on its longest side): small steps are
    enlarged pixel by pixel, a large photo is shrunk, so the browser is sent no more than it shows."""
    out = []
    for s in steps:
        f = side / max(s.shape[:2])
        if f >= 1:
            out.append(upscale(s, max(1, int(f))))
        else:
            size = (max(1, round(s.shape[1] * f)), max(1, round(s.shape[0] * f)))
            out.append(np.asarray(Image.fromarray(s).resize(size, Image.Resampling.BOX)))
    return out


def mosaic(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """(rows*cols, 28, 28) uint8 -> one image with a dark gap between tiles."""
    h, w = images.shape[1:]
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), 40, np.uint8)
    for i, im in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = im
    return out


def gallery_fig(images: np.ndarray, per_class: int) -> go.Figure:
    """Rows of samples, one row per class, labelled with the class name."""
    m = mosaic(images, len(CLASSES), per_class)
    fig = go.Figure(
        go.Heatmap(z=m[::-1], colorscale="gray", showscale=False, hovertemplate="pixel %{z}<extra></extra>")
    )
    step = m.shape[0] / len(CLASSES)
    fig.update_yaxes(
        tickvals=[m.shape[0] - (i + 0.5) * step for i in range(len(CLASSES))],
        ticktext=list(CLASSES),
        scaleanchor="x",
        showgrid=False,
        zeroline=False,
    )
    fig.update_xaxes(visible=False)
    fig.update_layout(height=620, **LAYOUT)
    return fig


def balance_fig(train_counts: np.ndarray, test_counts: np.ndarray) -> go.Figure:
    fig = make_subplots(1, 2, subplot_titles=("Training set (60,000)", "Test set (10,000)"))
    for col, counts in ((1, train_counts), (2, test_counts)):
        fig.add_bar(
            x=list(CLASSES),
            y=counts,
            marker_color=CLASS_COLORS,
            row=1,
            col=col,
            showlegend=False,
            hovertemplate="%{x}: %{y:,} images<extra></extra>",
        )
    fig.update_layout(height=330, **LAYOUT)
    return fig


def confusion_fig(cm: np.ndarray, normalized: bool, title: str = "Confusion matrix") -> go.Figure:
    """Heatmap of the confusion matrix. An invisible marker sits on every cell, because Plotly
    heatmaps emit no selection events: clicking a cell selects its marker (see clicked_cell)."""
    z = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalized else cm
    text = np.vectorize(lambda v: f"{v:.0%}" if normalized else f"{int(v)}")(z)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=SHORT,
            y=SHORT,
            colorscale="Blues",
            text=text,
            texttemplate="%{text}",
            customdata=cm,
            hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>",
        )
    )
    t, p = np.divmod(np.arange(cm.size), cm.shape[1])
    invisible = {"marker": {"opacity": 0}}
    fig.add_scatter(
        x=[SHORT[i] for i in p],
        y=[SHORT[i] for i in t],
        mode="markers",
        marker={"size": 34, "symbol": "square", "opacity": 0},
        selected=invisible,
        unselected=invisible,
        hovertemplate="true %{y}, predicted %{x}: click to see these images<extra></extra>",
        showlegend=False,
    )
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", side="top")
    fig.update_layout(title=title, height=560, clickmode="event+select", **LAYOUT)
    return fig


def clicked_cell(event, n: int = 10) -> tuple[int, int] | None:
    """(true, predicted) of the confusion cell a plotly_chart selection event points at.

    The cell markers are trace 1, laid out row by row, so a point's index is true * n + pred.
    """
    points = (event or {}).get("selection", {}).get("points", [])  # the event is a dict subclass
    for pt in points:
        idx = pt.get("point_index", pt.get("point_number"))
        if pt.get("curve_number") == 1 and isinstance(idx, int) and 0 <= idx < n * n:
            return divmod(idx, n)
    return None


def confusion_diff_fig(cm_a: np.ndarray, cm_b: np.ndarray, name_a: str, name_b: str) -> go.Figure:
    """B minus A. Off the diagonal red means B makes more of that mistake; on it blue is better."""
    d = cm_b.astype(int) - cm_a.astype(int)
    lim = max(1, int(np.abs(d).max()))
    # Flip the diagonal's sign for the colour so that "better" is always blue.
    colour = -d.astype(float)
    np.fill_diagonal(colour, np.diag(d))
    fig = go.Figure(
        go.Heatmap(
            z=colour,
            x=SHORT,
            y=SHORT,
            zmin=-lim,
            zmax=lim,
            colorscale="RdBu",
            text=d,
            texttemplate="%{text:+d}",
            customdata=d,
            hovertemplate=f"true %{{y}}, predicted %{{x}}: {name_b} - {name_a} = %{{customdata:+d}}<extra></extra>",
            showscale=False,
        )
    )
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", side="top")
    fig.update_layout(title=f"Confusion diff: {name_b} minus {name_a} (blue = {name_b} better)", height=560, **LAYOUT)
    return fig


def curves_fig(history: list[dict], batches: list | None = None, epochs_total: int | None = None) -> go.Figure:
    """Loss and accuracy vs epoch: train (per batch when given) and validation per epoch."""
    fig = make_subplots(1, 2, subplot_titles=("Loss", "Accuracy"))

    def pair(x: list, loss: list, acc: list, name: str, **style: Any) -> None:  # one trace in each panel
        fig.add_scatter(x=x, y=loss, name=name, row=1, col=1, **style)
        fig.add_scatter(x=x, y=acc, name=name, showlegend=False, row=1, col=2, **style)

    train_style = dict(line=dict(color="#4E79A7"))
    if batches:
        x = [b.epoch - 1 + b.batch / b.batches for b in batches]
        pair(x, [b.loss for b in batches], [b.acc for b in batches], "train (running)", **train_style)
    elif history:
        ep = [h["epoch"] for h in history]
        pair(ep, [h["train_loss"] for h in history], [h["train_acc"] for h in history], "train", **train_style)
    if history:
        ep = [h["epoch"] for h in history]
        val_style = dict(mode="lines+markers", line=dict(color="#E15759", width=3))
        pair(ep, [h["val_loss"] for h in history], [h["val_acc"] for h in history], "validation", **val_style)
    fig.update_xaxes(title="epoch", range=[0, epochs_total] if epochs_total else None)
    # Live: the full 0-100% scale shows the climb from chance; stored curves zoom in.
    fig.update_yaxes(tickformat=".0%", range=[0, 1.0] if batches is not None else None, row=1, col=2)
    fig.update_layout(height=360, hovermode="x unified", legend=dict(orientation="h", y=-0.2), **LAYOUT)
    return fig


def board_curves_fig(series: list[dict]) -> go.Figure:
    """Validation accuracy per epoch of several runs, one line each, coloured by its group (preset or arch).

    `series`: dicts with name, group, epochs, val_acc. One legend entry per group; each line's name on hover.
    """
    groups = sorted({s["group"] for s in series})
    colour = {g: CLASS_COLORS[i % len(CLASS_COLORS)] for i, g in enumerate(groups)}
    fig = go.Figure()
    shown: set[str] = set()
    for s in series:
        fig.add_scatter(
            x=s["epochs"],
            y=s["val_acc"],
            mode="lines+markers",
            name=s["group"],
            legendgroup=s["group"],
            showlegend=s["group"] not in shown,
            line=dict(color=colour[s["group"]], width=3),
            hovertemplate=f"{html.escape(s['name'])}<br>epoch %{{x}}: %{{y:.2%}}<extra></extra>",
        )
        shown.add(s["group"])
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="validation accuracy", tickformat=".0%")
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.2, title=None), **LAYOUT)
    return fig


def prob_bars(probs: np.ndarray, k: int = 10, title: str = "") -> go.Figure:
    order = np.argsort(-probs)[:k][::-1]
    fig = go.Figure(
        go.Bar(
            x=probs[order],
            y=[CLASSES[i] for i in order],
            orientation="h",
            marker_color=[CLASS_COLORS[i] for i in order],
            text=[f"{probs[i]:.1%}" for i in order],
            textposition="outside",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%")
    fig.update_layout(title=title, height=40 + 32 * len(order), **LAYOUT)
    return fig


def prob_bars_html(probs: np.ndarray, k: int = 5, title: str = "") -> str:
    """The top-k probabilities as plain HTML bars: one line of text each (read out by screen readers,
    legible without colour), drawn by the browser at once. A plotly chart here took the browser
    tens of milliseconds per stroke on Predict."""
    rows = []
    for i in np.argsort(-probs)[:k]:
        pct = float(probs[i]) * 100
        rows.append(
            f'<div style="display:flex;align-items:center;gap:.5rem;margin:.15rem 0">'
            f'<span style="width:7.5rem">{html.escape(CLASSES[i])}</span>'
            f'<span style="flex:1;background:#e6e8ee;height:1.1rem;border-radius:3px" aria-hidden="true">'
            f'<span style="display:block;width:{pct:.1f}%;height:100%;background:{CLASS_COLORS[i]};'
            'border-radius:3px"></span></span>'
            f'<span style="width:4rem;text-align:right">{pct:.1f}%</span></div>'
        )
    head = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return f"<div>{head}{''.join(rows)}</div>"


def reliability_fig(curves: dict[str, dict]) -> go.Figure:
    """Reliability diagram: accuracy vs confidence per bin, one line per model."""
    fig = go.Figure(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(dash="dot", color="gray"))
    )
    for name, c in curves.items():
        m = c["count"] > 0
        fig.add_scatter(
            x=c["confidence"][m],
            y=c["accuracy"][m],
            mode="lines+markers",
            name=name,
            customdata=c["count"][m],
            hovertemplate="confidence %{x:.1%}, accuracy %{y:.1%} (%{customdata} images)",
        )
    fig.update_xaxes(title="confidence", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title="accuracy", tickformat=".0%", range=[0, 1])
    fig.update_layout(title="Calibration", height=380, **LAYOUT)
    return fig


def heat_overlay(img: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """28x28 gray image + [0,1] heat map -> RGB uint8 (heat in red/yellow over the image)."""
    base = np.repeat(img[..., None].astype(np.float32) / 255.0 * 0.6, 3, -1)
    h = np.clip(heat, 0, 1)[..., None]
    hot = np.concatenate([np.ones_like(h), h, np.zeros_like(h)], -1)  # red -> yellow
    return (np.clip(base * (1 - h) + hot * h, 0, 1) * 255).astype(np.uint8)
