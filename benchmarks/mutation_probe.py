"""Mutation probe: plant deliberate bugs one at a time in a scratch copy of the repository and check the tests fail.

    python benchmarks/mutation_probe.py                      # every mutation, each against its relevant tests
    python benchmarks/mutation_probe.py --only ema_reversed --only atomic_in_place
    python benchmarks/mutation_probe.py --full               # each mutation against `python -m pytest -q -x`
    python benchmarks/mutation_probe.py --list               # the table, as JSON

For each mutation the probe copies the repository (``git ls-files`` plus untracked files git does not ignore) to
a fresh temporary folder, replaces the mutation's exact old text with its new text (the old text must occur
exactly once: a mutation whose code moved fails loudly instead of silently probing nothing), and runs the test
command in that copy, with the copy first on PYTHONPATH and as the working directory, so the copy's code is
what runs (the package is installed editable from the original checkout). A mutation is "caught" when the test
command fails. Before the mutations, the same test commands run once on an unmutated copy (a baseline that
fails makes every "caught" meaningless; ``--no-baseline`` skips it). Prints one JSON document.

Not part of the default test run. Extend ``MUTATIONS`` whenever a bug slips through review.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# pytest exit codes: 1 = tests failed, 2 = interrupted (e.g. a collection error from the planted bug) -> caught;
# 0 = all passed -> missed; 3, 4, 5 (internal error, usage error, no tests) or a timeout -> neither, an error.
CAUGHT_CODES = (1, 2)
PYTEST = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    description: str
    tests: tuple[str, ...]  # the fast subset of tests that should catch it: files or pytest node ids (file::test)


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "depth_to_metres_sign",
        "rgbd_fusion_core/geometry/depth_space.py",
        "z = z_ref - (d - self.centre) / self.scale",
        "z = z_ref + (d - self.centre) / self.scale",
        "sign flip in the network-space -> metres conversion",
        ("tests/geometry/test_depth_space.py",),
    ),
    Mutation(
        "crop_intrinsics_off_by_one",
        "rgbd_fusion_core/geometry/camera.py",
        "scale * (cx - x0 + 0.5) - 0.5",
        "scale * (cx - x0 + 1.5) - 0.5",
        "off-by-one pixel in the crop's principal point cx",
        ("tests/geometry/test_camera.py",),
    ),
    Mutation(
        "backproject_fx_fy_swapped",
        "rgbd_fusion_core/geometry/camera.py",
        "x = (cols - K[0, 2]) * z / K[0, 0]\n    y = (rows - K[1, 2]) * z / K[1, 1]",
        "x = (cols - K[0, 2]) * z / K[1, 1]\n    y = (rows - K[1, 2]) * z / K[0, 0]",
        "fx and fy swapped in back-projection",
        ("tests/geometry/test_camera.py",),
    ),
    Mutation(
        "ddpm_noise_dropped",
        "rgbd_fusion_core/diffusion/samplers.py",
        "return mean + torch.exp(0.5 * log_var) * noise, x0",
        "return mean, x0",
        "DDPM ancestral step without its noise term",
        ("tests/diffusion/test_samplers.py",),
    ),
    Mutation(
        "depth_nan_handling_removed",
        "rgbd_fusion_core/inference/frame_checks.py",
        "out[~np.isfinite(out) | (out < min_m) | (out > max_m)] = np.nan",
        "pass  # mutated: no invalid-depth handling",
        "NaN/inf/out-of-range handling removed from the sensor depth conversion (used by the ROS depth input)",
        ("tests/ros/test_ros_conversions.py", "tests/inference/test_pipeline.py"),
    ),
    Mutation(
        "pointcloud_rgb_byte_order",
        "rgbd_fusion_ros/messages.py",
        "records[:, 12:15] = colors[:, ::-1]  # stored as BB GG RR 00",
        "records[:, 12:15] = colors  # stored as BB GG RR 00",
        "point cloud rgb packed in the wrong byte order (little-endian hosts)",
        ("tests/ros/test_ros_conversions.py",),
    ),
    Mutation(
        "atomic_write_in_place",
        "rgbd_fusion_core/io/atomic.py",
        "    fd, tmp = tempfile.mkstemp(",
        "    yield path\n    return\n    fd, tmp = tempfile.mkstemp(",
        "atomic write done in place: no temporary file, no rename",
        ("tests/io/test_atomic.py",),
    ),
    Mutation(
        "height_prior_uses_fx",
        "rgbd_fusion_core/inference/pipeline.py",
        "return float(K_high[1, 1] * cfg.person_height_m / height_px)",
        "return float(K_high[0, 0] * cfg.person_height_m / height_px)",
        "height prior z_ref computed with fx instead of fy",
        ("tests/inference/test_reference_depth.py", "tests/inference/test_pipeline.py"),
    ),
    Mutation(
        "sync_tolerance_x10",
        "rgbd_fusion_ros/node.py",
        "StampSynchronizer(streams, round(settings.sync_tolerance_s * 1e9)",
        "StampSynchronizer(streams, round(settings.sync_tolerance_s * 1e10)",
        "the node's stamp-sync tolerance 10x too large",
        ("tests/ros/test_ros_node_sync.py",),
    ),
    Mutation(
        "ema_update_reversed",
        "rgbd_fusion_core/training/ema.py",
        "self.shadow[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)",
        "self.shadow[k].mul_(1 - decay).add_(v.detach().float(), alpha=decay)",
        "EMA update reversed: the shadow follows the raw weights almost entirely",
        ("tests/training/test_ema.py", "tests/training/test_training.py"),
    ),
    # --- beyond the audit's ten -------------------------------------------------------------------------------
    Mutation(
        "ema_warm_up_removed",
        "rgbd_fusion_core/training/ema.py",
        "decay = min(self.decay, (1 + self.updates) / (10 + self.updates))",
        "decay = self.decay",
        "EMA decay without its warm-up",
        ("tests/training/test_ema.py",),
    ),
    Mutation(
        "learned_variance_swapped",
        "rgbd_fusion_core/diffusion/gaussian.py",
        "return frac * max_log + (1 - frac) * min_log",
        "return frac * min_log + (1 - frac) * max_log",
        "learned-range variance interpolating the wrong way (v = 1 gives beta-tilde)",
        ("tests/training/test_ema.py", "tests/diffusion/test_diffusion_math.py"),
    ),
    Mutation(
        "manifest_hash_ignored",
        "rgbd_fusion_core/models/model_files.py",
        "if actual != expected:",
        "if False:",
        "model-folder sha256 manifest not enforced: a tampered model loads",
        ("tests/cli/test_untested_paths.py",),
    ),
    # --- code added since the audit ---------------------------------------------------------------------------
    Mutation(
        "flying_pixels_wrong_side",
        "rgbd_fusion_core/geometry/depth_edges.py",
        "flying = boundary & (box - total / np.maximum(count, 1) > max_step_m)",
        "flying = boundary & (total / np.maximum(count, 1) - box > max_step_m)",
        "flying-pixel filter dropping edge pixels in front of the local mean instead of behind it",
        (
            "tests/inference/test_people_pipeline.py::test_flying_pixel_filter_peels_a_trailing_ramp_but_keeps_interior_steps",
        ),
    ),
    Mutation(
        "skeleton_field_depth_sign",
        "rgbd_fusion_core/inference/pipeline.py",
        "return limb_field(depth_m, skeleton, -nearer / self.space.scale)",
        "return limb_field(depth_m, skeleton, nearer / self.space.scale)",
        "mask fill taking the skeleton's depths the wrong way round (a hand reaching forward filled behind the body)",
        ("tests/inference/test_people_pipeline.py::test_fill_mask_follows_the_skeleton_of_an_arm_the_network_missed",),
    ),
    Mutation(
        "skeleton_field_not_aligned",
        "rgbd_fusion_core/geometry/pose_depth.py",
        "return nearest + np.float32(np.median(depth_m[known] - nearest[known]))",
        "return nearest + np.float32(np.median(depth_m[known]))",
        "skeleton depth field not aligned to the predicted pixels (placed at their median depth plus its own)",
        ("tests/geometry/test_pose_depth.py",),
    ),
    Mutation(
        "coarse_blend_sign",
        "rgbd_fusion_core/geometry/pose_depth.py",
        "coarse_shift = weight * (smooth(field) - smooth(depth_m))",
        "coarse_shift = weight * (smooth(depth_m) - smooth(field))",
        "pose blend pushing the coarse depth away from the skeleton instead of towards it",
        ("tests/geometry/test_pose_depth.py",),
    ),
    Mutation(
        "blend_over_sensor_depth",
        "rgbd_fusion_core/inference/pipeline.py",
        'blend = cfg.pose_depth_weight > 0 and sources[j] != "sensor"',
        "blend = cfg.pose_depth_weight > 0",
        "the skeleton's coarse depth blended into depth conditioned on a depth sensor",
        (
            "tests/inference/test_people_pipeline.py::test_the_skeleton_blends_into_predicted_depth_but_not_into_sensor_depth",
        ),
    ),
    Mutation(
        "pose_scale_fx_for_y",
        "rgbd_fusion_core/people/pose_scale.py",
        "A[n:] = np.stack([np.zeros(n), np.full(n, fy), -v], axis=1)\n    b[n:] = v * Z - fy * Y",
        "A[n:] = np.stack([np.zeros(n), np.full(n, fx), -v], axis=1)\n    b[n:] = v * Z - fx * Y",
        "pose-based metric scale: the y equation of the linear fit uses fx instead of fy",
        ("tests/people/test_people.py::test_fit_person_translation_recovers_t",),
    ),
    Mutation(
        "keypoints_to_crop_no_half_pixel",
        "rgbd_fusion_core/people/pose_channels.py",
        "out[:, 0] = (out[:, 0] - x0 + 0.5) * scale - 0.5\n    out[:, 1] = (out[:, 1] - y0 + 0.5) * scale - 0.5",
        "out[:, 0] = (out[:, 0] - x0) * scale\n    out[:, 1] = (out[:, 1] - y0) * scale",
        "keypoints moved into the crop without the half-pixel offsets (pixel corners, not centres)",
        ("tests/people/test_pose_conditioning.py::test_keypoints_move_into_the_crop_with_pixel_centres",),
    ),
    Mutation(
        "depth_65535_read_as_valid",
        "rgbd_fusion_core/io/depth_units.py",
        "metres[(depth_mm == NO_DEPTH_MM) | (depth_mm == INVALID_DEPTH_MM)] = np.nan",
        "metres[depth_mm == NO_DEPTH_MM] = np.nan",
        "65535 mm (the cameras' invalid marker) read as a valid 65.535 m depth",
        ("tests/io/test_imageio.py", "tests/io/test_outputs.py", "tests/inference/test_frame_checks.py"),
    ),
    Mutation(
        "mask_margin_dropped",
        "rgbd_fusion_core/inference/pipeline.py",
        "net_high = np.where(grow(person, cfg.mask_margin_px), net_high, -1.0)",
        "net_high = np.where(grow(person, 0), net_high, -1.0)",
        "the mask margin ignored: output limited to the bare mask, not the mask grown by mask_margin_px",
        ("tests/inference/test_mask_limit.py",),
    ),
    Mutation(
        "mask_limit_dropped",
        "rgbd_fusion_core/inference/pipeline.py",
        "if person is not None:\n                net_high = np.where(grow(",
        "if False:\n                net_high = np.where(grow(",
        "mask-first output dropped: a given mask no longer limits the predicted depth",
        (
            "tests/inference/test_mask_limit.py",
            "tests/inference/test_people_pipeline.py::test_a_given_mask_limits_the_output",
        ),
    ),
    Mutation(
        "settings_none_stand_in_ignored",
        "rgbd_fusion_core/inference/settings.py",
        "if self.none_value is not None and value == self.none_value:",
        "if False:",
        "a setting's plain stand-in for None (seed -1, threshold -1) kept as a value",
        ("tests/inference/test_settings.py",),
    ),
    Mutation(
        "resume_loses_batch_in_epoch",
        "rgbd_fusion_core/training/trainer.py",
        'run.step, run.epoch, run.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]',
        'run.step, run.epoch = state["step"], state["epoch"]',
        "a resumed run restarts its epoch from the first batch (batch_in_epoch not restored)",
        ("tests/training/test_training.py::test_killed_and_resumed_run_equals_uninterrupted",),
    ),
    Mutation(
        "surface_offset_wrong_way",
        "rgbd_fusion_core/people/pose_scale.py",
        "return max(keypoints_z - surface_offset_m, MIN_DEPTH_M)",
        "return max(keypoints_z + surface_offset_m, MIN_DEPTH_M)",
        "the pose z_ref moves the person's surface behind the keypoints instead of in front",
        ("tests/people/test_people.py::test_fit_person_translation_recovers_t",),
    ),
    Mutation(
        "surface_offset_setting_ignored",
        "rgbd_fusion_core/inference/pipeline.py",
        "target.keypoints_2d, target.keypoints_3d, K, surface_offset_m=cfg.pose_surface_offset_m",
        "target.keypoints_2d, target.keypoints_3d, K",
        "the Pipeline's pose z_ref ignores the pose_surface_offset_m setting (always the built-in offset)",
        (
            "tests/inference/test_people_pipeline.py::test_one_rendered_person_is_found_limited_to_them_and_scaled_from_the_pose",
        ),
    ),
    Mutation(
        "shoulder_width_ignores_depth_difference",
        "rgbd_fusion_core/evaluation/shoulder_width.py",
        'return float(np.linalg.norm(points[0] - points[1])), "ok"',
        'return float(np.linalg.norm((points[0] - points[1])[:2])), "ok"',
        "the shoulder width leaves out the shoulders' depth difference (a turned person looks narrower)",
        ("tests/evaluation/test_shoulder_width.py",),
    ),
)


def repository_files(repo: Path) -> list[str]:
    """Tracked files plus untracked files that git does not ignore (relative paths that exist now)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (repo / name).is_file()})


def copy_repository(repo: Path, files: list[str], dest: Path) -> None:
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)


def check_mutation(repo: Path, mutation: Mutation) -> None:
    """Fail loudly when the mutation's old text is not in its file exactly once (the code moved)."""
    path = repo / mutation.file
    if not path.is_file():
        raise SystemExit(f"mutation {mutation.name}: {mutation.file} does not exist (the code moved?)")
    count = path.read_text().count(mutation.old)
    if count != 1:
        raise SystemExit(
            f"mutation {mutation.name}: old text found {count} times in {mutation.file}, expected once "
            f"(the code moved or changed; update the table):\n{mutation.old}"
        )


def apply_mutation(copy: Path, mutation: Mutation) -> None:
    path = copy / mutation.file
    text = path.read_text()
    assert text.count(mutation.old) == 1, mutation.name
    path.write_text(text.replace(mutation.old, mutation.new))


def copy_environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def assert_copy_is_imported(copy: Path) -> None:
    """The copy's packages, not the editable install's, are what Python imports there."""
    code = "import rgbd_fusion_core, rgbd_fusion_ros; print(rgbd_fusion_core.__file__); print(rgbd_fusion_ros.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=copy_environment(copy), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"cannot import the packages in the copy:\n{result.stderr}")
    for line in result.stdout.split():
        if not Path(line).resolve().is_relative_to(copy.resolve()):
            raise SystemExit(f"the copy imports {line}, not its own code; the probe would test nothing")


def run_tests(copy: Path, command: list[str], timeout_s: float) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=copy, env=copy_environment(copy), capture_output=True, text=True, timeout=timeout_s
        )
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as error:
        code, output = -1, f"timed out after {timeout_s} s\n{error.stdout or ''}"
    return code, time.monotonic() - started, output


def summary_line(output: str) -> str:
    """pytest's closing line ("1 failed, 3 passed in 2.1s"), else the last line (libraries log after pytest)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    closing = [line for line in lines if re.search(r"\b(passed|failed|errors?|no tests ran)\b.* in [0-9.]+s", line)]
    return (closing or lines or [""])[-1]


def test_command(tests: tuple[str, ...], full: bool, extra: list[str]) -> list[str]:
    return [*PYTEST, *extra] if full else [*PYTEST, *extra, *tests]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="mutation name to run (repeatable)")
    parser.add_argument("--full", action="store_true", help="run `python -m pytest -q -x` for every mutation")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run on an unmutated copy")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per test command")
    parser.add_argument("--list", action="store_true", help="print the mutation table and exit")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies (their paths are printed)")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)

    if args.list:
        print(json.dumps([asdict(m) for m in MUTATIONS], indent=2))
        return 0
    names = {m.name for m in MUTATIONS}
    unknown = sorted(set(args.only) - names)
    if unknown:
        raise SystemExit(f"unknown mutation(s) {unknown}; choose from {sorted(names)}")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    for mutation in chosen:
        check_mutation(REPO, mutation)
    files = repository_files(REPO)
    for mutation in chosen:
        for test in () if args.full else mutation.tests:
            if test.split("::")[0] not in files:
                raise SystemExit(f"mutation {mutation.name}: test file {test} is not in the repository")

    scratch = Path(tempfile.mkdtemp(prefix="mutation_probe_"))
    report: dict = {"repo": str(REPO), "mode": "full" if args.full else "subset", "scratch": str(scratch)}
    try:
        if not args.no_baseline:
            baseline_copy = scratch / "baseline"
            copy_repository(REPO, files, baseline_copy)
            assert_copy_is_imported(baseline_copy)
            subset = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            command = test_command(subset, args.full, args.pytest_args)
            code, seconds, output = run_tests(baseline_copy, command, args.timeout)
            report["baseline"] = {"passed": code == 0, "seconds": round(seconds, 1), "summary": summary_line(output)}
            if code != 0:
                report["baseline"]["output_tail"] = output[-4000:]
                print(json.dumps(report, indent=2))
                return 2
        results = []
        for mutation in chosen:
            copy = scratch / mutation.name
            copy_repository(REPO, files, copy)
            assert_copy_is_imported(copy)
            apply_mutation(copy, mutation)
            command = test_command(mutation.tests, args.full, args.pytest_args)
            code, seconds, output = run_tests(copy, command, args.timeout)
            results.append(
                {
                    "name": mutation.name,
                    "file": mutation.file,
                    "description": mutation.description,
                    "caught": code in CAUGHT_CODES,
                    "exit_code": code,
                    "seconds": round(seconds, 1),
                    "command": " ".join(command[1:]),
                    "summary": summary_line(output),
                    "failed_tests": [
                        line.split()[1] for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))
                    ],
                }
            )
            verdict = "caught" if code in CAUGHT_CODES else "MISSED" if code == 0 else f"error (exit {code})"
            print(f"{mutation.name}: {verdict} ({seconds:.0f} s)", file=sys.stderr)
            if not args.keep:
                shutil.rmtree(copy, ignore_errors=True)
        report["mutations"] = results
        report["caught"] = [r["name"] for r in results if r["caught"]]
        report["missed"] = [r["name"] for r in results if r["exit_code"] == 0]
        report["errors"] = [r["name"] for r in results if not r["caught"] and r["exit_code"] != 0]
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if not (report["missed"] or report["errors"]) else 1


if __name__ == "__main__":
    sys.exit(main())
