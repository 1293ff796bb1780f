"""Building blocks shared by the UNet and UNet3+ denoisers: time embedding, AdaGN residual blocks, attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) float timesteps -> (B, dim) (Vaswani et al.; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class AdaGNResBlock(nn.Module):
    """Residual block with adaptive group norm: ``GN(h) * (1 + scale) + shift``, (scale, shift) from the time
    embedding (Dhariwal & Nichol 2021). (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        scale, shift = self.emb(F.gelu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.gelu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention over all positions with a residual; subclasses say how q, k, v are combined.
    (B, C, H, W) -> same."""

    def __init__(self, channels: int, groups: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        return x + self.out(self.attend(q, k, v).reshape(b, c, h, w))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v: (B, heads, d, N) -> (B, heads, d, N)."""
        raise NotImplementedError


class LinearAttention(Attention):
    """Linear attention (Shen et al. 2021): softmax over features for q and over positions for k; O(N)."""

    def attend(self, q, k, v):
        q = q.softmax(dim=-2) * q.shape[2] ** -0.5
        context = torch.einsum("bhdn,bhen->bhde", k.softmax(dim=-1), v)
        return torch.einsum("bhde,bhdn->bhen", context, q)


class SelfAttention(Attention):
    """Full softmax self-attention (scaled dot product); O(N^2), used at the small bottleneck."""

    def attend(self, q, k, v):
        return F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)).transpose(
            -1, -2
        )


class TimeEmbedding(nn.Module):
    """(B,) float timesteps -> (B, 4 * base) embedding through a small MLP."""

    def __init__(self, base: int):
        super().__init__()
        self.base = base
        self.mlp = nn.Sequential(nn.Linear(base, 4 * base), nn.GELU(), nn.Linear(4 * base, 4 * base))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.base))


class Level(nn.Module):
    """A stack of residual blocks at one resolution, optionally followed by attention."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, emb_dim: int, groups: int, dropout: float, attention):
        super().__init__()
        self.blocks = nn.ModuleList(
            AdaGNResBlock(in_ch if i == 0 else out_ch, out_ch, emb_dim, groups, dropout) for i in range(blocks)
        )
        self.attention = attention if attention is not None else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, emb)
        return self.attention(x)


def make_attention(kind: str | None, channels: int, groups: int) -> nn.Module | None:
    if kind is None:
        return None
    return {"linear": LinearAttention, "full": SelfAttention}[kind](channels, groups)


class SpaceToDepthIO(nn.Module):
    """Wraps a network body: concatenate (x_t, cond), pixel-unshuffle by ``factor`` at the input and
    pixel-shuffle at the output, so a 256x256 stage runs its convolutions at 256/factor."""

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def inputs(self, x_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x_t, cond], dim=1)
        if self.factor > 1 and torch.onnx.is_in_onnx_export():
            return unshuffle_conv(x, self.factor)  # no standalone 6-D transpose in the exported graph
        return F.pixel_unshuffle(x, self.factor) if self.factor > 1 else x

    def outputs(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(y, self.factor) if self.factor > 1 else y


def unshuffle_conv(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.pixel_unshuffle(x, factor)`` as a stride-``factor`` convolution with one-hot weights (identical values:
    each output is one input times 1). Output channel ``c * f * f + i * f + j`` takes pixel (i, j) of channel c."""
    c_in = int(x.shape[1])  # a constant in a traced graph: the channel count is fixed, only the batch varies
    weight = torch.eye(c_in * factor * factor, dtype=x.dtype, device=x.device).reshape(-1, c_in, factor, factor)
    return F.conv2d(x, weight, stride=factor)
