"""The encoder and output head shared by the UNet and UNet3+ denoisers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rgbd_fusion_core.config import ModelConfig
from rgbd_fusion_core.models.blocks import Level, SpaceToDepthIO, TimeEmbedding, group_norm, make_attention


def level_channels(config: ModelConfig) -> list[int]:
    return [config.base_channels * m for m in config.channel_mults]


def attention_kind(config: ModelConfig, level: int) -> str | None:
    """Full attention at the bottleneck (if enabled), linear attention at the chosen levels, else none."""
    last = len(config.channel_mults) - 1
    if level == last and config.bottleneck_attention:
        return "full"
    return "linear" if level in config.attention_levels else None


class Encoder(nn.Module):
    """(x_t, t, cond) -> list of per-level features [(B, C_i, H / 2**i, W / 2**i)] and the time embedding.

    Level i has ``num_res_blocks`` AdaGN residual blocks (plus attention where configured); levels are joined
    by 2x2 average pooling. The last level is the bottleneck.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.io = SpaceToDepthIO(config.space_to_depth)
        channels = level_channels(config)
        emb_dim = 4 * config.base_channels
        self.time = TimeEmbedding(config.base_channels)
        in_ch = (config.in_channels + config.cond_channels) * config.space_to_depth**2
        self.conv_in = nn.Conv2d(in_ch, channels[0], 3, padding=1)
        self.levels = nn.ModuleList()
        previous = channels[0]
        for i, ch in enumerate(channels):
            attention = make_attention(attention_kind(config, i), ch, config.groups)
            self.levels.append(
                Level(previous, ch, config.num_res_blocks, emb_dim, config.groups, config.dropout, attention)
            )
            previous = ch

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor):
        emb = self.time(t)
        h = self.conv_in(self.io.inputs(x_t, cond))
        features = []
        for i, level in enumerate(self.levels):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = level(h, emb)
            features.append(h)
        return features, emb


class OutputHead(nn.Module):
    """GN -> GELU -> 3x3 conv to ``out_channels * factor**2``, then pixel shuffle; zero-initialised."""

    def __init__(self, config: ModelConfig, in_ch: int):
        super().__init__()
        self.norm = group_norm(in_ch, config.groups)
        self.conv = nn.Conv2d(in_ch, config.out_channels * config.space_to_depth**2, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, h: torch.Tensor, io: SpaceToDepthIO) -> torch.Tensor:
        return io.outputs(self.conv(F.gelu(self.norm(h))))
