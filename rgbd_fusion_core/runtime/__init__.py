"""Runtimes that run one stage's denoiser: eager torch, ONNX Runtime, TensorRT. Every one is called the same way::

    prediction = denoiser(x_t, t, cond)

x_t (B, C_in, H, W), t (B,) timestep indices and cond (B, C_cond, H, W) are float32 torch tensors on any
device; the prediction (B, C_out, H, W) float32 comes back on ``denoiser.device``. The ONNX-based runtimes read
the graph contract in ``graph_contract``; ``rgbd_fusion_core.inference.backends`` picks one.
"""

from __future__ import annotations

from typing import Protocol

import torch

BACKENDS = ("torch", "onnxruntime", "tensorrt")
BACKEND_CHOICES = ("auto", *BACKENDS)  # "auto": the fastest installed (inference.backends.resolve_backend)


class Denoiser(Protocol):
    device: torch.device

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor: ...
