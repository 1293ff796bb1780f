"""UNet denoiser (stage 2 in the paper): encoder, and a decoder that takes the same-level skip at each level.

forward(x_t (B, C_in, H, W), t (B,) float timesteps, cond (B, C_cond, H, W)) -> (B, C_out, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rgbd_fusion_core.config import ModelConfig
from rgbd_fusion_core.models.blocks import Level, make_attention
from rgbd_fusion_core.models.encoder import Encoder, OutputHead, attention_kind, level_channels


class UNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        channels = level_channels(config)
        emb_dim = 4 * config.base_channels
        self.decoder = nn.ModuleDict()
        for i in reversed(range(len(channels) - 1)):
            attention = make_attention(attention_kind(config, i), channels[i], config.groups)
            self.decoder[str(i)] = Level(
                channels[i + 1] + channels[i],
                channels[i],
                config.num_res_blocks,
                emb_dim,
                config.groups,
                config.dropout,
                attention,
            )
        self.head = OutputHead(config, channels[0])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        features, emb = self.encoder(x_t, t, cond)
        h = features[-1]
        for i in reversed(range(len(features) - 1)):
            h = F.interpolate(h, size=features[i].shape[-2:], mode="nearest")
            h = self.decoder[str(i)](torch.cat([h, features[i]], dim=1), emb)
        return self.head(h, self.encoder.io)
