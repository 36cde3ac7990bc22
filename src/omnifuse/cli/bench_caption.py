"""`omnifuse bench caption`: captioners (xattn vs prefix) trained and evaluated beside blind baselines."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "caption",
        "pre-train a small CLIP image tower on a fresh shapes world, train a Flamingo-style (xattn) and a "
        "LLaVA-style (prefix) captioner on it (tower frozen), and report CIDEr-D vs blank/shuffled images, "
        "VQA accuracy per type, hallucination, few-shot 4-shot vs 0-shot",
        "  omnifuse bench caption --out runs/bench-caption\n"
        "  omnifuse bench caption --steps 300 --vision-steps 300 --n 1000 --connectors xattn --out /tmp/bc\n"
        "  omnifuse bench caption --vision-steps 0 --out /tmp/bc-scratch   # tower from scratch, for contrast",
        run_caption,
    )
    parser.add_argument("--out", required=True, help="working directory (data, runs, bench_caption.json)")
    parser.add_argument("--n", type=int, default=3000, help="scenes (default 3000)")
    parser.add_argument("--steps", type=int, default=4000, help="training steps per connector (default 4000)")
    parser.add_argument(
        "--vision-steps",
        type=int,
        default=1000,
        help="CLIP pre-training steps of the image tower (default 1000; 0: train the tower from scratch "
        "with each captioner)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--connectors", default="xattn,prefix")
    parser.add_argument("--eval-items", type=int, default=100, help="test items per task (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results here")


def run_caption(args) -> int:
    from omnifuse.bench.caption import bench_caption, summary_rows
    from omnifuse.eval.report import format_table

    connectors = [c.strip() for c in args.connectors.split(",") if c.strip()]
    unknown = [c for c in connectors if c not in ("xattn", "prefix")]
    if unknown:
        raise ValueError(f"--connectors: unknown {unknown}; known: xattn, prefix")
    for name in ("n", "steps", "batch_size", "eval_items"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.vision_steps < 0:
        raise ValueError(f"--vision-steps must be >= 0; got {args.vision_steps}")
    result = bench_caption(
        args.out,
        args.n,
        args.steps,
        args.batch_size,
        connectors,
        args.eval_items,
        args.seed,
        args.threads,
        vision_steps=args.vision_steps,
    )
    m = result["machine"]
    print(
        f"on {m['cpu']}, {m['cores']} cores, {m['threads']} threads, ISA {m['isa']}; wall {result['wall_s'] / 60:.1f} min"
    )
    if result["vision"]:
        v = result["vision"]
        print(
            f"image tower: CLIP, {v['steps']} steps, {v['train_s'] / 60:.1f} min (counted in train_min), "
            f"zero-shot color x shape {v['zero_shot_top1']:.3f}"
        )
    print(format_table(summary_rows(result)))
    for r in result["rows"]:
        blind = max(r.get("caption_cider_blank") or 0, r.get("caption_cider_shuffled") or 0)
        if blind > 0:
            print(f"{r['connector']}: CIDEr-D {r['caption_cider'] / blind:.1f}x the best blind baseline")
    if args.json:
        print(f"wrote {write_json(args.json, result)}")
    return 0
