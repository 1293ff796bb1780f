"""Annotate a dataset with the person finder: what a real-image model sees in each render, stored beside it.

For every sample, the finder (MediaPipe, static-image mode) runs on the 256 RGB; its most prominent person's
mask goes to ``256/finder_mask/ID.png`` and its 2D/3D keypoints into ``dataset.json`` (format version 2, see
``data/format.py``). A pose-conditioned stage 1 trains on these, so it learns the finder's real errors rather
than the ground truth. Resumable: samples already annotated are kept; the index is rewritten atomically every
``save_every`` samples, so a killed run loses at most that many.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from rgbd_fusion_core.data.format import read_index, write_index
from rgbd_fusion_core.io.imageio import read_rgb, write_mask

FINDER_NAME = "mediapipe-0.10.21"
MASK_KIND = "finder_mask"


def annotate_dataset(root: str | Path, save_every: int = 200, progress=print) -> dict:
    """Annotate every unannotated sample of the dataset at ``root``; returns counts and samples/s."""
    from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

    index = read_index(root)
    finder = MediaPipeFinder(max_people=1)
    samples = list(index.samples)
    todo = [i for i, sample in enumerate(samples) if sample.person is None]
    started, found = time.perf_counter(), 0
    for done, i in enumerate(todo, start=1):
        sample = samples[i]
        person = _annotate(index.root, sample.id, sample.files[256]["rgb"], finder)
        found += person["found"]
        samples[i] = dataclasses.replace(sample, person=person)
        if done % save_every == 0 or done == len(todo):
            write_index(dataclasses.replace(index, samples=samples))
            progress(f"annotated {done}/{len(todo)} ({found} with a person)")
    if not todo:  # a version-1 index with nothing left to do is still rewritten as version 2
        write_index(dataclasses.replace(index, samples=samples))
    seconds = time.perf_counter() - started
    return {
        "annotated": len(todo),
        "found": found,
        "already": len(samples) - len(todo),
        "samples_per_s": len(todo) / seconds if seconds > 0 else 0.0,
    }


def _annotate(root: Path, sample_id: str, rgb_path: str, finder) -> dict:
    """The finder's view of one sample's 256 RGB as a format-2 ``person`` entry (mask written to disk)."""
    people = finder.find(read_rgb(root / rgb_path))
    if not people:
        return {"finder": FINDER_NAME, "found": False}
    person = people[0]
    mask_path = f"256/{MASK_KIND}/{sample_id}.png"
    (root / mask_path).parent.mkdir(parents=True, exist_ok=True)
    write_mask(root / mask_path, person.mask)
    return {
        "finder": FINDER_NAME,
        "found": True,
        "mask": mask_path,
        "keypoints_2d": np.round(person.keypoints_2d.astype(float), 3).tolist(),
        "keypoints_3d": np.round(person.keypoints_3d.astype(float), 4).tolist(),
    }
