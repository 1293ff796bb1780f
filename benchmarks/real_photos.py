"""Old vs new pipeline on real photos (and a short video crop), scored against person masks: prints JSON.

    python benchmarks/real_photos.py PHOTO_DIR [--masks MASK_DIR] [--video vtest.avi --frames 30
        --video-crop x,y,w,h --video-start 0 --video-scale 1] [--figure OUT.jpg] [--limit N] [--steps1 S --steps2 S]

Three configurations run on every image: ``old`` = PipelineConfig(person_source="none",
reference_depth="height_prior") (centre crop, no mask, height prior), ``new`` = PipelineConfig() (MediaPipe
person finder, mask-first, pose scale, flying-pixel filter, mask filled from the skeleton) and ``unfilled`` =
PipelineConfig(fill_mask=False) (the network's own silhouette inside the mask), all with full_frame=True.

Per image and mode:
- ``iou``, ``precision``: the predicted person pixels (depth_full finite) against the reference mask: the
  hand-drawn ``MASK_DIR/NAME.png`` (nonzero = person) or ``MASK_DIR/NAME.json`` (polygons, as in
  benchmarks/hand_masks/) when given, else the union of the finder's masks
  (``"reference": "finder mask"``; circular for ``new``, which cuts its output to that mask and fills it, and
  for ``unfilled`` a measure of how much of the mask the network fills).
  ``outside_finder_share``: the share of predicted pixels outside the finder's masks.
- ``order_agreement``: over pairs of keypoints whose finder 3D depths differ by >= 10 cm (visible keypoints
  inside the person and on predicted depth only), the share whose predicted depths (median of a 7x7 window at
  the 2D keypoint) are in the same order; ``order_pairs``: how many pairs were compared.
- ``shoulder_width_m``: 3D distance between the back-projected predicted depth at the two shoulders of the most
  prominent person (both visible, depth at both); ``shoulder_widths_m``: every person's, ``shoulder_status``: why
  one is missing ("not visible", "no depth": the prediction has no person pixels at a visible shoulder).
- ``people_found``, ``z_ref``, ``z_ref_source``, ``points``.
On the video (``new`` and ``old`` only; consecutive frames, optionally cropped around one person and upscaled, the
pipeline in video mode): the same means, plus ``z_ref_jitter_m`` (median |z_ref(t) - z_ref(t-1)|) and
``depth_jitter_m`` (median over frame pairs of the median |depth(t) - depth(t-1)| on pixels predicted as person in
both frames). The finder is run once per frame (the new pipeline's own calls are recorded) and its people are the
reference of every mode. The keypoint depth order of ``new`` is partly circular too: filled pixels take the depth
of the finder's skeleton, whose 3D keypoints are the order's reference. ``--figure``: a contact sheet, one row per
photo: RGB | old depth | old side view | new depth | new side view (side view: the cloud seen from the right, depth
to the right, orthographic).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from rgbd_fusion_core.evaluation.keypoint_order import VISIBLE, depth_near, order_agreement
from rgbd_fusion_core.evaluation.shoulder_width import shoulder_width

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MODES = ("new", "unfilled", "old")  # new first: its finder call gives the people every mode is scored on
VIDEO_MODES = ("new", "old")  # one finder call per frame: a tracking finder must see each frame once


class RecordingFinder:
    """Wraps a person finder and keeps what it found in the last call (the pipeline's own finder calls)."""

    def __init__(self, finder):
        self.finder = finder
        self.last: list = []

    def find(self, rgb):
        self.last = self.finder.find(rgb)
        return self.last


def configs(args) -> dict:
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig

    common = {"full_frame": True, "steps1": args.steps1, "steps2": args.steps2}
    return {
        "old": PipelineConfig(person_source="none", reference_depth="height_prior", **common),
        "new": PipelineConfig(**common),
        "unfilled": PipelineConfig(fill_mask=False, **common),
    }


def read_reference_mask(folder: Path, stem: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The hand-drawn person mask (H, W) bool of photo ``stem``: ``folder/stem.png`` (nonzero = person) or
    ``folder/stem.json`` (polygons: the union of ``person`` minus the union of ``not_person``, pixel coordinates
    of a photo of ``size`` [width, height]); None when neither exists."""
    png, polygons = folder / f"{stem}.png", folder / f"{stem}.json"
    if png.exists():
        mask = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        if mask is None or mask.shape != shape:
            raise ValueError(f"{png}: not a readable {shape[1]}x{shape[0]} mask image")
        return mask > 0
    if not polygons.exists():
        return None
    drawing = json.loads(polygons.read_text())
    if list(drawing.get("size", [])) != [shape[1], shape[0]]:
        raise ValueError(f"{polygons}: size {drawing.get('size')} is not the photo's {[shape[1], shape[0]]}")
    mask = np.zeros(shape, np.uint8)
    for key, value in (("person", 1), ("not_person", 0)):
        for polygon in drawing.get(key, []):
            cv2.fillPoly(mask, [np.round(np.asarray(polygon, np.float64)).astype(np.int32)], value)
    return mask > 0


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def order_against_finder(depth: np.ndarray, people: list) -> tuple[int, int]:
    """(agreeing pairs, compared pairs) over every person's visible keypoints inside their mask, against the
    finder's 3D keypoint depths."""
    agree = total = 0
    for person in people:
        if person.keypoints_2d is None or person.keypoints_3d is None:
            continue
        h, w = person.mask.shape
        reference, predicted = [], []
        for k2, k3 in zip(person.keypoints_2d, person.keypoints_3d):
            x, y, vis = (float(v) for v in k2)
            xi, yi = int(round(x)), int(round(y))
            if vis < VISIBLE or not (0 <= xi < w and 0 <= yi < h) or not person.mask[yi, xi]:
                continue
            reference.append(float(k3[2]))
            predicted.append(depth_near(depth, x, y))
        a, t = order_agreement(reference, predicted)
        agree, total = agree + a, total + t
    return agree, total


def score(result, people: list, reference: np.ndarray | None, K: np.ndarray) -> dict:
    """The metrics of one result (see the module docstring)."""
    depth = result.depth_full
    predicted = np.isfinite(depth)
    finder_mask = np.zeros(predicted.shape, bool)
    for person in people:
        finder_mask |= person.mask
    ref = finder_mask if reference is None else reference
    n_pred = int(predicted.sum())
    inter, union = int((predicted & ref).sum()), int((predicted | ref).sum())
    agree, pairs = order_against_finder(depth, people)
    shoulders = [shoulder_width(depth, K, p.keypoints_2d) for p in people]
    widths = [w for w, _ in shoulders]
    return {
        "iou": inter / union if union else None,
        "precision": inter / n_pred if n_pred else None,
        "outside_finder_share": float((predicted & ~finder_mask).sum()) / n_pred if n_pred else None,
        "order_agreement": agree / pairs if pairs else None,
        "order_pairs": pairs,
        "shoulder_width_m": widths[0] if widths else None,
        "shoulder_widths_m": widths,
        "shoulder_status": [status for _, status in shoulders],
        "people_found": int(result.people_found),
        "finder_people": len(people),
        "z_ref": float(result.z_ref) if np.isfinite(result.z_ref) else None,
        "z_ref_source": result.z_ref_source,
        "points": int(len(result.points)),
        "predicted_px": n_pred,
    }


def mean_of(rows: list[dict]) -> dict:
    """Mean of every numeric metric over the rows where it is defined (n: how many)."""
    keys = ("iou", "precision", "outside_finder_share", "order_agreement", "shoulder_width_m", "z_ref")
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
        out[f"{key}_n"] = len(values)
    every = [w for r in rows for w in r.get("shoulder_widths_m", []) if w is not None]
    out["shoulder_width_all_people_m"] = float(np.mean(every)) if every else None
    out["shoulder_width_all_people_n"] = len(every)
    out["people_found"] = float(np.mean([r["people_found"] for r in rows])) if rows else None
    return out


def side_view(points: np.ndarray, colors: np.ndarray, height: int) -> np.ndarray:
    """(height, height, 3) uint8: the cloud seen from its right (horizontal = depth z, vertical = y),
    orthographic with equal scale on both axes, nearest-to-viewer (largest x) wins. White background."""
    image = np.full((height, height, 3), 255, np.uint8)
    if len(points) == 0:
        return image
    lo = np.percentile(points, 1, axis=0)
    hi = np.percentile(points, 99, axis=0)
    span = max(hi[1] - lo[1], hi[2] - lo[2], 1e-3) * 1.1
    scale = (height - 4) / span
    cz, cy = (lo[2] + hi[2]) / 2, (lo[1] + hi[1]) / 2
    u = np.round((points[:, 2] - cz) * scale + height / 2).astype(int)
    v = np.round((points[:, 1] - cy) * scale + height / 2).astype(int)
    order = np.argsort(points[:, 0])  # smallest x first: points on the viewer's side (right) overwrite
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u[order] + du, v[order] + dv
            ok = (uu >= 0) & (uu < height) & (vv >= 0) & (vv < height)
            image[vv[ok], uu[ok]] = colors[order][ok]
    # a faint scale bar: 1 m along the depth axis
    bar = int(round(scale))
    if 4 < bar < height - 8:
        image[height - 4 : height - 2, 4 : 4 + bar] = (90, 90, 90)
    return image


def figure_row(rgb: np.ndarray, results: dict, label: str, row_height: int) -> np.ndarray:
    from rgbd_fusion_core.io.imageio import colorize_depth

    h, w = rgb.shape[:2]
    width = max(1, int(round(w * row_height / h)))

    def fit(image, interpolation=cv2.INTER_AREA):
        return cv2.resize(image, (width, row_height), interpolation=interpolation)

    tiles = [fit(rgb)]
    for mode, result in results.items():
        depth = fit(colorize_depth(result.depth_full), cv2.INTER_NEAREST)
        cv2.putText(depth, mode, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [depth, side_view(result.points, result.colors, row_height)]
    row = np.concatenate(tiles, axis=1)
    cv2.putText(row, label, (4, row_height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return row


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def read_video(path: str, start: int, count: int, crop, scale: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Consecutive RGB frames (cropped, resized) and their intrinsics (the default guess for the full frame,
    moved by the crop and scaled)."""
    from rgbd_fusion_core.io.camera_file import default_intrinsics

    capture = cv2.VideoCapture(path)
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    full_shape = None
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        full_shape = bgr.shape[:2]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if crop:
            x, y, w, h = crop
            rgb = rgb[y : y + h, x : x + w]
        if scale != 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        frames.append(np.ascontiguousarray(rgb))
    capture.release()
    if not frames:
        raise ValueError(f"no frames read from {path}")
    K = default_intrinsics(full_shape[1], full_shape[0]).astype(np.float64)
    if crop:
        K[0, 2] -= crop[0]
        K[1, 2] -= crop[1]
    K[:2] *= scale
    return frames, K


def run_video(args, pipelines: dict, finder: RecordingFinder) -> tuple[dict, list[np.ndarray]]:
    crop = tuple(int(v) for v in args.video_crop.split(",")) if args.video_crop else None
    frames, K = read_video(args.video, args.video_start, args.frames, crop, args.video_scale)
    from rgbd_fusion_core.inference.pipeline_io import Frame

    people_per_frame, rows, fig_rows = [], {m: [] for m in pipelines}, []
    depths = {m: [] for m in pipelines}
    zrefs = {m: [] for m in pipelines}
    seconds = {m: 0.0 for m in pipelines}
    for index, rgb in enumerate(frames):
        results = {}
        for mode in VIDEO_MODES:
            began = time.perf_counter()
            results[mode] = pipelines[mode](Frame(rgb=rgb, K=K.astype(np.float32)))
            seconds[mode] += time.perf_counter() - began
            if mode == "new":
                people_per_frame.append(list(finder.last))
        for mode in pipelines:
            result = results[mode]
            rows[mode].append(score(result, people_per_frame[-1], None, K))
            depths[mode].append(result.depth_full)
            zrefs[mode].append(float(result.z_ref))
        if index in (0, len(frames) - 1):
            label = f"video frame {args.video_start + index}"
            fig_rows.append(figure_row(rgb, {m: results[m] for m in ("old", "new")}, label, args.row_height))
    out = {
        "video": str(args.video),
        "start": args.video_start,
        "frames": len(frames),
        "crop": crop,
        "scale": args.video_scale,
        "reference": "finder mask",
        "frames_with_finder_people": sum(1 for p in people_per_frame if p),
    }
    for mode in VIDEO_MODES:
        z = np.array(zrefs[mode])
        dz = np.abs(np.diff(z))
        dz = dz[np.isfinite(dz)]
        pair_medians = []
        for a, b in zip(depths[mode][:-1], depths[mode][1:]):
            both = np.isfinite(a) & np.isfinite(b)
            if both.any():
                pair_medians.append(float(np.median(np.abs(a[both] - b[both]))))
        out[mode] = {
            **mean_of(rows[mode]),
            "z_ref_jitter_m": float(np.median(dz)) if dz.size else None,
            "depth_jitter_m": float(np.median(pair_medians)) if pair_medians else None,
            "depth_jitter_pairs": len(pair_medians),
            "z_ref_sources": sorted({r["z_ref_source"] for r in rows[mode]}),
            "seconds_per_frame": seconds[mode] / len(frames),
        }
    return out, fig_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from rgbd_fusion_core.inference.pipeline_io import PipelineConfig

    defaults = PipelineConfig()
    parser.add_argument("photos", type=Path, help="folder of photos (png/jpg)")
    parser.add_argument("--masks", type=Path, default=None, help="hand-drawn masks NAME.png or NAME.json")
    parser.add_argument("--video", default=None, help="a video file; its frames run in video mode")
    parser.add_argument("--frames", type=int, default=30, help="consecutive video frames")
    parser.add_argument("--video-start", type=int, default=0, help="first video frame")
    parser.add_argument("--video-crop", default=None, help="x,y,w,h crop of the video frames (around one person)")
    parser.add_argument("--video-scale", type=float, default=1.0, help="resize factor after the crop")
    parser.add_argument("--figure", type=Path, default=None, help="contact sheet image (jpg/png)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos (0 = all)")
    parser.add_argument("--steps1", type=int, default=defaults.steps1, help="stage-1 steps (node default)")
    parser.add_argument("--steps2", type=int, default=defaults.steps2, help="stage-2 steps (node default)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jpeg-quality", type=int, default=80)
    parser.add_argument("--row-height", type=int, default=140, help="contact sheet row height (pixels)")
    args = parser.parse_args()

    from rgbd_fusion_core.inference.pipeline import Pipeline
    from rgbd_fusion_core.inference.pipeline_io import Frame
    from rgbd_fusion_core.io.camera_file import photo_intrinsics
    from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

    cfg = configs(args)
    finder = RecordingFinder(MediaPipeFinder(max_people=cfg["new"].max_people))
    base = Pipeline.from_pretrained(args.model, device=args.device, config=cfg["new"], finder=finder)
    pipelines = {"old": base.with_config(cfg["old"]), "new": base, "unfilled": base.with_config(cfg["unfilled"])}

    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.limit:
        paths = paths[: args.limit]
    per_image, fig_rows = [], []
    rows = {m: [] for m in pipelines}
    for path in paths:
        rgb = read_rgb(path)
        K, intrinsics = photo_intrinsics(path, rgb.shape[1], rgb.shape[0])  # as predict
        reference = read_reference_mask(args.masks, path.stem, rgb.shape[:2]) if args.masks is not None else None
        entry = {"image": path.name, "size": [rgb.shape[1], rgb.shape[0]], "intrinsics": intrinsics}
        entry["reference"] = "hand-drawn" if reference is not None else "finder mask"
        results = {}
        for mode in MODES:
            began = time.perf_counter()
            results[mode] = pipelines[mode](Frame(rgb=rgb, K=K))
            elapsed = time.perf_counter() - began
            if mode == "new":
                people = list(finder.last)
            entry[mode] = {**score(results[mode], people, reference, K), "seconds": elapsed}
            rows[mode].append(entry[mode])
        ref_mask = reference if reference is not None else np.any([p.mask for p in people], axis=0) if people else None
        entry["reference_px"] = int(ref_mask.sum()) if ref_mask is not None else 0
        per_image.append(entry)
        fig_rows.append(figure_row(rgb, {m: results[m] for m in ("old", "new")}, path.name, args.row_height))

    report = {
        "configs": {
            "old": 'PipelineConfig(person_source="none", reference_depth="height_prior", full_frame=True)',
            "new": "PipelineConfig(full_frame=True)",
            "unfilled": "PipelineConfig(fill_mask=False, full_frame=True)",
        },
        "steps": [args.steps1, args.steps2],
        "intrinsics": "as predict: the photo's EXIF 35 mm equivalent focal length, else a 60 degree horizontal field "
        "of view (per image: intrinsics)",
        "reference": "hand-drawn where given, else finder mask" if args.masks else "finder mask",
        "images": per_image,
        "mean": {mode: mean_of(rows[mode]) for mode in MODES},
        # only the images whose reference mask holds a person (IoU against an empty reference is 0 or undefined)
        "mean_images_with_people": {
            mode: mean_of([r for r, e in zip(rows[mode], per_image) if e["reference_px"] > 0]) for mode in MODES
        },
    }
    if args.video:
        # a fresh pipeline in video mode: the finder tracks the person from frame to frame
        video_finder = RecordingFinder(MediaPipeFinder(max_people=cfg["new"].max_people, tracking=True))
        video_base = Pipeline(base.stage1, base.stage2, cfg["new"], base.device, base.backend, video_finder, True)
        video_pipelines = {"old": video_base.with_config(cfg["old"]), "new": video_base}
        report["video"], video_rows = run_video(args, video_pipelines, video_finder)
        fig_rows += video_rows
    if args.figure and fig_rows:
        sheet = cv2.cvtColor(stack_rows(fig_rows), cv2.COLOR_RGB2BGR)
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, args.jpeg_quality] if args.figure.suffix.lower() in (".jpg", ".jpeg") else []
        )
        cv2.imwrite(str(args.figure), sheet, params)
        report["figure"] = str(args.figure)
    print(json.dumps(report, indent=1, default=_plain))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


if __name__ == "__main__":
    main()
