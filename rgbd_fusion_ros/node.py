"""``rgbd_fusion_node``: a managed (lifecycle) ROS 2 node that turns camera frames into metric depth of people.

Inputs (relative, remappable): ``image`` + ``camera_info`` (+ ``mask``) (+ ``depth``), matched by stamp.
Outputs: ``depth/image`` + ``depth/camera_info`` (crop intrinsics), ``points``, optional ``depth/image_full``,
``depth/low_res``, ``depth/uncertainty``, all with the input stamp and frame; ``/diagnostics``.

Lifecycle: configure loads the model (a failure fails the transition), activate subscribes and starts the
worker, deactivate stops both, cleanup releases the model. With ``autostart`` (default) the node configures
and activates itself. Subscription callbacks only match stamps and hand the latest frame to a worker thread;
conversion, inference and publishing run there. No work is done while nobody subscribes to any output.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from rgbd_fusion_core.apps.threads import prefer_passive_omp_wait
from rgbd_fusion_ros.conversions import check_messages, frame_from_messages
from rgbd_fusion_ros.diagnostics import diagnostic_array
from rgbd_fusion_ros.messages import OUTPUT_TOPICS, build_outputs, copy_header, rclpy_types
from rgbd_fusion_ros.parameters import PARAMETERS, NodeSettings, declare_parameters, settings_from_parameters
from rgbd_fusion_ros.stats import NodeStats
from rgbd_fusion_ros.sync import StampSynchronizer
from rgbd_fusion_ros.throttle import MessageThrottle
from rgbd_fusion_ros.transport_limit import oversize_warning
from rgbd_fusion_ros.worker import LatestItemWorker

NODE_NAME = "rgbd_fusion"
INPUT_TOPICS = ("image", "camera_info", "mask", "depth")  # relative names; mask and depth only when enabled
WARNING_PERIOD_S = 5.0
WORKER_STOP_TIMEOUT_S = 30.0
MAX_LOG_CHARS = 500  # a warning built from message contents is cut to this length
USAGE = """usage: rgbd_fusion_node [--ros-args [-p NAME:=VALUE]... [--params-file FILE] [-r FROM:=TO]...]

A lifecycle node: image + camera_info (+ mask, + depth) in; depth/image, depth/camera_info, points out.
Parameters (-p NAME:=VALUE; `ros2 param describe <node> NAME` gives ranges and choices):
"""


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """Keep-last volatile QoS; ("best_effort", 5) is ROS's sensor-data profile."""
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy, durability=DurabilityPolicy.VOLATILE
    )


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class RgbdFusionNode(LifecycleNode):
    """The lifecycle node. Raises ``ValueError`` (or rclpy's ParameterException) for invalid parameters."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.settings: NodeSettings = settings_from_parameters(declare_parameters(self))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._types = rclpy_types()
        self._stats = NodeStats()
        self._throttle = MessageThrottle(WARNING_PERIOD_S)
        self._pipeline = None
        self._device = ""
        self._outputs = {}
        self._diagnostics_publisher = None
        self._diagnostics_timer = None
        self._last_summary: dict[str, float] = {}
        self._subscriptions_by_stream = {}
        self._sync: StampSynchronizer | None = None
        self._worker: LatestItemWorker | None = None
        self._last_accepted = 0.0

    # --- parameters -----------------------------------------------------------------------------------------

    def _current_parameter_values(self) -> dict:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Refuse invalid values with the reason; apply the live ones now (the rest at the next configure)."""
        values = self._current_parameter_values() | {parameter.name: parameter.value for parameter in parameters}
        try:
            requested = settings_from_parameters(values)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        current = self.settings
        self.settings = dataclasses.replace(
            current,
            pipeline=dataclasses.replace(requested.pipeline, full_frame=current.pipeline.full_frame),
            outputs=dataclasses.replace(current.outputs, depth_encoding=requested.outputs.depth_encoding),
            use_alpha_as_mask=requested.use_alpha_as_mask,
            sync_tolerance_s=requested.sync_tolerance_s,
            max_rate_hz=requested.max_rate_hz,
            frame_id=requested.frame_id,
        )
        if self._sync is not None:
            self._sync.tolerance_ns = round(requested.sync_tolerance_s * 1e9)
        if self._pipeline is not None and self._pipeline.config != self.settings.pipeline:
            self._pipeline = self._pipeline.with_config(self.settings.pipeline)  # same loaded models
        return SetParametersResult(successful=True)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def autostart(self) -> bool:
        """Configure, then activate; True when the node ends up active."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._logged_transition("configure", self._configure, state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._logged_transition("activate", self._activate, state)

    def _logged_transition(self, name: str, transition, state: LifecycleState) -> TransitionCallbackReturn:
        """rclpy turns an exception in a transition callback into a silent ERROR: log it first."""
        try:
            return transition(state)
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"{name} failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.ERROR

    def _configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.settings = settings_from_parameters(self._current_parameter_values())
        settings = self.settings
        model_name = settings.model or "the shipped default model"
        try:
            from rgbd_fusion_core.inference.pipeline import Pipeline

            self._device = self._resolve_device(settings.device)
            self._pipeline = Pipeline.from_pretrained(
                model=settings.model,
                backend=settings.backend,
                device=self._device,
                config=settings.pipeline,
                video=True,
                onnx=settings.onnx,
            )
        except Exception as error:  # noqa: BLE001 - any load failure fails the transition, with its reason
            self.get_logger().error(
                f"configure failed: could not load {model_name} (backend {settings.backend}, device "
                f"{settings.device}): {type(error).__name__}: {error}"
            )
            self._pipeline = None
            return TransitionCallbackReturn.FAILURE
        output_qos = qos_profile(settings.output_reliability, settings.output_depth)
        for name in settings.outputs.enabled_outputs():
            message_class = self._types.message_class(OUTPUT_TOPICS[name])
            self._outputs[name] = self.create_lifecycle_publisher(message_class, name, output_qos)
        from diagnostic_msgs.msg import DiagnosticArray

        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(settings.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(
            f"configured: {model_name}, backend {self._pipeline.backend} on {self._device}; outputs "
            + ", ".join(self._outputs[name].topic_name for name in self._outputs)
        )
        return super().on_configure(state)

    def _activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self.settings
        enabled = {"mask": settings.use_mask, "depth": settings.use_depth}
        streams = [name for name in INPUT_TOPICS if enabled.get(name, True)]
        self._sync = StampSynchronizer(streams, round(settings.sync_tolerance_s * 1e9), settings.sync_queue_size)
        self._worker = LatestItemWorker(self._process_frame, self._on_worker_error, name="rgbd_fusion_worker")
        input_qos = qos_profile(settings.input_reliability, settings.input_depth)
        for stream in streams:
            message_class = self._types.CameraInfo if stream == "camera_info" else self._types.Image
            self._subscriptions_by_stream[stream] = self.create_subscription(
                message_class, stream, lambda msg, stream=stream: self._on_message(stream, msg), input_qos
            )
        self.get_logger().info(
            "active: matching " + ", ".join(sub.topic_name for sub in self._subscriptions_by_stream.values())
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_outputs()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release_outputs()
        return super().on_shutdown(state)

    def close(self) -> None:
        """Stop taking frames, end the worker and release the person finder (before ``destroy_node``, whatever
        the lifecycle state)."""
        self._stop_inputs()
        if self._pipeline is not None:
            self._pipeline.close()

    def _stop_inputs(self) -> None:
        for subscription in self._subscriptions_by_stream.values():
            self.destroy_subscription(subscription)
        self._subscriptions_by_stream.clear()
        if self._worker is not None and not self._worker.stop(WORKER_STOP_TIMEOUT_S):
            self.get_logger().warning(f"the worker did not finish its frame within {WORKER_STOP_TIMEOUT_S} s")
        self._worker = None

    def _release_outputs(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs.clear()
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self.destroy_publisher(self._diagnostics_publisher)
        self._diagnostics_timer = self._diagnostics_publisher = None
        if self._pipeline is not None:
            self._pipeline.close()
        self._pipeline = None

    def _resolve_device(self, requested: str) -> str:
        """'auto' -> 'cuda' when torch sees a CUDA device, else 'cpu' with one warning."""
        if requested != "auto":
            return requested
        import torch

        if torch.cuda.is_available():
            return "cuda"
        self.get_logger().warning("device 'auto': no CUDA device found, running inference on the CPU (slow)")
        return "cpu"

    # --- input side (executor thread): match stamps, hand the latest frame to the worker ---------------------

    def _on_message(self, stream: str, msg) -> None:
        self._stats.count(f"received_{stream}")
        if stream == "camera_info" and (too_large := oversize_warning(msg.width, msg.height)):
            self._stats.count("oversize_images_announced")
            self._warn_throttled(too_large)
        sync, worker = self._sync, self._worker
        if sync is None or worker is None:
            return
        matched = sync.add(stream, stamp_ns(msg.header), msg)
        if matched is None:
            return
        try:  # cheap checks here, so a malformed frame never displaces a good one waiting for the worker
            check_messages(matched["image"], matched["camera_info"], matched.get("mask"), matched.get("depth"))
        except ValueError as error:
            self._stats.count("bad_input")
            self._warn_throttled(f"skipping frame: {error}")
            return
        if not any(publisher.get_subscription_count() for publisher in self._outputs.values()):
            self._stats.count("skipped_no_subscribers")
            return
        max_rate = self.settings.max_rate_hz
        now = time.monotonic()
        if max_rate > 0 and now - self._last_accepted < 1.0 / max_rate:
            self._stats.count("skipped_rate_limit")
            return
        self._last_accepted = now
        worker.submit(matched)

    # --- worker thread: convert, infer, publish ----------------------------------------------------------------

    def _process_frame(self, matched: dict) -> None:
        settings, pipeline = self.settings, self._pipeline
        image = matched["image"]
        started = time.perf_counter()
        try:
            frame = frame_from_messages(
                image, matched["camera_info"], matched.get("mask"), matched.get("depth"), settings.use_alpha_as_mask
            )
        except ValueError as error:
            self._stats.count("bad_input")
            self._warn_throttled(f"skipping frame: {error}")
            return
        converted = time.perf_counter()
        try:
            result = pipeline([frame])[0]
        except ValueError as error:  # the pipeline's own checks of the frame (e.g. no depth on the person)
            self._stats.count("bad_input")
            self._warn_throttled(f"skipping frame: {error}")
            return
        inferred = time.perf_counter()
        self._stats.count("people_found", result.people_found)
        if result.people_found == 0:  # nobody in view: nothing to publish for this frame
            self._stats.count("frames_with_nobody")
            return
        wanted = {name for name, publisher in self._outputs.items() if publisher.get_subscription_count()}
        header = copy_header(self._types, image.header, settings.frame_id)
        messages = build_outputs(self._types, result, header, settings.outputs, wanted)
        built = time.perf_counter()
        for name, msg in messages.items():
            self._outputs[name].publish(msg)
        published = time.perf_counter()
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns(image.header)) / 1e6
        stages = {"convert": converted - started, "pipeline": inferred - converted, "build": built - inferred}
        stages["publish"] = published - built
        stage_ms = {name: seconds * 1e3 for name, seconds in stages.items()}
        stage_ms |= {f"pipeline_{name}": ms for name, ms in result.timings_ms.items()}  # crop, stage1, stage2, ...
        self._stats.record_frame(latency_ms, stage_ms)

    def _on_worker_error(self, error: BaseException) -> None:
        self._stats.count("pipeline_errors")
        self._warn_throttled(f"frame failed in inference or publishing: {type(error).__name__}: {error}")

    def _warn_throttled(self, text: str) -> None:
        if len(text) > MAX_LOG_CHARS:
            text = f"{text[:MAX_LOG_CHARS]}... ({len(text) - MAX_LOG_CHARS} more characters)"
        suppressed = self._throttle.admit(text)
        if suppressed is not None:
            repeats = f" (repeated {suppressed} times in the last {WARNING_PERIOD_S:.0f} s)" if suppressed else ""
            self.get_logger().warning(text + repeats)

    # --- diagnostics ---------------------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        summary = self._stats.summary()
        summary["dropped_unmatched"] = self._sync.dropped if self._sync is not None else 0
        summary["dropped_stale"] = self._worker.dropped if self._worker is not None else 0
        backend = self._pipeline.backend if self._pipeline is not None else self.settings.backend
        hardware_id = f"{backend}/{self._device}"
        name = f"{self.get_fully_qualified_name()}: depth inference"
        self._diagnostics_publisher.publish(
            diagnostic_array(self.get_clock().now().to_msg(), name, hardware_id, summary, self._last_summary)
        )
        self._last_summary = summary


def main(argv: list[str] | None = None) -> int:
    """Console script ``rgbd_fusion_node``: accepts ``--ros-args`` (params files, remaps, ``-p``)."""
    from rclpy.exceptions import ParameterException

    args = argv if argv is not None else sys.argv
    if {"-h", "--help"} & set(args[1:]):
        names = "\n".join(f"  {spec.name}: {spec.help}" for spec in PARAMETERS)
        print(USAGE + names)
        return 0
    prefer_passive_omp_wait()  # before torch is imported (the model loads in configure)
    try:
        rclpy.init(args=args)
    except Exception as error:  # noqa: BLE001 - rclpy's UnknownROSArgsError and other argument errors
        print(f"rgbd_fusion_node: {type(error).__name__}: {error}\n{USAGE.splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        node = RgbdFusionNode()
    except (ValueError, ParameterException) as error:
        print(f"rgbd_fusion_node: invalid parameters: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.settings.autostart and not node.autostart():
            node.get_logger().error("autostart failed; the node stays unconfigured (see the error above)")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
