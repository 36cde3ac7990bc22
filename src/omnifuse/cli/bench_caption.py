"""`omnifuse bench caption`: captioners (xattn vs prefix) trained and evaluated beside blind baselines."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "caption",
        "train a Flamingo-style (xattn) and a LLaVA-style (prefix) captioner on a fresh shapes world and "
        "report CIDEr-D vs blank/shuffled images, VQA accuracy per type, hallucination, few-shot 4-shot vs 0-shot",
        "  omnifuse bench caption --out runs/bench-caption\n"
        "  omnifuse bench caption --steps 200 --n 1000 --connectors xattn --out /tmp/bench-caption",
        run_caption,
    )
    parser.add_argument("--out", required=True, help="working directory (data, runs, bench_caption.json)")
    parser.add_argument("--n", type=int, default=2000, help="scenes (default 2000)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per connector (default 400)")
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
    result = bench_caption(
        args.out, args.n, args.steps, args.batch_size, connectors, args.eval_items, args.seed, args.threads
    )
    m = result["machine"]
    print(
        f"on {m['cpu']}, {m['cores']} cores, {m['threads']} threads, ISA {m['isa']}; wall {result['wall_s'] / 60:.1f} min"
    )
    print(format_table(summary_rows(result)))
    for r in result["rows"]:
        blind = max(r.get("caption_cider_blank") or 0, r.get("caption_cider_shuffled") or 0)
        if blind > 0:
            print(f"{r['connector']}: CIDEr-D {r['caption_cider'] / blind:.1f}x the best blind baseline")
    if args.json:
        print(f"wrote {write_json(args.json, result)}")
    return 0
