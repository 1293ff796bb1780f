"""``rgbd-fusion benchmark``: what a frame costs with the default model, as ratios that hold on a busy machine.

How it measures: every workload (one stage evaluation, or one whole 640x480 frame through the Pipeline) is timed
between two matmul-peak measurements, in rounds: ``peak, workload 1, peak, workload 2, peak, ...``. A workload's
share of the peak is taken against the higher of its two neighbouring peaks (conservative: a peak sample that a
passing load depressed cannot inflate a share), so a load change on a shared machine moves both alike. Every
figure is reported as min / median over ``rounds`` rounds. Defaults are the node's:
``PipelineConfig()`` (3 + 2 steps), the person finder in tracking mode (MediaPipe, as the node runs it), batch of
all the people of a frame.

Frames: bundled renders (``rgbd_fusion_core/demo_frames``) cut to their person and pasted into a grey 640x480
frame: one person, or three side by side. ``finder="masks"`` gives the Pipeline the pasted masks instead of
running MediaPipe (for tests, or where MediaPipe is not installed; the report says which was used).

JSON keys (``benchmark()`` returns this dict):

- ``machine``: ``cpus``, ``torch_threads``, ``onnxruntime_threads``, ``loadavg_1min`` ``[start, end]``, ``busy``
  (the load average reached the CPU count: other processes competed; shares of peak then run high, because the
  long all-thread matmul loses more to other processes than the short stage calls do; the ratios between
  workloads, e.g. int8 / fp32 or 3 people / 1, hold better than shares).
- ``threads``: torch threads (= ``machine.torch_threads``).
- ``settings``: ``steps1``, ``steps2``, ``sampler1``, ``sampler2``, ``max_people``, ``frame`` ("640x480"),
  ``finder`` ("mediapipe-tracking" or "masks"), ``rounds``, ``peak_size`` (matmul side).
- ``matmul_peak_gflops``: median of all interleaved peak samples; ``matmul_peak``: ``min``, ``median``, ``max``,
  ``samples`` (GFLOP/s of a ``peak_size``-square fp32 matmul, best of ``peak_repeats`` each).
- ``gflop_per_frame`` (one person), ``nfe_per_frame`` (one person).
- ``stages.stageN``: ``resolution``, ``gflop_per_eval``, ``nfe_per_frame``; ``backends.<backend>``: ``ms_min``,
  ``ms_median`` (one evaluation, batch 1), ``share_of_peak_min`` / ``share_of_peak_median`` (achieved GFLOP/s
  over the neighbouring peak, per round: min and median); and, for the fastest backend (``fastest_backend``):
  ``ms_per_eval`` (= its median), ``achieved_gflops``, ``share_of_matmul_peak`` (= its median share).
- ``end_to_end.<backend>``: ``one_person`` and ``three_people``, each with ``ms_per_frame_min``,
  ``ms_per_frame_median``, ``frames_per_s`` (from the median), ``people_found``, ``ms_per_step`` (median of
  the Pipeline's ``timings_ms``: people, crop, stage1, stage2, metric), ``share_of_frame`` (``finder`` = people,
  ``stage1``, ``stage2``, ``rest`` = crop + metric: crop, resize, scale, back-projection, result building; each
  median step over the median frame), ``network_share_of_peak_min`` / ``_median`` (the frame's GFLOP over
  stage1 + stage2 time, against the neighbouring peak) and ``frame_share_of_peak_min`` / ``_median`` (same
  GFLOP over the whole frame); ``three_people`` adds ``denoiser_calls`` ({stage: calls per frame}) and
  ``batch_sizes`` ({stage: batch of each call}), counted in one untimed frame. Then
  ``three_people_time_vs_one`` (median 3-people frame / median 1-person frame), ``batching_speedup`` (3 x
  one-person frame / one 3-people frame: whole frame, and ``network`` = stage1 + stage2 only), and for
  compatibility ``ms_per_frame``, ``frames_per_s``, ``ms_per_step`` (of ``one_person``, median).
- ``speedups``: ``onnxruntime_vs_torch`` and ``int8_vs_fp32`` (median one-person frame times), when both ran;
  also ``onnxruntime_speedup_vs_torch`` at the top level.
- ``targets``: booleans of the project targets that this run can check.

Backends: ``torch`` (eager, channels-last), ``onnxruntime`` (fp32, CPU) and ``onnxruntime-int8`` (the stages that
``export.quantize`` made int8; see there).
"""

from __future__ import annotations

import copy
import os
import statistics

import numpy as np
import torch

from rgbd_fusion_core.apps.interleaved_timing import MatmulPeak, Workload, run_interleaved, shares
from rgbd_fusion_core.apps.scenes import FRAME_SHAPE, KnownPeople, bundled_render, people_frame
from rgbd_fusion_core.evaluation.flops import denoiser_gflop
from rgbd_fusion_core.inference.pipeline_io import PipelineConfig

BACKEND_NAMES = ("torch", "onnxruntime", "onnxruntime-int8")


# --- frames -----------------------------------------------------------------------------------------------
def make_finder(kind: str, masks: list[np.ndarray], max_people: int):
    """("mediapipe-tracking" | "masks", finder); MediaPipe falls back to the known masks when not installed."""
    if kind == "mediapipe":
        try:
            from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

            return "mediapipe-tracking", MediaPipeFinder(max_people=max_people, tracking=True)
        except ImportError:
            pass
    return "masks", KnownPeople(masks)


# --- stages -----------------------------------------------------------------------------------------------
class CountingDenoiser:
    """Wraps a denoiser and records the batch size of every call."""

    def __init__(self, denoiser):
        self.denoiser, self.device, self.batches = denoiser, denoiser.device, []

    def __call__(self, x_t, t, cond):
        self.batches.append(int(x_t.shape[0]))
        return self.denoiser(x_t, t, cond)


def stage_denoiser(backend: str, config, module, path, threads: int | None, int8_folder=None):
    """A stage's denoiser on ``backend`` (one of ``BACKEND_NAMES``)."""
    from rgbd_fusion_core.inference.backends import make_backend

    if backend == "torch":
        return make_backend("torch", config, copy.deepcopy(module), "cpu")
    options = {"threads": threads} if threads else {}
    if backend == "onnxruntime-int8":
        from rgbd_fusion_core.export.quantize import int8_stage_onnx

        onnx_path = int8_stage_onnx(config, module, int8_folder)
        return make_backend("onnxruntime", config, None, "cpu", source=onnx_path, **options)
    return make_backend(backend, config, module, "cpu", source=path, **options)


def benchmark(
    model=None,
    backends=("onnxruntime", "torch"),
    repeats: int = 5,
    config: PipelineConfig | None = None,
    finder: str = "mediapipe",
    threads: int | None = None,
    peak_size: int = 2048,
    peak_repeats: int = 3,
    int8_folder=None,
) -> dict:
    """The report described in the module docstring (the frames are built from the bundled renders).
    ``repeats``: rounds."""
    from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
    from rgbd_fusion_core.inference.pipeline import Pipeline, Stage
    from rgbd_fusion_core.models.checkpoint import load_stage_model
    from rgbd_fusion_core.models.model_files import resolve_model_dir
    from rgbd_fusion_core.runtime.onnxruntime_backend import physical_core_count

    unknown = [name for name in backends if name not in BACKEND_NAMES]
    if unknown:
        raise ValueError(f"--backends: unknown backend {unknown[0]!r}; choose from {', '.join(BACKEND_NAMES)}")
    cfg = config or PipelineConfig()
    rounds = max(1, repeats)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    paths = resolve_model_dir(model)
    loaded = {stage: load_stage_model(path, expected_stage=stage) for stage, path in zip((1, 2), paths)}
    gflop = {stage: denoiser_gflop(module, c) for stage, (c, module) in loaded.items()}
    nfe = {1: cfg.steps1, 2: cfg.steps2}
    gflop_frame = sum(nfe[s] * gflop[s] for s in (1, 2))

    renders = [bundled_render(index) for index in range(3)]
    scenes = {n: people_frame(renders, n) for n in (1, 3)}
    finder_kind = "masks"
    workloads: dict[str, Workload] = {}
    stage_sets = {}
    for backend in backends:
        stages = {}
        for stage, (c, module) in loaded.items():
            denoiser = stage_denoiser(backend, c, module, paths[stage - 1], threads, int8_folder)
            stages[stage] = Stage(c, denoiser, GaussianDiffusion(c.diffusion))
            x_t, t, cond = stage_inputs(c)
            workloads[f"{backend}/stage{stage}"] = Workload(
                lambda d=denoiser, x=x_t, tt=t, cc=cond: d(x, tt, cc), gflop[stage], iters=5
            )
        stage_sets[backend] = stages
        for people, (frame, masks) in scenes.items():
            finder_kind, person_finder = make_finder(finder, masks, cfg.max_people)
            pipeline = Pipeline(stages[1], stages[2], cfg, "cpu", backend.split("-")[0], person_finder, video=True)
            workloads[f"{backend}/frame{people}"] = Workload(
                lambda p=pipeline, f=frame: p(f), people * gflop_frame, iters=2
            )
    peak = MatmulPeak(peak_size, peak_repeats)
    with torch.no_grad():
        run_interleaved(workloads, peak, rounds)

    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "onnxruntime_threads": threads or physical_core_count(),
            "loadavg_1min": [load_start, load_end],
            "busy": max(load_start, load_end) >= (os.cpu_count() or 1),
        },
        "threads": torch.get_num_threads(),
        "settings": {
            "steps1": cfg.steps1,
            "steps2": cfg.steps2,
            "sampler1": cfg.sampler1,
            "sampler2": cfg.sampler2,
            "max_people": cfg.max_people,
            "frame": f"{FRAME_SHAPE[1]}x{FRAME_SHAPE[0]}",
            "finder": finder_kind,
            "rounds": rounds,
            "peak_size": peak_size,
        },
        "matmul_peak_gflops": statistics.median(peak.samples),
        "matmul_peak": {
            "min": min(peak.samples),
            "median": statistics.median(peak.samples),
            "max": max(peak.samples),
            "samples": len(peak.samples),
        },
        "gflop_per_frame": gflop_frame,
        "nfe_per_frame": sum(nfe.values()),
        "stages": {},
        "end_to_end": {},
    }
    for stage in (1, 2):
        c = loaded[stage][0]
        entry = {"resolution": c.resolution, "gflop_per_eval": gflop[stage], "nfe_per_frame": nfe[stage]}
        per_backend = {}
        for backend in backends:
            w = workloads[f"{backend}/stage{stage}"]
            low, median = shares(gflop[stage], w.ms, w.peaks)
            per_backend[backend] = {
                "ms_min": min(w.ms),
                "ms_median": statistics.median(w.ms),
                "share_of_peak_min": low,
                "share_of_peak_median": median,
            }
        fastest = min(per_backend, key=lambda b: per_backend[b]["ms_median"])
        entry.update(
            backends=per_backend,
            fastest_backend=fastest,
            ms_per_eval=per_backend[fastest]["ms_median"],
            achieved_gflops=gflop[stage] / (per_backend[fastest]["ms_median"] / 1000),
            share_of_matmul_peak=per_backend[fastest]["share_of_peak_median"],
        )
        report["stages"][f"stage{stage}"] = entry

    for backend in backends:
        out = {}
        for people, name in ((1, "one_person"), (3, "three_people")):
            w = workloads[f"{backend}/frame{people}"]
            out[name] = frame_figures(w, people * gflop_frame)
        out["three_people"].update(count_batches(stage_sets[backend], cfg, scenes[3], finder, Pipeline, Stage))
        one, three = out["one_person"], out["three_people"]
        out["three_people_time_vs_one"] = three["ms_per_frame_median"] / one["ms_per_frame_median"]
        network = {
            k: out[k]["ms_per_step"].get("stage1", 0) + out[k]["ms_per_step"].get("stage2", 0)
            for k in ("one_person", "three_people")
        }
        out["batching_speedup"] = {
            "frame": 3 * one["ms_per_frame_median"] / three["ms_per_frame_median"],
            "network": 3 * network["one_person"] / network["three_people"] if network["three_people"] else None,
        }
        out.update(
            ms_per_frame=one["ms_per_frame_median"], frames_per_s=one["frames_per_s"], ms_per_step=one["ms_per_step"]
        )
        report["end_to_end"][backend] = out

    e2e = report["end_to_end"]
    speedups = {}
    if "torch" in e2e and "onnxruntime" in e2e:
        speedups["onnxruntime_vs_torch"] = e2e["torch"]["ms_per_frame"] / e2e["onnxruntime"]["ms_per_frame"]
        report["onnxruntime_speedup_vs_torch"] = speedups["onnxruntime_vs_torch"]
    if "onnxruntime-int8" in e2e and "onnxruntime" in e2e:
        network = {
            b: e2e[b]["ms_per_step"].get("stage1", 0) + e2e[b]["ms_per_step"].get("stage2", 0)
            for b in ("onnxruntime", "onnxruntime-int8")
        }
        speedups["int8_vs_fp32"] = e2e["onnxruntime"]["ms_per_frame"] / e2e["onnxruntime-int8"]["ms_per_frame"]
        speedups["int8_vs_fp32_network"] = network["onnxruntime"] / network["onnxruntime-int8"]
    report["speedups"] = speedups
    targets = {
        "3 people per frame <= 2x one": all(v["three_people_time_vs_one"] <= 2 for v in e2e.values()),
    }
    if "onnxruntime" in e2e:
        targets["onnxruntime network share of peak >= 0.5"] = (
            e2e["onnxruntime"]["one_person"]["network_share_of_peak_median"] >= 0.5
        )
    if "int8_vs_fp32_network" in speedups:
        targets["int8 network >= 1.25x fp32"] = speedups["int8_vs_fp32_network"] >= 1.25
    report["targets"] = targets
    return report


def stage_inputs(config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    r, m = config.resolution, config.model
    x_t = torch.randn(1, m.in_channels, r, r, generator=generator)
    cond = torch.rand(1, m.cond_channels, r, r, generator=generator) * 2 - 1
    return x_t, torch.tensor([float(config.diffusion.timesteps // 2)]), cond


def frame_figures(workload: Workload, gflop: float) -> dict:
    median_ms = statistics.median(workload.ms)
    steps = {k: statistics.median(s.get(k, 0.0) for s in workload.steps) for k in workload.steps[0]}
    network_ratio = [
        (s.get("stage1", 0) + s.get("stage2", 0)) / sum(s.values()) for s in workload.steps if sum(s.values()) > 0
    ]
    network_ms = [m * statistics.median(network_ratio) for m in workload.ms]
    net_min, net_median = shares(gflop, network_ms, workload.peaks)
    frame_min, frame_median = shares(gflop, workload.ms, workload.peaks)
    step_total = sum(steps.values()) or 1.0
    return {
        "ms_per_frame_min": min(workload.ms),
        "ms_per_frame_median": median_ms,
        "frames_per_s": 1000 / median_ms,
        "people_found": workload.people_found,
        "ms_per_step": {k: round(v, 3) for k, v in steps.items()},
        "share_of_frame": {
            "finder": steps.get("people", 0) / step_total,
            "stage1": steps.get("stage1", 0) / step_total,
            "stage2": steps.get("stage2", 0) / step_total,
            "rest": (steps.get("crop", 0) + steps.get("metric", 0)) / step_total,
        },
        "network_share_of_peak_min": net_min,
        "network_share_of_peak_median": net_median,
        "frame_share_of_peak_min": frame_min,
        "frame_share_of_peak_median": frame_median,
    }


def count_batches(stages: dict, cfg: PipelineConfig, scene, finder: str, pipeline_class, stage_class) -> dict:
    """One untimed 3-people frame with counting denoisers: calls per stage and the batch of each call."""
    frame, masks = scene
    counted = {s: CountingDenoiser(stage.denoiser) for s, stage in stages.items()}
    wrapped = {s: stage_class(stage.config, counted[s], stage.diffusion) for s, stage in stages.items()}
    _, person_finder = make_finder(finder, masks, cfg.max_people)
    pipeline_class(wrapped[1], wrapped[2], cfg, "cpu", "counted", person_finder, video=True)(frame)
    return {
        "denoiser_calls": {f"stage{s}": len(c.batches) for s, c in counted.items()},
        "batch_sizes": {f"stage{s}": c.batches for s, c in counted.items()},
    }
