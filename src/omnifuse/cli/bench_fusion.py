"""`omnifuse bench fusion`: every fusion strategy with the same encoders and budget, on shapes VQA and match."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "fusion",
        "train each fusion strategy with the same encoders and budget on shapes-world VQA and "
        "caption-image match; table of accuracy per question type, parameters, train and inference time",
        "  omnifuse bench fusion --out bench_fusion.json\n"
        "  omnifuse bench fusion --strategies concat cross_attention late --tasks vqa --steps 200",
        run,
    )
    parser.add_argument("--work-dir", default="runs/bench-fusion", help="data and runs go here")
    parser.add_argument("--strategies", nargs="*", default=None, help="default: all")
    parser.add_argument("--tasks", nargs="*", default=None, choices=["vqa", "match"])
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per strategy (default 600)")
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=None,
        help="steps of the shared CLIP whose frozen towers every strategy uses (default 600; 0: "
        "encoders from scratch per strategy)",
    )
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--scenes", type=int, default=None, help="shapes-world scenes to generate")
    parser.add_argument(
        "--workers", type=int, default=None, help="strategies trained at once, 1 thread each (default 2)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-ensemble", action="store_true", help="skip the ensemble row")
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def run(args) -> int:
    from omnifuse.bench.fusion import FusionBenchConfig, bench_fusion
    from omnifuse.eval.report import format_table

    cfg = FusionBenchConfig()
    for name, value in (
        ("strategies", tuple(args.strategies) if args.strategies else None),
        ("tasks", tuple(args.tasks) if args.tasks else None),
        ("steps", args.steps),
        ("pretrain_steps", args.pretrain_steps),
        ("batch_size", args.batch_size),
        ("n_scenes", args.scenes),
        ("threads", args.threads),
        ("workers", args.workers),
    ):
        if value is not None:
            setattr(cfg, name, value)
    cfg.ensemble = not args.no_ensemble
    result = bench_fusion(args.work_dir, cfg)
    print(format_table(result["rows"]))
    for key, value in result["summary"].items():
        print(f"{key}: {value:+.3f}")
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
