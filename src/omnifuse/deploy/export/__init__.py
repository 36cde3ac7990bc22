"""Export omnifuse models to ONNX, validated against PyTorch with ONNX Runtime.

from omnifuse.deploy.export import ExportOptions, export_onnx
export_onnx("runs/shapes-clip/best", "exported/shapes-clip", ExportOptions(quantize="int8"))
"""

from omnifuse.deploy.export.graphs import GraphSpec, graph_specs, placeholder_inputs
from omnifuse.deploy.export.onnx import FORMATS, ExportOptions, ExportReport, export_onnx
from omnifuse.deploy.export.parity import ExportParityError, ParityResult

__all__ = [
    "FORMATS",
    "ExportOptions",
    "ExportParityError",
    "ExportReport",
    "GraphSpec",
    "ParityResult",
    "export_onnx",
    "graph_specs",
    "placeholder_inputs",
]
