"""ONNX export of the stage denoisers and the export folder format the ONNX Runtime and TensorRT backends read."""

from rgbd_fusion_core.export.onnx_export import (
    DEFAULT_OPSET,
    METADATA,
    ExportedStage,
    ExportError,
    export_stages,
    load_exported_stage,
    read_export_metadata,
)

__all__ = [
    "DEFAULT_OPSET",
    "METADATA",
    "ExportError",
    "ExportedStage",
    "export_stages",
    "load_exported_stage",
    "read_export_metadata",
]
