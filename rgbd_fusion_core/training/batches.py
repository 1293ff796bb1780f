"""Turning dataset samples into (x0, cond) training pairs, and a resumable, shardable batch order."""

from __future__ import annotations

import torch

from rgbd_fusion_core.config import StageConfig
from rgbd_fusion_core.geometry.conditioning import stage1_condition, stage2_condition
from rgbd_fusion_core.training.augment import augment_depth


def epoch_batches(num_samples: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world: int = 1):
    """Index lists for one epoch: a seeded permutation, sharded rank::world, incomplete last batch dropped."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_samples, generator=generator)[rank::world].tolist()
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def training_pair(batch: dict, config: StageConfig, generator: torch.Generator):
    """(x0, cond) for one stage from a collated dataset batch (all randomness from ``generator``).

    Stage 1: x0 = depth64 (B,1,64,64), cond = stage1_condition(rgb64, pose64) (B,3 or 6,64,64); with
    ``augment.keypoint_dropout`` a share of samples loses its skeleton channels (mask kept).
    Stage 2: x0 = depth at ``config.resolution`` (B,1,R,R), cond = stage2_condition(rgb at R, augmented depth64),
    optionally cut to random aligned crops of ``train.crop_size``.
    """
    if config.stage == 1:
        pose = batch.get("pose64")
        if config.conditioning != "rgb" and pose is None:
            raise ValueError("conditioning 'rgb_pose' needs an annotated dataset (run `rgbd-fusion annotate DIR`)")
        if pose is not None and config.augment.keypoint_dropout > 0:
            drop = torch.rand(pose.shape[0], generator=generator) < config.augment.keypoint_dropout
            pose = pose.clone()
            pose[drop, 1] = -1.0
            pose[drop, 2] = 0.0
        return batch["depth64"], stage1_condition(batch["rgb64"], pose, config.conditioning)
    res = config.resolution
    depth_low = augment_depth(batch["depth64"], config.augment, config.depth_space.threshold, generator)
    x0, cond = batch[f"depth{res}"], stage2_condition(batch[f"rgb{res}"], depth_low)
    crop = config.train.crop_size
    if crop and crop < res:
        offsets = torch.randint(0, res - crop + 1, (x0.shape[0], 2), generator=generator).tolist()
        x0 = torch.stack([x[:, y : y + crop, x_ : x_ + crop] for x, (y, x_) in zip(x0, offsets)])
        cond = torch.stack([c[:, y : y + crop, x_ : x_ + crop] for c, (y, x_) in zip(cond, offsets)])
    return x0, cond
