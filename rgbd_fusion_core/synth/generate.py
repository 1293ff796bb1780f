"""Render a synthetic RGB-D dataset of people: orchestration, worker processes, resume and determinism (the dataset's
settings, ids and random streams are in ``dataset_plan``, the rendering of a unit in ``unit_renderer``).

Work is split into units of consecutive subjects. Every random choice comes from a seed sequence keyed by
(seed, stream, subject, view), so the same seed gives byte-identical files whatever the worker count or the
order of completion. Each sample's files are written atomically, its ``meta/<id>.json`` last; a rerun skips
units whose samples are all complete and re-renders the others whole (a unit is a fixed group of subjects, so
its pose batches, and so its results, are the same). ``dataset.json`` is assembled from the meta files at the
end, also atomically.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rgbd_fusion_core.data.format import DatasetIndex, SampleEntry, split_subjects, write_index
from rgbd_fusion_core.synth.dataset_plan import (
    GENERATOR_VERSION,
    GeneratorConfig,
    meta_path,
    sample_id,
    unit_complete,
    unit_count,
    unit_subjects,
    validate_config,
)
from rgbd_fusion_core.synth.unit_renderer import UnitRenderer

_process_renderer: UnitRenderer | None = None


def _renderer_for(config: GeneratorConfig) -> UnitRenderer:
    """This process's UnitRenderer, rebuilt only when settings that affect the models change."""
    global _process_renderer
    if _process_renderer is None or (
        (_process_renderer.config.age_range, _process_renderer.config.background_dir)
        != (config.age_range, config.background_dir)
    ):
        _process_renderer = UnitRenderer(config)
    _process_renderer.config = config
    return _process_renderer


def _worker_init(config: GeneratorConfig) -> None:
    torch.set_num_threads(1)
    _renderer_for(config)


def _worker_render(args: tuple[GeneratorConfig, int]) -> int:
    config, unit = args
    return _renderer_for(config).render_unit(unit)


def assemble_index(config: GeneratorConfig) -> DatasetIndex:
    """Build the dataset index from the per-sample meta files (all must exist)."""
    samples, attempts, intersecting = [], [], 0
    for subject in range(config.subjects):
        for view in range(config.views_per_subject):
            meta = json.loads(meta_path(config, sample_id(config, subject, view)[0]).read_text())
            samples.append(
                SampleEntry(
                    meta["id"],
                    meta["subject"],
                    {int(r): kinds for r, kinds in meta["files"].items()},
                    {int(r): np.asarray(k) for r, k in meta["K"].items()},
                )
            )
            attempts.append(meta["info"]["pose_attempts"])
            intersecting += meta["info"]["intersecting"]
    subjects = sorted({s.subject for s in samples})
    generator = {
        "name": "rgbd_fusion_core.synth",
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "args": config.recorded_args(),
        "pose_attempts_mean": round(float(np.mean(attempts)), 4),
        "rejection_rate": round(1.0 - len(attempts) / float(np.sum(attempts)), 4),
        "samples_left_intersecting": int(intersecting),
    }
    return DatasetIndex(
        root=config.out,
        depth_unit="mm",
        resolutions=config.resolutions,
        splits=split_subjects(subjects, config.test_fraction, config.seed),
        samples=samples,
        generator=generator,
    )


def generate(config: GeneratorConfig, progress: bool = True) -> DatasetIndex:
    """Render (or finish rendering) the dataset described by ``config`` and write its ``dataset.json``."""
    from tqdm import tqdm

    background_dir = Path(config.background_dir) if config.background_dir else None
    config = GeneratorConfig(**{**asdict(config), "out": Path(config.out), "background_dir": background_dir})
    validate_config(config)
    todo = [u for u in range(unit_count(config)) if not unit_complete(config, u)]
    total = config.subjects * config.views_per_subject
    done = total - sum(len(unit_subjects(config, u)) for u in todo) * config.views_per_subject
    with tqdm(total=total, initial=done, unit="sample", disable=not progress, smoothing=0.1) as bar:
        if config.workers == 1 or len(todo) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # same arithmetic as in a worker process
            try:
                renderer = _renderer_for(config)
                for unit in todo:
                    bar.update(renderer.render_unit(unit))
            finally:
                torch.set_num_threads(threads)
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(config.workers, len(todo)), initializer=_worker_init, initargs=(config,)) as pool:
                for count in pool.imap_unordered(_worker_render, [(config, u) for u in todo]):
                    bar.update(count)
    index = assemble_index(config)
    write_index(index)
    return index
