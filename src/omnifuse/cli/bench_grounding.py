"""`omnifuse bench grounding`: per-word labelling of swapped attribute words, text-only beside multimodal."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "grounding",
        "train token classifiers (text only, and text + image through several fusions) to tag the "
        "caption words that are false of the image; token accuracy and entity precision/recall/F1",
        "  omnifuse bench grounding --out bench_grounding.json\n"
        "  omnifuse bench grounding --rows text_only cross_attention --steps 300 --work-dir runs/bench-fusion",
        run,
    )
    parser.add_argument(
        "--work-dir",
        default="runs/bench-fusion",
        help="data, the shared CLIP and runs (shared with bench fusion)",
    )
    parser.add_argument(
        "--rows", nargs="*", default=None, help="text_only, concat, cross_attention, single_stream"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per row (default 600)")
    parser.add_argument(
        "--pretrain-steps", type=int, default=None, help="steps of the shared CLIP (default 600)"
    )
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--scenes", type=int, default=None, help="shapes-world scenes to generate")
    parser.add_argument(
        "--workers", type=int, default=None, help="rows trained at once, 1 thread each (default 2)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--trainable-layers",
        default=None,
        help="top layers of the CLIP towers trained with each row (default 0: frozen; 'all': fully trained)",
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def run(args) -> int:
    from omnifuse.bench.grounding import GroundingBenchConfig, bench_grounding
    from omnifuse.eval.report import format_table

    cfg = GroundingBenchConfig()
    for name, value in (
        ("rows", tuple(args.rows) if args.rows else None),
        ("steps", args.steps),
        ("pretrain_steps", args.pretrain_steps),
        ("batch_size", args.batch_size),
        ("n_scenes", args.scenes),
        ("threads", args.threads),
        ("workers", args.workers),
    ):
        if value is not None:
            setattr(cfg, name, value)
    if args.trainable_layers is not None:
        value = args.trainable_layers
        cfg.trainable_layers = None if value == "all" else int(value)
    result = bench_grounding(args.work_dir, cfg)
    print(format_table(result["rows"]))
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
