"""The one inference Pipeline: RGB (+ intrinsics, optional mask / ROI / sensor depth) -> metric depth and a
coloured point cloud of the person. The CLI, the ROS node, the bag tool and the benchmarks all use it.

    pipeline = Pipeline.from_pretrained()              # the shipped default model
    result = pipeline([Frame(rgb, K)])[0]               # PipelineResult (see pipeline_io.py)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from rgbd_fusion_core.config import StageConfig
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.diffusion.samplers import make_sampler, sample
from rgbd_fusion_core.geometry.camera import backproject, crop_intrinsics
from rgbd_fusion_core.geometry.conditioning import rgb_to_network, stage1_condition, stage2_condition
from rgbd_fusion_core.geometry.crop import centre_box, cut, mask_box, paste, resize_area, resize_nearest, roi_box
from rgbd_fusion_core.geometry.depth_edges import remove_flying_pixels
from rgbd_fusion_core.geometry.depth_space import DepthSpace, reference_depth
from rgbd_fusion_core.geometry.mask_fill import fill_to_mask
from rgbd_fusion_core.geometry.pose_depth import blend_coarse_depth, fill_from_field, limb_field
from rgbd_fusion_core.inference.backends import make_backend, resolve_backend
from rgbd_fusion_core.inference.frame_checks import check_frame
from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig, PipelineResult
from rgbd_fusion_core.inference.targets import Target, targets_in_frame
from rgbd_fusion_core.models.checkpoint import load_stage_model
from rgbd_fusion_core.models.model_files import resolve_model_dir, resolve_onnx_dir
from rgbd_fusion_core.people.person import PersonFinder
from rgbd_fusion_core.people.pose_channels import crop_pose_channels, keypoints_to_crop, skeleton_depth
from rgbd_fusion_core.people.pose_scale import pose_reference_depth
from rgbd_fusion_core.runtime.device import resolve_device


@dataclasses.dataclass
class Stage:
    """One stage ready to sample: its config, diffusion and a denoiser ``(x_t, t, cond) -> prediction``.

    Samplers follow the model's saved sampler config (spacing, eta); a caller chooses only name and steps.
    """

    config: StageConfig
    denoiser: object
    diffusion: GaussianDiffusion
    samplers: dict = dataclasses.field(default_factory=dict)

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def sample(self, cond: torch.Tensor, sampler: str, steps: int, noise: torch.Tensor) -> torch.Tensor:
        """cond (B, C_cond, R, R), noise (B, 1, R, R) on the denoiser's device -> x_0 (B, 1, R, R) there."""
        key = (sampler, steps)
        if key not in self.samplers:
            chosen = dataclasses.replace(self.config.sampler, name=sampler, steps=steps)
            self.samplers[key] = make_sampler(chosen, self.diffusion)
        return sample(self.denoiser, self.samplers[key], cond, tuple(noise.shape), noise=noise)


class Pipeline:
    """Both stages, the person finder and the geometry. ``finder``: a ``people.person.PersonFinder`` used when a
    frame brings no mask (None: MediaPipe, built on first use); ``video``: frames come in order (the finder
    tracks people instead of searching every frame from scratch)."""

    def __init__(
        self,
        stage1: Stage,
        stage2: Stage,
        config: PipelineConfig | None = None,
        device: torch.device | str = "cpu",
        backend: str = "torch",
        finder: PersonFinder | None = None,
        video: bool = False,
    ):
        self.stage1, self.stage2 = stage1, stage2
        self.config = config or PipelineConfig()
        self.device = torch.device(device)
        self.backend = backend
        self.finder = finder
        self.owns_finder = False  # True once the Pipeline built its own (MediaPipe) finder: it follows max_people
        self.video = video
        space = stage2.config.depth_space
        if stage1.config.depth_space != space:
            raise ValueError("stage 1 and stage 2 were trained with different depth spaces; they cannot be chained")
        if self.config.threshold is not None:
            space = dataclasses.replace(space, threshold=self.config.threshold)
        self.space: DepthSpace = space

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        backend: str = "auto",
        device: str = "auto",
        config: PipelineConfig | None = None,
        finder: PersonFinder | None = None,
        video: bool = False,
        onnx: str | Path | None = None,
    ) -> Pipeline:
        """Load a model folder (None = the shipped default) on a backend: 'auto' (ONNX Runtime on the CPU when
        installed, else torch), 'torch', 'onnxruntime' or 'tensorrt'. ``onnx``: an export folder (for example
        int8 from ``rgbd-fusion quantize``, or ``"int8"``: the shipped model's) the ONNX-based backends run; it
        must have been exported from this model's weights."""
        dev = resolve_device(device)
        backend = resolve_backend(backend, dev)
        paths = resolve_model_dir(model)
        onnx = resolve_onnx_dir(onnx, model)
        stages = []
        for stage, path in zip((1, 2), paths):
            stage_config, module = load_stage_model(path, expected_stage=stage)
            source = onnx if onnx is not None and backend != "torch" else path
            denoiser = make_backend(backend, stage_config, module, dev, source=source)
            stages.append(Stage(stage_config, denoiser, GaussianDiffusion(stage_config.diffusion)))
        return cls(stages[0], stages[1], config, dev, backend, finder, video)

    def close(self) -> None:
        """Release the person finder's resources now (MediaPipe graphs and threads); the Pipeline still runs
        afterwards and builds a new finder when one is needed."""
        if self.finder is not None and hasattr(self.finder, "close"):
            self.finder.close()
        self.finder = None

    def with_config(self, config: PipelineConfig) -> Pipeline:
        """The same loaded models (and person finder) with other inference settings."""
        changed = Pipeline(self.stage1, self.stage2, config, self.device, self.backend, self.finder, self.video)
        changed.owns_finder = self.owns_finder
        return changed

    # ------------------------------------------------------------------------------------------------------
    def __call__(self, frames: Frame | list[Frame]) -> PipelineResult | list[PipelineResult]:
        single = isinstance(frames, Frame)
        results = self.run(frames if not single else [frames])
        return results[0] if single else results

    @torch.no_grad()
    def run(self, frames: list[Frame]) -> list[PipelineResult]:
        """One PipelineResult per frame; every person found in a frame runs through the stages in one batch."""
        cfg, space, dev = self.config, self.space, self.device
        low, high = self.stage1.resolution, self.stage2.resolution
        if not frames:
            return []
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name):
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + 1000 * (now - clock)
            clock = now

        # 1. Validate each frame and find its people (the given mask or ROI, or the person finder).
        frames = [check_frame(frame, where=f"frame {i}") for i, frame in enumerate(frames)]
        per_frame = [targets_in_frame(frame, cfg, self._person_finder) for frame in frames]
        jobs = [(i, target) for i, targets in enumerate(per_frame) for target in targets]
        lap("people")

        # 2. A square crop per person, cut once and resized to each stage's resolution, K folded alike.
        boxes = [self._crop_box(frames[i], target) for i, target in jobs]
        crops = [cut(frames[i].rgb, box) for (i, _), box in zip(jobs, boxes)]
        rgb_high = [resize_area(crop, high) for crop in crops]
        rgb_low = [resize_area(crop, low) for crop in crops]
        K_high = [crop_intrinsics(frames[i].K, b[0], b[1], b[2], high) for (i, _), b in zip(jobs, boxes)]
        K_low = [crop_intrinsics(frames[i].K, b[0], b[1], b[2], low) for (i, _), b in zip(jobs, boxes)]
        lap("crop")

        # 3. Stage 1 (low-res depth from RGB), or the sensor depth as the stage-2 condition; kept on the device.
        count = len(jobs)
        z_refs: list[float | None] = [None] * count
        sources: list[str] = [""] * count
        depth_low = torch.empty(count, 1, low, low, device=dev)
        predicted = []
        for j, ((i, target), box) in enumerate(zip(jobs, boxes)):
            if frames[i].sensor_depth is None:
                predicted.append(j)
                continue
            depth_low[j, 0], z_refs[j] = self._sensor_condition(frames[i], target, box, low)
            sources[j] = "sensor"
        if predicted:
            rgb = rgb_to_network(np.stack([rgb_low[j] for j in predicted])).to(dev)
            pose = None
            if self.stage1.config.conditioning == "rgb_pose":
                pose = torch.from_numpy(np.stack([self._pose_channels(jobs[j][1], boxes[j], low) for j in predicted]))
            depth_low[predicted] = self.stage1_depth(rgb, pose, self._noise(len(predicted), (1, low, low)))
        lap("stage1")

        # 4. Stage 2 (high-res from RGB-D); several samples when uncertainty is asked for.
        samples = max(1, cfg.uncertainty_samples)
        depth_high = torch.empty(count, samples, high, high)
        if count:
            rgb = rgb_to_network(np.stack(rgb_high)).to(dev).repeat_interleave(samples, dim=0)
            noise = self._noise(count, (1, high, high), samples)
            out = self.stage2_depth(rgb, depth_low.repeat_interleave(samples, dim=0), noise)
            depth_high = out.float().cpu().view(count, samples, high, high)
        depth_low = depth_low.float().cpu()
        lap("stage2")

        # 5. Per person: limit to the mask, metric scale, no flying pixels, points. 6. Gather per frame.
        people = []
        for j, ((i, target), box) in enumerate(zip(jobs, boxes)):
            frame = frames[i]
            net_high = depth_high[j, 0].numpy()
            person = self._person_mask(target, box, high)
            if person is not None:
                net_high = np.where(grow(person, cfg.mask_margin_px), net_high, -1.0).astype(np.float32)
            if z_refs[j] is None:
                z_refs[j], sources[j] = self._reference_depth(net_high, K_high[j], target, frame.K)
            depth_m = remove_flying_pixels(space.to_metres(net_high, z_refs[j]), cfg.edge_step_m)
            fill = cfg.fill_mask and person is not None
            blend = cfg.pose_depth_weight > 0 and sources[j] != "sensor"  # sensor coarse depth beats the skeleton's
            field = self._limb_field(depth_m, target, box) if fill or blend else None  # None without keypoints
            if fill:
                depth_m = fill_to_mask(depth_m, person) if field is None else fill_from_field(depth_m, person, field)
            if blend and field is not None:
                depth_m = blend_coarse_depth(depth_m, field, cfg.pose_depth_weight)
            low_m = space.to_metres(depth_low[j, 0].numpy(), z_refs[j]).astype(np.float32)
            points, pixels = backproject(depth_m, K_high[j])
            uncertainty = None
            if samples > 1:
                # std over samples; NaN where any sample has no person (or the output has none)
                uncertainty = space.to_metres(depth_high[j].numpy(), z_refs[j]).std(axis=0).astype(np.float32)
                uncertainty[~np.isfinite(depth_m)] = np.nan
            people.append(
                PipelineResult(
                    depth=depth_m,
                    K_crop=K_high[j],
                    crop_box=box,
                    rgb_crop=rgb_high[j],
                    depth_low_res=low_m,
                    K_low_res=K_low[j],
                    points=points,
                    colors=rgb_high[j][pixels[:, 0], pixels[:, 1]],
                    z_ref=float(z_refs[j]),
                    z_ref_source=sources[j],
                    nfe=(0 if frame.sensor_depth is not None else cfg.steps1) + cfg.steps2 * samples,
                    uncertainty=uncertainty,
                    person_source=target.source,
                )
            )
        results = []
        for i, frame in enumerate(frames):
            mine = [person for (k, _), person in zip(jobs, people) if k == i]
            results.append(self._frame_result(frame, mine, high, low))
        lap("metric")
        for result in results:
            result.timings_ms = {k: v / len(frames) for k, v in timings.items()}
        return results

    def _frame_result(self, frame: Frame, people: list[PipelineResult], high: int, low: int) -> PipelineResult:
        """The frame's result: the most prominent person's crop, everyone's points, depth_full with everyone
        (where people overlap, the nearer depth wins); an empty result when nobody was found."""
        shape = frame.rgb.shape[:2]
        if not people:
            box = centre_box(shape)
            return PipelineResult(
                depth=np.full((high, high), np.nan, np.float32),
                K_crop=crop_intrinsics(frame.K, box[0], box[1], box[2], high),
                crop_box=box,
                rgb_crop=resize_area(cut(frame.rgb, box), high),
                depth_low_res=np.full((low, low), np.nan, np.float32),
                K_low_res=crop_intrinsics(frame.K, box[0], box[1], box[2], low),
                points=np.zeros((0, 3), np.float32),
                colors=np.zeros((0, 3), np.uint8),
                z_ref=float("nan"),
                z_ref_source="none",
                nfe=0,
                depth_full=np.full(shape, np.nan, np.float32) if self.config.full_frame else None,
                people_found=0,
                person_source="none",
            )
        first = people[0]
        result = dataclasses.replace(
            first,
            points=np.concatenate([p.points for p in people]),
            colors=np.concatenate([p.colors for p in people]),
            nfe=sum(p.nfe for p in people),
            people_found=len(people),
            others=people[1:],
        )
        if self.config.full_frame:
            full = np.full(shape, np.nan, np.float32)
            for person in people:
                full = np.fmin(full, paste_back(person.depth, person.crop_box, shape))
            result.depth_full = full
        return result

    # --- the two stages in network space (also what evaluation scores) ---------------------------------------
    def stage1_depth(self, rgb_low: torch.Tensor, pose_low: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        """rgb_low (B, 3, r, r) in [-1, 1], pose_low (B, 3, r, r) pose channels (used by a pose-conditioned
        model, else ignored), noise (B, 1, r, r), on the device -> (B, 1, r, r) network depth."""
        cond = stage1_condition(rgb_low, pose_low, self.stage1.config.conditioning)
        return self.stage1.sample(cond, self.config.sampler1, self.config.steps1, noise)

    def stage2_depth(self, rgb_high: torch.Tensor, depth_low: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """rgb_high (B, 3, R, R) in [-1, 1], depth_low (B, 1, r, r) network depth (cleaned here: below the
        threshold -> -1), noise (B, 1, R, R) -> (B, 1, R, R) network depth; all on the device."""
        cond = stage2_condition(rgb_high, self.space.clean(depth_low))
        return self.stage2.sample(cond, self.config.sampler2, self.config.steps2, noise)

    # ------------------------------------------------------------------------------------------------------
    def _crop_box(self, frame: Frame, target: Target) -> tuple[int, int, int]:
        mode, margin = self.config.crop_mode, self.config.crop_margin
        shape = frame.rgb.shape[:2]
        if mode == "mask" or (mode == "auto" and target.mask is not None):
            if target.mask is None:
                raise ValueError("crop_mode 'mask' needs a person mask")
            return mask_box(target.mask, margin)
        if mode == "roi" or (mode == "auto" and target.roi is not None):
            if target.roi is None:
                raise ValueError("crop_mode 'roi' needs a region of interest")
            return roi_box(target.roi, shape, margin)
        return centre_box(shape)

    def _person_mask(self, target: Target, box, size: int) -> np.ndarray | None:
        """(size, size) bool: the person's mask in their crop; None when no mask limits the output."""
        if target.mask is None:
            return None
        return resize_nearest(cut(target.mask.astype(np.uint8), box), size) > 0

    def _pose_channels(self, target: Target, box, size: int) -> np.ndarray:
        """(3, size, size) pose channels of a person in their crop, built as for training (pose_channels.py)."""
        return crop_pose_channels(target.mask, target.keypoints_2d, target.keypoints_3d, box, size, self.space.scale)

    def _limb_field(self, depth_m: np.ndarray, target: Target, box) -> np.ndarray | None:
        """(size, size) metres: the depth of the person's nearest limb point (the finder's skeleton in the crop),
        aligned to depth_m (size, size) (geometry/pose_depth.py); None without keypoints or predicted depth."""
        size = depth_m.shape[0]
        keypoints = None if target.keypoints_2d is None else keypoints_to_crop(target.keypoints_2d, box, size)
        skeleton, nearer = skeleton_depth(keypoints, target.keypoints_3d, size, self.space.scale)
        return limb_field(depth_m, skeleton, -nearer / self.space.scale)

    def _person_finder(self) -> PersonFinder:
        """The person finder, built on first use (MediaPipe by default; ``Pipeline(finder=...)`` for another). Its
        own finder follows a changed ``max_people``; a finder given by the caller is used as it is."""
        if self.finder is None:
            from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

            self.finder = MediaPipeFinder(max_people=self.config.max_people, tracking=self.video)
            self.owns_finder = True
        elif self.owns_finder and self.finder.max_people != self.config.max_people:
            self.finder.set_max_people(self.config.max_people)
        return self.finder

    def _noise(self, frames: int, shape: tuple, samples: int = 1) -> torch.Tensor:
        """Starting noise (frames * samples, *shape). With a seed, every frame gets the same noise draws, so a
        frame's result does not depend on what else is in the batch (and video does not flicker from noise)."""
        generator = torch.Generator()
        if self.config.seed is None:
            generator.seed()
            return torch.randn((frames * samples, *shape), generator=generator).to(self.device)
        generator.manual_seed(self.config.seed)
        per_frame = torch.randn((samples, *shape), generator=generator)
        return per_frame.repeat(frames, *([1] * len(shape))).to(self.device)

    def _sensor_condition(self, frame: Frame, target: Target, box, size: int) -> tuple[torch.Tensor, float]:
        """Sensor depth in the crop -> ((size, size) network-space depth, z_ref). The person is the mask when given,
        else the sensor pixels within the depth window around the median depth of the crop's central area."""
        depth = cut(frame.sensor_depth, box)  # metres, NaN = none (check_frame converted it)
        mask = cut(target.mask.astype(np.uint8), box) > 0 if target.mask is not None else None
        z_ref = reference_depth(depth, mask) if mask is not None else centre_reference_depth(depth)
        if not np.isfinite(z_ref):
            raise ValueError("sensor depth: no valid depth on the person inside the crop")
        if mask is None:
            mask = np.abs(depth - z_ref) < self.space.window_m / 2
        low = resize_nearest(np.where(mask, depth, 0).astype(np.float32), size)
        return torch.from_numpy(self.space.to_network(low, z_ref)).to(self.device), z_ref

    def _reference_depth(self, net_high: np.ndarray, K_high: np.ndarray, target: Target, K: np.ndarray):
        """z_ref without a sensor -> (metres, source). ``pose``: the finder's metric 3D keypoints fitted to its 2D
        keypoints through the frame's K (people.pose_scale), works for partial views; ``height_prior``: the
        height in pixels of the largest connected foreground region, assumed ``person_height_m`` tall
        (z = fy * H / h_px); ``fixed``: the configured distance. ``auto`` tries pose, then the height prior."""
        cfg = self.config
        if cfg.reference_depth == "sensor":
            raise ValueError("reference_depth 'sensor' needs a sensor depth image")
        if cfg.reference_depth == "fixed":
            return cfg.fixed_distance_m, "fixed"
        if cfg.reference_depth in ("auto", "pose") and target.keypoints_2d is not None:
            z_ref = pose_reference_depth(
                target.keypoints_2d, target.keypoints_3d, K, surface_offset_m=cfg.pose_surface_offset_m
            )
            if z_ref is not None:
                return z_ref, "pose"
        height_px = largest_region_height(net_high > self.space.threshold)
        if height_px < 2:
            return cfg.fixed_distance_m, "fixed"  # no person found: nothing to scale by
        return float(K_high[1, 1] * cfg.person_height_m / height_px), "height_prior"


def grow(mask: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) bool mask grown by ``margin`` pixels (elliptical): where a masked person may have depth."""
    if margin <= 0:
        return mask
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return cv2.dilate(mask.astype(np.uint8), disc) > 0


def largest_region_height(mask: np.ndarray) -> int:
    """Height in pixels of the bounding box of the largest 8-connected region of a boolean (H, W) mask."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return 0
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return int(stats[largest, cv2.CC_STAT_HEIGHT])


def centre_reference_depth(depth: np.ndarray, fraction: float = 0.3) -> float:
    """Median valid depth of the central ``fraction`` of a square crop (where the person is centred)."""
    size = depth.shape[0]
    lo, hi = int(size * (0.5 - fraction / 2)), int(np.ceil(size * (0.5 + fraction / 2)))
    return reference_depth(depth[lo:hi, lo:hi])


def paste_back(depth_crop: np.ndarray, box: tuple[int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """A crop-space depth (S, S) back in the input frame (H, W): resized to the box by nearest neighbour
    (z along the optical axis does not change under crop and resize), NaN outside the person."""
    return paste(resize_nearest(depth_crop, box[2]), box, shape)
