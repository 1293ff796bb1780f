"""The node's parameters: the Pipeline's and the model source's settings (declared once in
``rgbd_fusion_core.inference``), plus the node's own (topics, QoS, outputs), validation, and the mapping to
``PipelineConfig`` / ``OutputOptions`` / ``NodeSettings``.

Ranges go into the ``ParameterDescriptor`` so rclpy enforces them at declaration (``--params-file``, ``-p``)
and on ``set_parameters``; choices and cross-parameter rules are checked by ``settings_from_parameters``, which
the node runs at start-up and in its set-parameters callback. Parameters marked ``live`` apply to the next
frame; the others apply at the next ``configure`` transition (they need a model reload or new topics). Optional
pipeline values use their declared plain stand-in (seed -1 = nondeterministic, threshold -1 = the model's own).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from rgbd_fusion_core.inference.pipeline_io import (
    CROP_MODES,
    MODEL_SOURCE_SETTINGS,
    PIPELINE_SETTINGS,
    ModelSource,
    PipelineConfig,
)
from rgbd_fusion_core.inference.settings import Setting, config_from_plain
from rgbd_fusion_ros.messages import DEPTH_OUTPUT_ENCODINGS, OutputOptions

RELIABILITIES = ("best_effort", "reliable")
NODE_CROP_MODES = tuple(mode for mode in CROP_MODES if mode != "roi")  # the node has no region input


def descriptor(spec: Setting) -> ParameterDescriptor:
    """The rclpy descriptor of a setting: description, choices as constraints, numeric range."""
    when = "applies to the next frame" if spec.live else "applies at the next configure transition"
    constraints = f"one of: {', '.join(spec.choices)}" if spec.choices else ""
    result = ParameterDescriptor(
        name=spec.name, description=f"{spec.help} ({when})", additional_constraints=constraints
    )
    if spec.value_range is not None and spec.kind is float:
        low, high = spec.value_range
        result.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    elif spec.value_range is not None:
        low, high = spec.value_range
        result.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    return result


def _node_form(spec: Setting) -> Setting:
    return dataclasses.replace(spec, choices=NODE_CROP_MODES) if spec.name == "crop_mode" else spec


NODE_SETTINGS: tuple[Setting, ...] = (
    Setting("autostart", True, "configure and activate on start-up (false: wait for a lifecycle manager)", live=False),
    Setting("use_mask", False, "subscribe to 'mask' (mono8) and match it with each image", live=False),
    Setting("use_depth", False, "subscribe to 'depth' (16UC1 mm / 32FC1 m): stage-2-only mode", live=False),
    Setting("use_alpha_as_mask", True, "use the alpha channel of rgba8/bgra8 images as the person mask", live=True),
    Setting(
        "input_reliability",
        "best_effort",
        "QoS reliability of the camera subscriptions",
        choices=RELIABILITIES,
        live=False,
    ),
    Setting("input_depth", 5, "QoS history depth of the camera subscriptions", value_range=(1, 100), live=False),
    Setting(
        "sync_tolerance_s", 0.01, "largest stamp difference matched between input topics (s)", (0.0, 1.0), live=True
    ),
    Setting(
        "sync_queue_size",
        10,
        "messages kept per input topic while waiting for a match",
        value_range=(1, 100),
        live=False,
    ),
    Setting(
        "max_rate_hz",
        0.0,
        "most frames processed per second; 0 = as fast as inference allows",
        (0.0, 1000.0),
        live=True,
    ),
    Setting(
        "depth_encoding",
        "32FC1",
        "depth image encoding: 32FC1 metres (NaN) or 16UC1 millimetres (0)",
        choices=DEPTH_OUTPUT_ENCODINGS,
        live=True,
    ),
    Setting("publish_low_res", False, "also publish depth/low_res (the 64x64 stage-1 depth)", live=False),
    Setting(
        "publish_uncertainty", False, "also publish depth/uncertainty (needs uncertainty_samples >= 2)", live=False
    ),
    Setting("frame_id", "", "frame_id of every output; empty = the input image's frame_id", live=True),
    Setting(
        "output_reliability", "reliable", "QoS reliability of the output publishers", choices=RELIABILITIES, live=False
    ),
    Setting("output_depth", 2, "QoS history depth of the output publishers", value_range=(1, 100), live=False),
    Setting("diagnostics_period_s", 1.0, "period of /diagnostics messages (s)", value_range=(0.1, 60.0), live=False),
)
PARAMETERS: tuple[Setting, ...] = (
    NODE_SETTINGS[:1]
    + MODEL_SOURCE_SETTINGS
    + tuple(_node_form(spec) for spec in PIPELINE_SETTINGS)
    + NODE_SETTINGS[1:]
)
PARAMETERS_BY_NAME = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeSettings:
    """Everything the node does, decided from its parameters (see ``PARAMETERS`` for meanings)."""

    autostart: bool
    model: str | None
    backend: str
    device: str
    onnx: str | None
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
        spec.check(values[spec.name], where="parameter")
    if values["publish_uncertainty"] and values["uncertainty_samples"] < 2:
        raise ValueError("parameter 'publish_uncertainty' is true but 'uncertainty_samples' is below 2")
    if values["reference_depth"] == "sensor" and not values["use_depth"]:
        raise ValueError("parameter 'reference_depth' is 'sensor' but 'use_depth' is false (no sensor depth input)")
    try:
        source = config_from_plain(ModelSource, values, where="parameter")
        pipeline = config_from_plain(PipelineConfig, values, where="parameter")
    except ValueError as error:
        raise ValueError(f"parameters refused by the pipeline: {error}") from error
    outputs = OutputOptions(
        depth_encoding=values["depth_encoding"],
        full_frame=values["full_frame"],
        low_res=values["publish_low_res"],
        uncertainty=values["publish_uncertainty"],
    )
    return NodeSettings(
        autostart=values["autostart"],
        model=source.model or None,
        backend=source.backend,
        device=source.device,
        onnx=source.onnx or None,
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


def declare_parameters(node) -> dict[str, Any]:
    """Declare every parameter on ``node`` with its descriptor; returns name -> value (overrides applied).

    rclpy raises ``InvalidParameterValueException`` here for an override outside a declared range.
    """
    return {
        spec.name: node.declare_parameter(spec.name, spec.plain_default, descriptor(spec)).value for spec in PARAMETERS
    }
