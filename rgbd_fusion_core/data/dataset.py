"""The torch Dataset over a dataset folder (see ``rgbd_fusion_core.data.format``).

Each item is a dict of float32 tensors at both resolutions the two stages use:

- ``rgb64`` (3, 64, 64), ``rgb256`` (3, 256, 256): RGB scaled to [-1, 1].
- ``depth64`` (1, 64, 64), ``depth256`` (1, 256, 256): depth in network space (``DepthSpace.to_network``),
  background (mask 0 or no depth) exactly -1.
- ``mask64``, ``mask256`` (1, H, W): person mask in {0, 1} (the mask file, or depth > 0 when there is none).
- ``z_ref``: scalar, metres: median foreground depth of the 256 depth map, used for BOTH resolutions.
- ``K64``, ``K256`` (3, 3): pinhole intrinsics of each image.
- ``pose64`` (3, 64, 64): the person finder's mask and skeleton channels (``people/pose_channels.py``), only
  when the dataset is annotated (format version 2, ``rgbd-fusion annotate``).
- ``id``, ``subject``: strings.

A dataset with only the 256 resolution gets its 64 x 64 view derived here: RGB by area averaging
(``cv2.INTER_AREA``); mask = 4 x 4 blocks at least half covered; depth = per block, the mean of the block's valid
foreground depths (0 where the block is not in the mask or holds no valid depth), which blends depth across
discontinuities inside a block; K scaled by 1/4 about the pixel edges (``camera.scale_intrinsics``).
Index structure and file existence are checked at construction; pixel data (bit depth, sizes, readability)
when an item is loaded, with errors naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rgbd_fusion_core.data.format import SampleEntry, read_index
from rgbd_fusion_core.geometry.camera import scale_intrinsics
from rgbd_fusion_core.geometry.conditioning import rgb_to_network
from rgbd_fusion_core.geometry.crop import resize_area
from rgbd_fusion_core.geometry.depth_space import DepthSpace, reference_depth
from rgbd_fusion_core.io.imageio import read_depth_m, read_mask, read_rgb
from rgbd_fusion_core.people.pose_channels import crop_pose_channels

HIGH_RES = 256
LOW_RES = 64
DEFAULT_DEPTH_SPACE = DepthSpace()


def downsample_depth_block_mean(depth_m: np.ndarray, mask: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-downsample (H, W) metres and mask by ``factor``: (depth (H/f, W/f) float32, mask bool).

    Mask: blocks with at least half their pixels in the mask. Depth: mean of the valid (mask and depth > 0)
    pixels of each masked block, 0 elsewhere.
    """
    height, width = depth_m.shape
    blocks = (height // factor, factor, width // factor, factor)
    valid = (mask & (depth_m > 0)).reshape(blocks)
    coverage = mask.reshape(blocks).mean(axis=(1, 3))
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, depth_m.reshape(blocks), 0.0).sum(axis=(1, 3))
    low_mask = (coverage >= 0.5) & (count > 0)
    low_depth = np.where(low_mask, total / np.maximum(count, 1), 0.0).astype(np.float32)
    return low_depth, low_mask


class RGBDDataset(Dataset):
    """Samples of one split (``train``, ``test``, any split named in the index, or ``all``)."""

    def __init__(
        self, root, split: str = "train", depth_space: DepthSpace = DEFAULT_DEPTH_SPACE, augment_flip: bool = False
    ):
        self.index = read_index(Path(root))
        if HIGH_RES not in self.index.resolutions:
            raise ValueError(
                f"{self.index.root / 'dataset.json'}: needs resolution {HIGH_RES}, has {list(self.index.resolutions)}"
            )
        self.samples: list[SampleEntry] = self.index.split_samples(split)
        self.split = split
        self.depth_space = depth_space
        self.augment_flip = augment_flip

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, sample: SampleEntry, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, depth (H, W) float32 metres, mask (H, W) bool) of one resolution, validated."""
        files = {kind: self.index.root / rel for kind, rel in sample.files[resolution].items()}
        rgb = read_rgb(files["rgb"])
        depth = read_depth_m(files["depth"], self.index.depth_unit)
        mask = read_mask(files["mask"]) if "mask" in files else depth > 0
        expected = (resolution, resolution)
        for kind, shape in (("rgb", rgb.shape[:2]), ("depth", depth.shape), ("mask", mask.shape)):
            if kind in files and shape != expected:
                raise ValueError(
                    f"sample {sample.id}: {kind} is {shape[1]}x{shape[0]}, expected {resolution}x{resolution}: "
                    f"{files[kind]}"
                )
        return rgb, depth, mask

    def __getitem__(self, item: int) -> dict:
        sample = self.samples[item]
        views = {HIGH_RES: self._load(sample, HIGH_RES)}
        K = {HIGH_RES: sample.K[HIGH_RES]}
        if LOW_RES in sample.files:
            views[LOW_RES] = self._load(sample, LOW_RES)
            K[LOW_RES] = sample.K[LOW_RES]
        else:
            rgb, depth, mask = views[HIGH_RES]
            factor = HIGH_RES // LOW_RES
            low_depth, low_mask = downsample_depth_block_mean(depth, mask, factor)
            views[LOW_RES] = (resize_area(rgb, LOW_RES), low_depth, low_mask)
            K[LOW_RES] = scale_intrinsics(K[HIGH_RES], HIGH_RES, LOW_RES)
        z_ref = reference_depth(views[HIGH_RES][1], views[HIGH_RES][2])
        if not np.isfinite(z_ref):
            raise ValueError(
                f"sample {sample.id}: no valid foreground depth: {self.index.root / sample.files[HIGH_RES]['depth']}"
            )
        flip = self.augment_flip and bool(torch.rand(()) < 0.5)
        out = {"id": sample.id, "subject": sample.subject, "z_ref": torch.tensor(z_ref, dtype=torch.float32)}
        if sample.person is not None:
            pose = self._pose(sample, LOW_RES)
            out[f"pose{LOW_RES}"] = torch.from_numpy(np.ascontiguousarray(pose[..., ::-1] if flip else pose))
        for resolution, (rgb, depth, mask) in views.items():
            intrinsics = np.array(K[resolution], dtype=np.float64)
            if flip:
                rgb, depth, mask = rgb[:, ::-1], depth[:, ::-1], mask[:, ::-1]
                intrinsics[0, 2] = resolution - 1 - intrinsics[0, 2]
            network_depth = self.depth_space.to_network(depth, z_ref, mask)
            out[f"rgb{resolution}"] = rgb_to_network(rgb)
            out[f"depth{resolution}"] = torch.from_numpy(np.ascontiguousarray(network_depth, np.float32))[None]
            out[f"mask{resolution}"] = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None]
            out[f"K{resolution}"] = torch.from_numpy(intrinsics.astype(np.float32))
        return out

    def _pose(self, sample: SampleEntry, size: int) -> np.ndarray:
        """(3, size, size) pose channels from the sample's finder annotation (all "nobody" when it found none)."""
        person, box, scale = sample.person, (0, 0, HIGH_RES), self.depth_space.scale
        if not person["found"]:
            return crop_pose_channels(None, None, None, box, size, scale)
        mask = read_mask(self.index.root / person["mask"])
        keypoints_2d = np.asarray(person["keypoints_2d"], np.float32)
        return crop_pose_channels(mask, keypoints_2d, np.asarray(person["keypoints_3d"]), box, size, scale)
