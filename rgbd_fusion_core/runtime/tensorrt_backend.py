"""Native TensorRT backend: an engine built once from the exported ONNX, cached beside it, run on GPU buffers.

Written against the TensorRT 10 Python API (``tensorrt`` is imported only when used):

- build: ``Builder`` -> ``create_network(0)`` (explicit batch is the only mode in TensorRT 10) -> ``OnnxParser``
  -> ``BuilderConfig`` (workspace pool limit, FP16 flag, one optimisation profile min/opt/max over the batch
  axis, a timing cache loaded from and saved to disk, ``ProfilingVerbosity.DETAILED``) ->
  ``build_serialized_network`` -> engine file; then the ``IEngineInspector`` JSON of the built engine gives the
  precision each layer really runs in (logged, and counted in the sidecar).
- cache: ``stage1.onnx`` -> ``stage1.fp16.engine`` + ``stage1.fp16.engine.json``, a sidecar with the TensorRT
  version, the ONNX sha256, the precision, the batch range and the GPU. The engine is rebuilt on request, when
  the sidecar does not match (another TensorRT, another ONNX, another GPU) or when it serves too small a batch.
- run: ``set_input_shape`` + ``set_tensor_address`` on torch CUDA tensors, ``execute_async_v3`` on a private
  stream ordered against the caller's current stream; optionally one CUDA graph per batch size, each with its
  own execution context and static buffers (a graph fixes shapes, addresses and the context it captured); a
  capture that fails turns CUDA graphs off with one warning. A batch above the engine's max batch runs in parts.

FP16: with ``BuilderFlag.FP16`` every layer may run in half precision, but fp16 cannot represent ``t * freq``
(t up to 1000: spacing 0.5) well enough for the sinusoidal time embedding. The layers that depend on the ``t``
input alone (embedding and its MLPs, a few (B, C) tensors) are therefore kept in fp32, with
``OBEY_PRECISION_CONSTRAINTS`` (``PREFER_...`` falls back to fp16 with only a TensorRT warning). Inside a fused
(Myelin) region a layer's precision is not reported; the pinned tensors the engine still shows are checked after
the build and any that is not fp32 is a warning. TensorRT 11 removed weakly typed FP16 (``BuilderFlag.FP16``);
there only fp32 engines are built and ``fp16=True`` raises.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rgbd_fusion_core.io.atomic import write_bytes_atomic, write_text_atomic
from rgbd_fusion_core.io.hashing import sha256_file
from rgbd_fusion_core.runtime.graph_contract import INPUT_NAMES, OUTPUT_NAME

log = logging.getLogger(__name__)
NO_GPU = "TensorRT needs an NVIDIA GPU; none here"
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class EngineSettings:
    """How an engine is built. Batch sizes: the optimisation profile's min = 1, opt and max. fp16 is the default
    of the API and of ``rgbd-fusion build-engine`` alike (the point of TensorRT on a GPU; the time embedding stays
    fp32), so both build and reuse the same ``*.fp16.engine``."""

    fp16: bool = True
    max_batch: int = 8
    opt_batch: int = 1
    workspace_mb: int = 1024

    def __post_init__(self):
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= opt_batch ({self.opt_batch}) <= max_batch ({self.max_batch})")
        if self.workspace_mb < 16:
            raise ValueError(f"workspace_mb {self.workspace_mb} is too small (at least 16 MB)")


@dataclass(frozen=True)
class EngineBuild:
    path: Path
    built: bool  # False: the cached engine was current and reused
    reason: str  # why it was (re)built, or "up to date"
    seconds: float


def import_tensorrt():
    """The ``tensorrt`` module, or a clear error naming what is missing."""
    if not torch.cuda.is_available():
        raise RuntimeError(f"{NO_GPU} (torch.cuda.is_available() is False)")
    try:
        import tensorrt
    except ImportError as error:
        raise RuntimeError(f"TensorRT is not installed: pip install 'rgbd-fusion[tensorrt]' ({error})") from error
    return tensorrt


def cuda_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"TensorRT runs on a CUDA device, not {str(device)!r}")
    return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())


@functools.cache
def trt_logger(trt):
    """One TensorRT logger per process (warnings and errors)."""
    return trt.Logger(trt.Logger.WARNING)


def engine_path_for(onnx_path: str | Path, fp16: bool) -> Path:
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{'fp16' if fp16 else 'fp32'}.engine")


def sidecar_path_for(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def engine_identity(trt, onnx_path: Path, settings: EngineSettings, device: torch.device) -> dict:
    """What an engine must have been built from and for, to be reused."""
    major, minor = torch.cuda.get_device_capability(device)
    return {
        "sidecar_version": SIDECAR_VERSION,
        "tensorrt_version": trt.__version__,
        "onnx_sha256": sha256_file(onnx_path),
        "fp16": settings.fp16,
        "gpu": torch.cuda.get_device_name(device),
        "compute_capability": f"{major}.{minor}",
    }


def stale_reason(engine_path: Path, identity: dict, settings: EngineSettings) -> str | None:
    """Why the cached engine cannot be reused, or None when it can."""
    sidecar = sidecar_path_for(engine_path)
    if not engine_path.exists() or not sidecar.exists():
        return "no cached engine"
    try:
        recorded = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return f"unreadable {sidecar.name}"
    for key, value in identity.items():
        if recorded.get(key) != value:
            return f"{key} changed ({recorded.get(key)!r} -> {value!r})"
    if recorded.get("max_batch", 0) < settings.max_batch:
        return f"cached engine serves batches up to {recorded.get('max_batch')}, {settings.max_batch} requested"
    return None


def build_engine(
    onnx_path: str | Path,
    settings: EngineSettings | None = None,
    device: str | torch.device = "cuda",
    rebuild: bool = False,
) -> EngineBuild:
    """Build (or reuse) the engine of an exported stage ONNX; the timing cache is shared per folder."""
    settings = settings or EngineSettings()
    trt = import_tensorrt()
    device = cuda_device(device)
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    engine_path = engine_path_for(onnx_path, settings.fp16)
    identity = engine_identity(trt, onnx_path, settings, device)
    reason = "rebuild requested" if rebuild else stale_reason(engine_path, identity, settings)
    if reason is None:
        return EngineBuild(engine_path, built=False, reason="up to date", seconds=0.0)
    log.info("building TensorRT engine %s (%s)", engine_path, reason)
    start = time.perf_counter()
    timing_cache = onnx_path.with_name(f"timing-trt{trt.__version__}.cache")
    with torch.cuda.device(device):
        serialized, pinned = serialize_engine(trt, onnx_path, settings, timing_cache)
        precisions = engine_layer_precisions(trt, serialized, pinned, onnx_path)
    write_bytes_atomic(engine_path, serialized)
    sidecar = {**identity, **asdict(settings), "layer_precisions": precisions, "built_unix_time": int(time.time())}
    write_text_atomic(sidecar_path_for(engine_path), json.dumps(sidecar, indent=2) + "\n")
    return EngineBuild(engine_path, built=True, reason=reason, seconds=time.perf_counter() - start)


def serialize_engine(trt, onnx_path: Path, settings: EngineSettings, timing_cache_path: Path) -> tuple[bytes, set[str]]:
    """Parse the ONNX, configure precision / profile / timing cache; the serialised engine and the names of the
    tensors pinned to fp32."""
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT could not parse the ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions for the engine inspector
    pinned: set[str] = set()
    if settings.fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise RuntimeError(
                f"TensorRT {trt.__version__} has no weakly typed FP16 (removed in TensorRT 11); build with fp16 off"
            )
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = pin_timestep_layers_to_fp32(trt, network)
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("%s: %d timestep-embedding tensors pinned to fp32", onnx_path.name, len(pinned))
    config.add_optimization_profile(batch_profile(builder, network, settings, onnx_path))
    load_timing_cache(config, timing_cache_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    write_bytes_atomic(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized), pinned


def engine_layer_precisions(trt, serialized: bytes, pinned: set[str], onnx_path: Path) -> dict[str, int]:
    """Layers per output precision of a built engine (engine inspector, at the profile's opt shapes); logs the
    counts and warns about each pinned tensor the engine runs in another precision than fp32."""
    engine = trt.Runtime(trt_logger(trt)).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    for name in INPUT_NAMES:  # without input shapes the inspector reports no formats for dynamic shapes
        context.set_input_shape(name, tuple(engine.get_tensor_profile_shape(name, 0)[1]))
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    layers = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)).get("Layers", [])
    return summarise_layer_precisions(layers, pinned, onnx_path)


def summarise_layer_precisions(layers: list, pinned: set[str], onnx_path: Path) -> dict[str, int]:
    """Count engine-inspector layers (DETAILED JSON) by the precision of their first output; warn about pinned
    tensors that are not fp32."""
    counts: dict[str, int] = {}
    seen, not_fp32 = set(), []
    for layer in layers:
        outputs = layer.get("Outputs", []) if isinstance(layer, dict) else []
        precision = tensor_precision(outputs[0]) if outputs else "none"
        counts[precision] = counts.get(precision, 0) + 1
        for tensor in outputs:
            if tensor.get("Name") in pinned:
                seen.add(tensor["Name"])
                if tensor_precision(tensor) != "fp32":
                    not_fp32.append(f"{tensor['Name']} ({tensor.get('Format/Datatype')})")
    log.info("%s: engine layers per precision %s", onnx_path.name, dict(sorted(counts.items())))
    if pinned:
        log.info(
            "%s: %d of %d fp32-pinned tensors visible in the engine (the rest are inside fused layers)",
            onnx_path.name,
            len(seen),
            len(pinned),
        )
    if not_fp32:
        log.warning("%s: tensors pinned to fp32 run in another precision: %s", onnx_path.name, ", ".join(not_fp32))
    return counts


PRECISION_WORDS = (("bf16", "bfloat"), ("fp16", "half"), ("fp32", "float"), ("int8", "int8"), ("fp8", "fp8"))


def tensor_precision(tensor: dict) -> str:
    """'fp32', 'fp16', ... from an inspector tensor's "Format/Datatype" ("Row major linear FP16 format", "Half",
    "Float", ...); 'other' for integer / bool tensors or formats not shown."""
    text = str(tensor.get("Format/Datatype", "")).lower()
    for precision, word in PRECISION_WORDS:
        if precision in text or word in text:
            return precision
    return "other"


def batch_profile(builder, network, settings: EngineSettings, onnx_path: Path):
    """One optimisation profile: batch 1 / opt / max on axis 0 of every input; other axes must be fixed."""
    profile = builder.create_optimization_profile()
    names = []
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(tensor.shape)
        if not shape or shape[0] != -1 or any(d < 0 for d in shape[1:]):
            raise RuntimeError(
                f"{onnx_path}: input {tensor.name!r} has shape {shape}; expected a dynamic batch axis (-1) "
                "followed by fixed axes (export with rgbd-fusion export)"
            )
        rest = shape[1:]
        profile.set_shape(tensor.name, (1, *rest), (settings.opt_batch, *rest), (settings.max_batch, *rest))
        names.append(tensor.name)
    if sorted(names) != sorted(INPUT_NAMES):
        raise RuntimeError(f"{onnx_path}: inputs {names} are not a stage denoiser's {list(INPUT_NAMES)}")
    return profile


def load_timing_cache(config, path: Path) -> None:
    """Start from the saved timing cache when it is compatible with this GPU, else from an empty one."""
    cache = config.create_timing_cache(path.read_bytes() if path.exists() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("%s does not match this GPU; starting an empty timing cache", path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def pin_timestep_layers_to_fp32(trt, network) -> set[str]:
    """Mark the layers whose inputs derive only from the ``t`` input (and constants) to run in fp32.

    Walks the network in its (topological) layer order; returns the output tensor names of the pinned layers.
    """
    from_t = {"t"}
    constant: set[str] = set()
    pinned: set[str] = set()
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
        names = {tensor.name for tensor in inputs if tensor is not None}
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if names <= constant:
            constant.update(tensor.name for tensor in outputs)
        elif names <= from_t | constant:
            from_t.update(tensor.name for tensor in outputs)
            if all(tensor.dtype == trt.float32 for tensor in outputs):
                layer.precision = trt.float32
                for i in range(layer.num_outputs):
                    layer.set_output_type(i, trt.float32)
                pinned.update(tensor.name for tensor in outputs)
    return pinned


class TensorRTDenoiser:
    """``denoiser(x_t (B,C_in,H,W), t (B,), cond (B,C_cond,H,W)) -> (B,C_out,H,W)`` float32 CUDA tensors.

    A batch above the engine's max batch runs in parts of at most that size (one warning per denoiser).
    cuda_graph: capture one CUDA graph per batch size on first use and replay it (saves kernel-launch overhead;
    costs one execution context and static buffers per batch size); if a capture fails, CUDA graphs are turned off
    for this denoiser with one warning and it runs plainly.
    """

    def __init__(self, engine_path: str | Path, device: str | torch.device = "cuda", cuda_graph: bool = False):
        trt = import_tensorrt()
        self.device = cuda_device(device)
        self.engine_path = Path(engine_path)
        if not self.engine_path.exists():
            raise FileNotFoundError(f"TensorRT engine not found: {self.engine_path} (run rgbd-fusion build-engine)")
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(trt_logger(trt))
            self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self.engine is None:
                raise RuntimeError(
                    f"{self.engine_path}: TensorRT {trt.__version__} cannot load this engine (built by another "
                    "TensorRT version or for another GPU?); rebuild it with rgbd-fusion build-engine --rebuild"
                )
            self.context = self.engine.create_execution_context()
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != {*INPUT_NAMES, OUTPUT_NAME}:
            raise RuntimeError(f"{self.engine_path}: I/O tensors {sorted(names)} are not a stage denoiser's")
        for name in names:
            if self.engine.get_tensor_dtype(name) != trt.float32:
                raise RuntimeError(f"{self.engine_path}: tensor {name!r} is not float32")
        self.max_batch = self.engine.get_tensor_profile_shape("x_t", 0)[2][0]
        self.stream = torch.cuda.Stream(self.device)
        self.cuda_graph = cuda_graph
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, object, dict[str, torch.Tensor]]] = {}
        self.split_warned = False

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        batch = x_t.shape[0]
        if batch < 1:
            raise ValueError(f"{self.engine_path}: empty batch")
        if batch > self.max_batch:
            if not self.split_warned:
                log.warning(
                    "%s: batch %d is above the engine's max batch %d; running it in %d parts "
                    "(build with a larger max_batch to run it at once)",
                    self.engine_path,
                    batch,
                    self.max_batch,
                    -(-batch // self.max_batch),
                )
                self.split_warned = True
            parts = range(0, batch, self.max_batch)
            return torch.cat([self(*(v[i : i + self.max_batch] for v in (x_t, t, cond))) for i in parts])
        inputs = {"x_t": x_t, "t": t, "cond": cond}
        inputs = {name: value.detach().to(self.device, torch.float32).contiguous() for name, value in inputs.items()}
        if self.cuda_graph:
            return self._replay(inputs)
        return self._run(inputs)

    def _run(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Plain execution on the main context."""
        output = torch.empty(self._output_shape(self.context, inputs), dtype=torch.float32, device=self.device)
        self._enqueue(self.context, {**inputs, OUTPUT_NAME: output})
        return output

    def _output_shape(self, context, inputs: dict[str, torch.Tensor]) -> tuple[int, ...]:
        for name, tensor in inputs.items():
            if not context.set_input_shape(name, tuple(tensor.shape)):
                raise ValueError(f"{self.engine_path}: input {name!r} of shape {tuple(tensor.shape)} is not accepted")
        return tuple(context.get_tensor_shape(OUTPUT_NAME))

    def _enqueue(self, context, tensors: dict[str, torch.Tensor]) -> None:
        """Run on the private stream, ordered after the caller's stream and before its later work."""
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        for name, tensor in tensors.items():
            context.set_tensor_address(name, tensor.data_ptr())
            tensor.record_stream(self.stream)  # keep the caching allocator from reusing it while TensorRT runs
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.engine_path}: TensorRT execution failed (see the TensorRT log)")
        caller.wait_stream(self.stream)

    def _replay(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = inputs["x_t"].shape[0]
        if batch not in self.graphs:
            try:
                self.graphs[batch] = self._capture(inputs)
            except RuntimeError as error:
                log.warning("%s: CUDA graph capture failed, running without CUDA graphs (%s)", self.engine_path, error)
                self.cuda_graph = False
                self.graphs.clear()
                return self._run(inputs)
        graph, _, static = self.graphs[batch]
        for name, value in inputs.items():
            static[name].copy_(value)
        graph.replay()
        return static[OUTPUT_NAME].clone()

    def _capture(self, inputs: dict[str, torch.Tensor]):
        """A CUDA graph over one execute_async_v3 with its own context and static buffers."""
        with torch.cuda.device(self.device):
            context = self.engine.create_execution_context()
        static = {name: value.clone() for name, value in inputs.items()}
        static[OUTPUT_NAME] = torch.empty(self._output_shape(context, static), dtype=torch.float32, device=self.device)
        for name, tensor in static.items():
            context.set_tensor_address(name, tensor.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            # NVIDIA's guidance: enqueue once after setting shapes, so deferred updates happen outside the capture.
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.engine_path}: TensorRT execution failed before graph capture")
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.engine_path}: this engine cannot be captured in a CUDA graph")
        return graph, context, static
