"""The node's parameters: one table (name, default, description, range or choices), validation, and the mapping
to ``PipelineConfig`` / ``OutputOptions`` / ``NodeSettings``.

Ranges go into the ``ParameterDescriptor`` so rclpy enforces them at declaration (``--params-file``, ``-p``)
and on ``set_parameters``; choices and cross-parameter rules are checked by ``settings_from_parameters``, which
the node runs at start-up and in its set-parameters callback. Parameters marked ``live`` apply to the next
frame; the others apply at the next ``configure`` transition (they need a model reload or new topics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from rgbd_fusion_core.pipeline_io import CROP_MODES, REFERENCE_DEPTH_STRATEGIES, PipelineConfig
from rgbd_fusion_ros.messages import DEPTH_OUTPUT_ENCODINGS, OutputOptions

BACKENDS = ("torch", "onnxruntime", "tensorrt")  # the names Pipeline.from_pretrained takes
SAMPLERS = ("ddpm", "ddim", "dpmpp2m")
RELIABILITIES = ("best_effort", "reliable")
MAX_INT32 = 2**31 - 1
NODE_CROP_MODES = tuple(mode for mode in CROP_MODES if mode != "roi")  # the node has no region input


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter: its default (which also fixes its type), a description, and its allowed values
    (``value_range`` (min, max) for numbers, ``choices`` for strings). ``live``: applies without reconfiguring."""

    name: str
    default: Any
    description: str
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    live: bool = False

    def descriptor(self) -> ParameterDescriptor:
        when = "applies to the next frame" if self.live else "applies at the next configure transition"
        constraints = f"one of: {', '.join(self.choices)}" if self.choices else ""
        descriptor = ParameterDescriptor(
            name=self.name, description=f"{self.description} ({when})", additional_constraints=constraints
        )
        if self.value_range is not None and isinstance(self.default, float):
            low, high = self.value_range
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
            ]
        elif self.value_range is not None:
            low, high = self.value_range
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        return descriptor


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("autostart", True, "configure and activate on start-up (false: wait for a lifecycle manager)"),
    # model and compute
    ParameterSpec("model", "", "model folder with stage1/stage2.safetensors; empty = the shipped default model"),
    ParameterSpec("backend", "torch", "inference backend", choices=BACKENDS),
    ParameterSpec("device", "auto", "'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'"),
    # sampling
    ParameterSpec("sampler1", "dpmpp2m", "stage-1 (64x64 depth) sampler", choices=SAMPLERS, live=True),
    ParameterSpec("steps1", 3, "stage-1 sampling steps", value_range=(1, 1000), live=True),
    ParameterSpec("sampler2", "dpmpp2m", "stage-2 (256x256 super-resolution) sampler", choices=SAMPLERS, live=True),
    ParameterSpec("steps2", 2, "stage-2 sampling steps", value_range=(1, 1000), live=True),
    ParameterSpec("seed", 0, "sampling seed; -1 = nondeterministic", value_range=(-1, MAX_INT32), live=True),
    ParameterSpec(
        "threshold",
        -1.0,
        "foreground threshold in network space; -1 = the model's own threshold",
        value_range=(-1.0, 1.0),
        live=True,
    ),
    ParameterSpec(
        "uncertainty_samples",
        0,
        "stage-2 samples whose per-pixel std is published on depth/uncertainty; 0 = off (1 is not allowed)",
        value_range=(0, 64),
        live=True,
    ),
    # metric scale and crop
    ParameterSpec(
        "reference_depth",
        "auto",
        "source of the metric reference depth (auto: sensor depth if given, else the height prior)",
        choices=REFERENCE_DEPTH_STRATEGIES,
        live=True,
    ),
    ParameterSpec("fixed_distance_m", 2.5, "reference depth for reference_depth=fixed (m)", (0.1, 50.0), live=True),
    ParameterSpec("person_height_m", 1.7, "person height for the height prior (m)", (0.5, 2.5), live=True),
    ParameterSpec("crop_mode", "auto", "how the person crop is chosen", choices=NODE_CROP_MODES, live=True),
    ParameterSpec("crop_margin", 0.1, "fraction of the box size added on each side of the crop", (0.0, 1.0), live=True),
    # inputs
    ParameterSpec("use_mask", False, "subscribe to 'mask' (mono8) and match it with each image"),
    ParameterSpec("use_depth", False, "subscribe to 'depth' (16UC1 mm / 32FC1 m): stage-2-only mode"),
    ParameterSpec(
        "use_alpha_as_mask", True, "use the alpha channel of rgba8/bgra8 images as the person mask", live=True
    ),
    ParameterSpec(
        "input_reliability", "best_effort", "QoS reliability of the camera subscriptions", choices=RELIABILITIES
    ),
    ParameterSpec("input_depth", 5, "QoS history depth of the camera subscriptions", value_range=(1, 100)),
    ParameterSpec(
        "sync_tolerance_s", 0.01, "largest stamp difference matched between input topics (s)", (0.0, 1.0), live=True
    ),
    ParameterSpec(
        "sync_queue_size", 10, "messages kept per input topic while waiting for a match", value_range=(1, 100)
    ),
    ParameterSpec(
        "max_rate_hz",
        0.0,
        "most frames processed per second; 0 = as fast as inference allows",
        (0.0, 1000.0),
        live=True,
    ),
    # outputs
    ParameterSpec(
        "depth_encoding",
        "32FC1",
        "depth image encoding: 32FC1 metres (NaN) or 16UC1 millimetres (0)",
        choices=DEPTH_OUTPUT_ENCODINGS,
        live=True,
    ),
    ParameterSpec("publish_full_frame", False, "also publish depth/image_full aligned with the input camera_info"),
    ParameterSpec("publish_low_res", False, "also publish depth/low_res (the 64x64 stage-1 depth)"),
    ParameterSpec("publish_uncertainty", False, "also publish depth/uncertainty (needs uncertainty_samples >= 2)"),
    ParameterSpec("frame_id", "", "frame_id of every output; empty = the input image's frame_id", live=True),
    ParameterSpec("output_reliability", "reliable", "QoS reliability of the output publishers", choices=RELIABILITIES),
    ParameterSpec("output_depth", 2, "QoS history depth of the output publishers", value_range=(1, 100)),
    ParameterSpec("diagnostics_period_s", 1.0, "period of /diagnostics messages (s)", value_range=(0.1, 60.0)),
)
PARAMETERS_BY_NAME = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeSettings:
    """Everything the node does, decided from its parameters (see ``PARAMETERS`` for meanings)."""

    autostart: bool
    model: str | None
    backend: str
    device: str
    pipeline: PipelineConfig
    outputs: OutputOptions
    use_mask: bool
    use_depth: bool
    use_alpha_as_mask: bool
    input_reliability: str
    input_depth: int
    sync_tolerance_s: float
    sync_queue_size: int
    max_rate_hz: float
    frame_id: str
    output_reliability: str
    output_depth: int
    diagnostics_period_s: float


def settings_from_parameters(values: dict[str, Any]) -> NodeSettings:
    """Parameter name -> value (every name in ``PARAMETERS``) -> NodeSettings.

    Raises ``ValueError`` naming the parameter and the reason for a value out of range, not among the choices,
    of the wrong type, or inconsistent with another parameter.
    """
    for spec in PARAMETERS:
        _check_value(spec, values[spec.name])
    device = values["device"]
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"parameter 'device': expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if values["publish_uncertainty"] and values["uncertainty_samples"] < 2:
        raise ValueError("parameter 'publish_uncertainty' is true but 'uncertainty_samples' is below 2")
    if values["reference_depth"] == "sensor" and not values["use_depth"]:
        raise ValueError("parameter 'reference_depth' is 'sensor' but 'use_depth' is false (no sensor depth input)")
    try:
        pipeline = PipelineConfig(
            sampler1=values["sampler1"],
            steps1=values["steps1"],
            sampler2=values["sampler2"],
            steps2=values["steps2"],
            seed=None if values["seed"] < 0 else values["seed"],
            reference_depth=values["reference_depth"],
            fixed_distance_m=values["fixed_distance_m"],
            person_height_m=values["person_height_m"],
            crop_mode=values["crop_mode"],
            crop_margin=values["crop_margin"],
            full_frame=values["publish_full_frame"],
            uncertainty_samples=values["uncertainty_samples"],
            threshold=None if values["threshold"] <= -1.0 else values["threshold"],
        )
    except ValueError as error:
        raise ValueError(f"parameters refused by the pipeline: {error}") from error
    outputs = OutputOptions(
        depth_encoding=values["depth_encoding"],
        full_frame=values["publish_full_frame"],
        low_res=values["publish_low_res"],
        uncertainty=values["publish_uncertainty"],
    )
    return NodeSettings(
        autostart=values["autostart"],
        model=values["model"] or None,
        backend=values["backend"],
        device=device,
        pipeline=pipeline,
        outputs=outputs,
        use_mask=values["use_mask"],
        use_depth=values["use_depth"],
        use_alpha_as_mask=values["use_alpha_as_mask"],
        input_reliability=values["input_reliability"],
        input_depth=values["input_depth"],
        sync_tolerance_s=values["sync_tolerance_s"],
        sync_queue_size=values["sync_queue_size"],
        max_rate_hz=values["max_rate_hz"],
        frame_id=values["frame_id"],
        output_reliability=values["output_reliability"],
        output_depth=values["output_depth"],
        diagnostics_period_s=values["diagnostics_period_s"],
    )


def _check_value(spec: ParameterSpec, value: Any) -> None:
    """Type, range and choices of one value (rclpy checks ranges too; this also covers plain Python callers)."""
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ValueError(f"parameter {spec.name!r}: expected {expected.__name__}, got {value!r}")
    if spec.value_range is not None and not spec.value_range[0] <= value <= spec.value_range[1]:
        raise ValueError(f"parameter {spec.name!r}: {value} is outside [{spec.value_range[0]}, {spec.value_range[1]}]")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"parameter {spec.name!r}: {value!r} is not one of {', '.join(spec.choices)}")


def declare_parameters(node) -> dict[str, Any]:
    """Declare every parameter on ``node`` with its descriptor; returns name -> value (overrides applied).

    rclpy raises ``InvalidParameterValueException`` here for an override outside a declared range.
    """
    return {spec.name: node.declare_parameter(spec.name, spec.default, spec.descriptor()).value for spec in PARAMETERS}
