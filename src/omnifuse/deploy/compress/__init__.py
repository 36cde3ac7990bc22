"""Model compression: int8 / fp16 / bf16 quantization, pruning, low-rank factorisation, distillation, QAT.

Every method writes a new artifact directory (loadable with `omnifuse.models.load_model`) and a
`compress_report.json` with size, speed and quality before and after::

    from omnifuse.deploy.compress import CompressOptions, compress
    report = compress("runs/shapes-clip/best", "dynamic-int8", "runs/int8", data="data/shapes/val.jsonl")

One module per method family: `quantize` (dynamic-int8, static-int8, fp16, bf16), `prune`
(prune-magnitude, prune-structured), `low_rank`, `distill`, `qat`.
"""

from omnifuse.deploy.compress import distill, low_rank, prune, qat, quantize  # noqa: F401  (registers)
from omnifuse.deploy.compress.api import REPORT_FILE, CompressReport, compress
from omnifuse.deploy.compress.base import METHODS, CompressOptions
from omnifuse.deploy.compress.quality import QUALITY, Quality, register_quality

__all__ = [
    "METHODS",
    "QUALITY",
    "REPORT_FILE",
    "CompressOptions",
    "CompressReport",
    "Quality",
    "compress",
    "register_quality",
]
