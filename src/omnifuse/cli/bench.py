"""`omnifuse bench ...`: speed and quality figures, measured as ratios within one run.

Each benchmark is its own module with a `register(verbs)`; add new ones to BENCHES.
"""

from __future__ import annotations

from omnifuse.cli import (
    bench_caption,
    bench_fusion,
    bench_generalist,
    bench_generate,
    bench_grounding,
    bench_pretrain,
    bench_text2image,
    bench_train,
)
from omnifuse.cli import bench_infer as bench_infer_verb
from omnifuse.cli import bench_serve as bench_serve_verb
from omnifuse.cli._common import add_verb

BENCHES = (
    bench_train,
    bench_fusion,
    bench_grounding,
    bench_serve_verb,
    bench_infer_verb,
    bench_generate,
    bench_caption,
    bench_pretrain,
    bench_text2image,
    bench_generalist,
)


def register(sub) -> None:
    parser = add_verb(
        sub,
        "bench",
        "benchmarks (ratios against a baseline in the same run)",
        "  omnifuse bench train\n  omnifuse bench train recipes/shapes_clip.yaml --steps 40",
        None,
    )
    verbs = parser.add_subparsers(dest="bench_verb", metavar="BENCH", required=True)
    for bench in BENCHES:
        bench.register(verbs)
