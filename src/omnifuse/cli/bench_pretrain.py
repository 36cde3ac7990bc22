"""`omnifuse bench pretrain`: caption-image match, VQA and masked LM with and without pre-training."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "pretrain",
        "on the shapes world, same budget per row: caption-image match on minimal pairs after "
        "vl_pretrain vs CLIP-only pre-training vs from scratch; VQA per question type fine-tuned from "
        "vl_pretrain vs from scratch; masked-token and NSP accuracy of masked_lm on held-out documents",
        "  omnifuse bench pretrain --out bench_pretrain.json\n"
        "  omnifuse bench pretrain --scenes 1500 --pretrain-steps 200 --finetune-steps 150 --mlm-steps 200",
        run,
    )
    parser.add_argument("--work-dir", default="runs/bench-pretrain", help="data and runs go here")
    parser.add_argument("--scenes", type=int, default=None, help="shapes-world scenes (default 3000)")
    parser.add_argument("--image-size", type=int, default=None, help="pixels, divisible by 3 (default 48)")
    parser.add_argument(
        "--pretrain-steps", type=int, default=None, help="vl_pretrain and CLIP-only steps (600)"
    )
    parser.add_argument("--finetune-steps", type=int, default=None, help="steps of each fine-tune (400)")
    parser.add_argument("--mlm-steps", type=int, default=None, help="masked_lm steps (600)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--fusion", default=None, help="fusion strategy of every model (single_stream)")
    parser.add_argument("--workers", type=int, default=None, help="runs trained at once, 1 thread each (2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads with --workers 1")
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def run(args) -> int:
    from omnifuse.bench.pretrain import PretrainBenchConfig, bench_pretrain
    from omnifuse.eval.report import format_table

    overrides = {
        "n_scenes": args.scenes,
        "image_size": args.image_size,
        "pretrain_steps": args.pretrain_steps,
        "finetune_steps": args.finetune_steps,
        "mlm_steps": args.mlm_steps,
        "batch_size": args.batch_size,
        "fusion": args.fusion,
        "workers": args.workers,
        "threads": args.threads,
    }
    cfg = PretrainBenchConfig(**{k: v for k, v in overrides.items() if v is not None})
    result = bench_pretrain(args.work_dir, cfg)
    for table in ("match", "vqa", "mlm"):
        print(f"\n{table}")
        print(format_table(result[table]))
    print()
    for key, value in result["summary"].items():
        print(f"{key}: {value}")
    print(f"wall: {result['wall_seconds']} s")
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
