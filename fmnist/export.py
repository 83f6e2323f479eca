"""Export a model to ONNX: a graph anyone can run without this project, PyTorch or its constants.

The graph takes float32 pixels of shape (N, 1, 28, 28) in [0, 1], a light object on black as in
the dataset, and returns the logits (N, 10). The normalisation (and, for models that use it, the
mirror-image averaging) is inside the graph. The model card goes into the ONNX metadata
(`fmnist_card`), with the class names (`classes`) and the temperature (`temperature`), so
calibrated probabilities are softmax(logits / temperature).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch
from torch import nn

from .checkpoints import Checkpoint, write_atomic
from .data import CLASSES
from .models import tta_logits
from .runtime import MEAN, STD

OPSET = 17


class ExportError(RuntimeError):
    """The model cannot be exported; the message is one line for the user."""


class PixelsToLogits(nn.Module):
    """[0,1] pixels (N, 1, 28, 28) -> logits, with the dataset's normalisation built in."""

    def __init__(self, model: nn.Module, tta_flip: bool = False):
        super().__init__()
        self.model, self.tta_flip = model, tta_flip
        self.register_buffer("mean", torch.tensor(float(MEAN)))
        self.register_buffer("std", torch.tensor(float(STD)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean) / self.std
        return tta_logits(self.model, x, self.tta_flip)


def onnx_bytes(ckpt: Checkpoint) -> bytes:
    """The checkpoint as an ONNX model (bytes), its card in the metadata."""
    import onnx

    wrapper = PixelsToLogits(ckpt.model.eval(), ckpt.tta_flip).eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (torch.rand(2, 1, 28, 28),),
                buf,
                input_names=["pixels"],
                output_names=["logits"],
                dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as e:  # an operator ONNX lacks, say: one line, not a traceback
        raise ExportError(f"{ckpt.name} cannot be exported to ONNX: {type(e).__name__}: {str(e)[:200]}") from None
    model = onnx.load_from_string(buf.getvalue())
    meta = {
        "fmnist_card": json.dumps(ckpt.card, default=str),
        "classes": json.dumps(CLASSES),
        "temperature": str(ckpt.temperature or 1.0),
        "input": "pixels: float32 (N, 1, 28, 28) in [0, 1], light object on black; normalisation is inside",
        "output": "logits: float32 (N, 10); probabilities = softmax(logits / temperature)",
    }
    for k, v in meta.items():
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, k: v})
    model.producer_name = "fmnist"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(ckpt: Checkpoint, out: str | os.PathLike) -> Path:
    """Write the ONNX model to `out` (atomically: a temp file, then a rename)."""
    out = Path(out)
    if out.suffix != ".onnx":
        out = out.with_name(out.name + ".onnx")
    return write_atomic(out, onnx_bytes(ckpt))
