"""ONNX Runtime backend: an exported stage denoiser behind the ``denoiser(x_t, t, cond)`` call.

Execution providers come from a device string: ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` (CUDA EP); ``"tensorrt"`` /
``"tensorrt:N"`` (TensorRT EP with fp16 and an engine cache beside the ONNX, falling back to CUDA). CPU sessions
use all graph optimisations (including ORT's own NCHWc layout transforms on x86) and one intra-op thread per
physical core. On CUDA the inputs and the output stay on the GPU through IO binding. ONNX Runtime drops a provider
that cannot start (missing CUDA / cuDNN / TensorRT libraries) without an error; a session without the provider
asked for is logged as a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from rgbd_fusion_core.runtime.graph_contract import INPUT_NAMES, OUTPUT_NAME

log = logging.getLogger(__name__)


def physical_core_count() -> int:
    """Physical cores this process may run on (SMT siblings counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def parse_device(device: str | torch.device) -> tuple[str, int]:
    """("cpu" | "cuda" | "tensorrt", device index) from "cpu", "cuda[:N]", "tensorrt[:N]" or a torch.device."""
    text = str(device)
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "tensorrt") or (index and not index.isdigit()):
        raise ValueError(f"onnxruntime device {text!r}: expected 'cpu', 'cuda[:N]' or 'tensorrt[:N]'")
    return kind, int(index or 0)


def execution_providers(device: str | torch.device, onnx_path: Path) -> list:
    """Provider list (most preferred first) for a device; a clear error when this onnxruntime lacks it."""
    import onnxruntime as ort

    kind, index = parse_device(device)
    available = ort.get_available_providers()
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
    if wanted[kind] not in available:
        raise RuntimeError(
            f"onnxruntime {ort.__version__} has no {wanted[kind]} (available: {available}); "
            "install onnxruntime-gpu with CUDA/TensorRT for GPU devices"
        )
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": index})
    if kind == "cuda":
        return [cuda, "CPUExecutionProvider"]
    trt_cache = str(onnx_path.parent / "ort_tensorrt_cache")
    tensorrt = (
        "TensorrtExecutionProvider",
        {
            "device_id": index,
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": trt_cache,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": trt_cache,
        },
    )
    return [tensorrt, cuda, "CPUExecutionProvider"]


def warn_on_provider_fallback(onnx_path: Path, requested: list, actual: list[str]) -> None:
    """One warning when the session lacks the provider asked for first (``session.get_providers()``)."""
    wanted = requested[0] if isinstance(requested[0], str) else requested[0][0]
    if wanted not in actual:
        log.warning(
            "%s: ONNX Runtime could not start %s and fell back to %s (requested: %s); check the CUDA, cuDNN and "
            "TensorRT libraries this onnxruntime build needs",
            onnx_path.name,
            wanted,
            ", ".join(actual),
            ", ".join(p if isinstance(p, str) else p[0] for p in requested),
        )


class OnnxRuntimeDenoiser:
    """``denoiser(x_t (B,C_in,H,W), t (B,), cond (B,C_cond,H,W)) -> (B,C_out,H,W)``, float32 torch tensors.

    Outputs live on ``self.device`` (CPU for the CPU provider, the GPU otherwise); inputs may be anywhere.
    threads: intra-op threads for CPU kernels (None = physical cores); spin: let idle worker threads spin.
    """

    def __init__(
        self, onnx_path: str | Path, device: str | torch.device = "cpu", threads: int | None = None, spin: bool = False
    ):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise RuntimeError("onnxruntime is not installed: pip install 'rgbd-fusion[onnx]'") from error
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.exists():
            raise FileNotFoundError(f"ONNX file not found: {self.onnx_path}")
        kind, index = parse_device(device)
        self.device = torch.device("cpu") if kind == "cpu" else torch.device("cuda", index)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or physical_core_count()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.log_severity_level = 3  # errors only
        providers = execution_providers(device, self.onnx_path)
        self.session = ort.InferenceSession(str(self.onnx_path), options, providers=providers)
        warn_on_provider_fallback(self.onnx_path, providers, self.session.get_providers())
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = [o.name for o in self.session.get_outputs()]
        if set(names) != set(INPUT_NAMES) or outputs != [OUTPUT_NAME]:
            raise RuntimeError(
                f"{self.onnx_path}: inputs {names} / outputs {outputs} are not a stage denoiser's "
                f"{INPUT_NAMES} / [{OUTPUT_NAME!r}]"
            )
        self.output_shape = tuple(self.session.get_outputs()[0].shape[1:])  # (C_out, H, W)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        inputs = {"x_t": x_t, "t": t, "cond": cond}
        if self.device.type == "cpu":
            feeds = {
                name: value.detach().to("cpu", torch.float32).contiguous().numpy() for name, value in inputs.items()
            }
            return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0])
        return self._run_on_gpu(inputs)

    def _run_on_gpu(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """IO binding on torch CUDA buffers: no host round trip."""
        binding = self.session.io_binding()
        tensors = {name: value.detach().to(self.device, torch.float32).contiguous() for name, value in inputs.items()}
        batch = tensors["x_t"].shape[0]
        output = torch.empty((batch, *self.output_shape), dtype=torch.float32, device=self.device)
        for name, tensor in [*tensors.items(), (OUTPUT_NAME, output)]:
            bind = binding.bind_output if name == OUTPUT_NAME else binding.bind_input
            bind(name, "cuda", self.device.index or 0, np.float32, tuple(tensor.shape), tensor.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream; inputs must be ready
        self.session.run_with_iobinding(binding)  # returns after ORT synchronised its stream
        return output
