"""UNet3+ denoiser (stage 1 in the paper; Huang et al. 2020, full-scale skip connections).

Every decoder level i aggregates ALL encoder levels and all deeper decoder levels, each resized to level i
(average pooling from finer levels, bilinear upsampling from coarser ones) and projected by a 3x3 conv to
``unet3plus_channels``; the concatenation is fused by a 3x3 conv and refined by AdaGN residual blocks.
The deepest decoder "level" is the encoder bottleneck itself.

forward(x_t (B, C_in, H, W), t (B,) float timesteps, cond (B, C_cond, H, W)) -> (B, C_out, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rgbd_fusion_core.config import ModelConfig
from rgbd_fusion_core.models.blocks import Level, make_attention
from rgbd_fusion_core.models.encoder import Encoder, OutputHead, attention_kind, level_channels


def resize_to(x: torch.Tensor, level_from: int, level_to: int) -> torch.Tensor:
    """Move a feature map from one pyramid level to another (level i has resolution H / 2**i)."""
    if level_from < level_to:
        return F.avg_pool2d(x, 2 ** (level_to - level_from))
    if level_from > level_to:
        return F.interpolate(x, scale_factor=2 ** (level_from - level_to), mode="bilinear", align_corners=False)
    return x


class DecoderLevel(nn.Module):
    def __init__(self, config: ModelConfig, level: int, encoder_channels: list[int], deeper_channels: list[int]):
        super().__init__()
        agg = config.unet3plus_channels or config.base_channels
        out_ch = encoder_channels[level]
        sources = encoder_channels + deeper_channels
        self.project = nn.ModuleList(nn.Conv2d(ch, agg, 3, padding=1) for ch in sources)
        self.fuse = nn.Conv2d(agg * len(sources), out_ch, 3, padding=1)
        attention = make_attention(attention_kind(config, level), out_ch, config.groups)
        self.refine = Level(
            out_ch, out_ch, config.num_res_blocks, 4 * config.base_channels, config.groups, config.dropout, attention
        )

    def forward(self, resized_sources: list[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        h = torch.cat([proj(x) for proj, x in zip(self.project, resized_sources)], dim=1)
        return self.refine(self.fuse(F.gelu(h)), emb)


class UNet3Plus(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        channels = level_channels(config)
        last = len(channels) - 1
        self.decoder = nn.ModuleDict()
        for i in reversed(range(last)):
            deeper = [channels[j] for j in range(i + 1, last)]  # deeper decoder levels (bottleneck is an encoder one)
            self.decoder[str(i)] = DecoderLevel(config, i, channels, deeper)
        self.head = OutputHead(config, channels[0])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        features, emb = self.encoder(x_t, t, cond)
        last = len(features) - 1
        decoded: dict[int, torch.Tensor] = {}
        for i in reversed(range(last)):
            sources = [resize_to(f, j, i) for j, f in enumerate(features)]
            sources += [resize_to(decoded[j], j, i) for j in range(i + 1, last)]
            decoded[i] = self.decoder[str(i)](sources, emb)
        return self.head(decoded[0], self.encoder.io)
