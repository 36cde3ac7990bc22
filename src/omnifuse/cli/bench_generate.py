"""`omnifuse bench generate`: decode tokens/s of the generative kinds, eager fp32 vs faster configurations."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "generate",
        "decode tokens/s at batch 1 and 8, with and without the KV cache, PyTorch eager fp32 vs "
        "bf16 and int8 configurations, for every generative kind (and the bare language model)",
        "  omnifuse bench generate                         # fresh benchmark-sized models of every kind\n"
        "  omnifuse bench generate --kinds captioner --max-new-tokens 16\n"
        "  omnifuse bench generate --model runs/shapes-captioner/best --out bench_generate.json",
        run_generate,
    )
    parser.add_argument("--model", action="append", default=[], help="trained artifact (repeatable)")
    parser.add_argument(
        "--kinds", default=None, help="comma-separated kinds (default: every generative kind)"
    )
    parser.add_argument(
        "--no-lm", action="store_true", help="leave out the bare language-model reference row"
    )
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--configs", default=None, help="comma-separated subset of the configurations")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--iters", type=int, default=3, help="timed calls per cell (at most)")
    parser.add_argument(
        "--budget", type=float, default=10.0, help="seconds per cell (at most, after one call)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def run_generate(args) -> int:
    from omnifuse.bench.generate import CONFIGS, bench_generate, kind_workloads, lm_workload, model_workload
    from omnifuse.eval.report import format_table

    try:
        sizes = tuple(int(s) for s in args.batch_sizes.split(",") if s.strip())
    except ValueError as err:
        raise ValueError(f"--batch-sizes takes comma-separated integers, got '{args.batch_sizes}'") from err
    configs = tuple(c.strip() for c in args.configs.split(",")) if args.configs else CONFIGS
    workloads = [] if args.no_lm else [lm_workload(max_new_tokens=args.max_new_tokens)]
    if args.model:
        workloads += [model_workload(path) for path in args.model]
    else:
        kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
        workloads += kind_workloads(kinds)
    for w in workloads:
        w.max_new_tokens = args.max_new_tokens
    result = bench_generate(
        workloads, sizes, configs, iters=args.iters, budget_s=args.budget, threads=args.threads
    )
    m = result["machine"]
    print(f"on {m['cpu']}, {m['cores']} cores, {m['threads']} threads, ISA {m['isa']}, torch {m['torch']}")
    print(format_table(result["rows"]))
    print("fastest configuration per cell:")
    for key, best in result["fastest"].items():
        ratio = best["vs_eager_fp32"]
        print(f"  {key}: {best['config']} {best['tokens_per_s']:.1f} tok/s ({ratio:.2f}x eager fp32)")
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
