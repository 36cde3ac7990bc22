"""`omnifuse bench serve`: the batching server vs. one-request-per-forward-pass and offline batching."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    p = add_verb(
        verbs,
        "serve",
        "server requests/s and p50/p99 latency at several concurrencies: dynamic batching vs. max_batch=1, "
        "next to the offline batched throughput of the same runtime",
        "  omnifuse bench serve                       # a random ViT-small DualEncoder on 32 px images\n"
        "  omnifuse bench serve runs/shapes-clip/best --seconds 10 --out bench_serve.json",
        run_serve_bench,
    )
    p.add_argument(
        "model_dir", nargs="?", default=None, help="model to serve (default: a random ViT-small one)"
    )
    p.add_argument("--concurrency", default="1,8,32,64", help="comma-separated client counts")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per concurrency level")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring each level")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="model threads, server and offline alike (default: half the CPUs)",
    )
    p.add_argument("--image-size", type=int, default=32, help="image size of the default model")
    p.add_argument("--out", default=None, help="write the results as JSON here")


def run_serve_bench(args) -> int:
    from omnifuse.bench.serve import bench_serve
    from omnifuse.eval.report import format_table

    result = bench_serve(
        args.model_dir,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        seconds=args.seconds,
        warmup_s=args.warmup,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        threads=args.threads,
        image_size=args.image_size,
    )
    print(format_table(result["rows"]))
    c = result["reference_concurrency"]
    print(
        f"at concurrency {c}: batched server {result['speedup_vs_baseline']:.2f}x the max_batch=1 baseline "
        f"(target >= 3x), {100 * result['fraction_of_offline']:.0f}% of offline batched throughput "
        f"({result['offline_images_per_s']:.1f} images/s at batch {result['max_batch']}; target >= 80%); "
        f"{result['threads']} model threads, {result['cpu_count']} CPUs"
    )
    print(
        f"offline, batch {result['max_batch']} vs batch 1: {result['offline_batch_gain']:.2f}x "
        "(what batching buys the model itself, to compare with the server's speed-up)"
    )
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
