"""Who to run the stages on in a frame: the people, each with the mask and keypoints that place their crop.

The source of people is a setting (``person_source``):
- ``auto``: the frame's mask when given (one person), else its ROI, else the person finder;
- ``finder``: always the person finder (a given mask is ignored);
- ``mask``: only the given mask (an error without one);
- ``none``: no person finder: the given mask or ROI as in ``auto``, else one centred square crop whose output
  no mask limits (the behaviour before the finder existed, for frames without a mask).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rgbd_fusion_core.inference.pipeline_io import Frame, PipelineConfig


@dataclass
class Target:
    """One person to run the stages on: a full-frame mask (H, W) bool (None = not limited to a mask), an ROI
    (x, y, w, h) or neither (centre crop), and the finder's keypoints when it found them (see people.person)."""

    mask: np.ndarray | None = None
    roi: tuple[int, int, int, int] | None = None
    keypoints_2d: np.ndarray | None = None
    keypoints_3d: np.ndarray | None = None
    source: str = "centre"


def targets_in_frame(frame: Frame, config: PipelineConfig, finder) -> list[Target]:
    """The people of one frame, most prominent first, at most ``config.max_people``; [] when nobody.

    finder: a ``people.person.PersonFinder``, or a callable returning one (built on first use).
    """
    source = config.person_source
    if frame.mask is not None and source in ("auto", "mask", "none"):
        mask = np.asarray(frame.mask) > 0
        return [Target(mask=mask, source="mask")] if mask.any() else []
    if source == "mask":
        raise ValueError("person_source 'mask' needs a person mask with the frame")
    if frame.roi is not None and source in ("auto", "none"):
        return [Target(roi=frame.roi, source="roi")]
    if source == "none":
        return [Target()]
    try:
        found = (finder() if callable(finder) else finder).find(frame.rgb)
    except ImportError as error:  # no person finder installed (mediapipe has no wheel for this Python)
        if source == "finder":
            raise RuntimeError(str(error)) from error
        warnings.warn(f"{error} Without it, person_source 'auto' takes the centred square crop.", stacklevel=2)
        return [Target()]
    return [
        Target(mask=p.mask, keypoints_2d=p.keypoints_2d, keypoints_3d=p.keypoints_3d, source="finder")
        for p in found[: config.max_people]
        if p.mask.any()
    ]
