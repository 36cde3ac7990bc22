"""`omnifuse bench text2image`: train an image tokenizer, a text-to-image prior and its judges; score what it draws."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "text2image",
        "train a VQ-VAE tokenizer and a DALL-E-style prior on the shapes world, then judge its images "
        "(attribute judge per colour, shape, position and relation; CLIP score; FID on CLIP features) "
        "beside real renders and a shuffled-prompt twin, N = 1 vs CLIP-reranked top-1 of N",
        "  omnifuse bench text2image --out runs/bench-t2i\n"
        "  omnifuse bench text2image --out runs/bench-t2i-small --scenes 3000 --prior-steps 1200 --n 8",
        run,
    )
    parser.add_argument(
        "--out",
        default="runs/bench-text2image",
        help="working directory (data, models, result.json, grid.png)",
    )
    parser.add_argument("--scenes", type=int, default=None, help="synthetic scenes (default 4000)")
    parser.add_argument("--tokenizer-steps", type=int, default=None)
    parser.add_argument("--prior-steps", type=int, default=None)
    parser.add_argument("--clip-steps", type=int, default=None)
    parser.add_argument("--judge-steps", type=int, default=None)
    parser.add_argument(
        "--judge-scenes", type=int, default=None, help="real renders the judge trains on (default 4000)"
    )
    parser.add_argument("--prompts", type=int, default=None, help="prompts per group (default 16)")
    parser.add_argument(
        "--n", type=int, default=None, help="candidates per prompt for reranking (default 16)"
    )
    parser.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance scale (default 3)"
    )
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--progress", action="store_true", help="progress bars while training")


def run(args) -> int:
    from dataclasses import replace

    from omnifuse.bench.text2image import Text2ImageBenchConfig, bench_text2image, format_table

    overrides = {
        "n_scenes": args.scenes,
        "tokenizer_steps": args.tokenizer_steps,
        "prior_steps": args.prior_steps,
        "clip_steps": args.clip_steps,
        "judge_steps": args.judge_steps,
        "judge_scenes": args.judge_scenes,
        "prompts_per_group": args.prompts,
        "n": args.n,
        "guidance": args.guidance,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "seed": args.seed,
    }
    cfg = replace(
        Text2ImageBenchConfig(progress=args.progress), **{k: v for k, v in overrides.items() if v is not None}
    )
    result = bench_text2image(args.out, cfg)
    m = result["machine"]
    print(f"on {m['cpu']}, {m['cores']} cores, {m['threads']} threads, ISA {m['isa']}, torch {m['torch']}")
    print(format_table(result))
    print(f"grid of generated images: {result['grid']}; results: {args.out}/result.json")
    return 0
