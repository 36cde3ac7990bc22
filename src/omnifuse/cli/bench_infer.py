"""`omnifuse bench infer`: inference speed of deployment configurations, in one run."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "infer",
        "items/s, latency, memory and embedding agreement of HF eager fp32, torch bf16/int8, "
        "ONNX Runtime fp32/int8 and omnifuse's best CPU configuration, on the same inputs",
        "  omnifuse bench infer                                   # random-weight CLIP ViT-B/32 image tower\n"
        "  omnifuse bench infer --arch clip-vit-b32-vision --batch-sizes 1,8,32 --out bench_infer.json\n"
        "  omnifuse bench infer runs/shapes-clip/best --data data/shapes/test.jsonl   # + zero-shot accuracy",
        run_infer,
    )
    parser.add_argument(
        "model", nargs="?", default=None, help="artifact directory (default: --arch, random weights)"
    )
    parser.add_argument(
        "--arch", default="clip-vit-b32-vision", help="random-weight architecture when no MODEL"
    )
    parser.add_argument("--modality", default="image", help="which tower to time (default image)")
    parser.add_argument("--batch-sizes", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--configs", default=None, help="comma-separated subset of the configurations")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per batch size (at most)")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per batch size, all rows together (at most)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per batch size")
    parser.add_argument("--latency-iters", type=int, default=50, help="batch-1 runs for p50/p99")
    parser.add_argument("--data", default=None, help="manifest for zero-shot accuracy (artifact MODEL only)")
    parser.add_argument("--label-key", default="color_shape", help="label of the zero-shot classes")
    parser.add_argument("--max-items", type=int, default=500, help="zero-shot items at most")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="omnifuse-best without torch.compile (quick start, slower runs)",
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as err:
        raise ValueError(f"--batch-sizes takes comma-separated integers, got '{text}'") from err
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batch-sizes needs positive integers, got '{text}'")
    return sizes


def run_infer(args) -> int:
    from omnifuse.bench.infer import CONFIGS, bench_infer, build_arch, format_rows

    sizes = _sizes(args.batch_sizes)
    configs = tuple(c.strip() for c in args.configs.split(",")) if args.configs else CONFIGS
    zero_shot, pool, calibration = None, None, None
    if args.model:
        from omnifuse.models.factory import load_model
        from omnifuse.models.registry import spec_of

        model = load_model(args.model)
        spec_of(model).require("embed", f"bench infer (it times embedding towers; {args.model})")
        if args.data:
            from omnifuse.bench.infer import zero_shot_eval

            zero_shot, pool, calibration = zero_shot_eval(
                model, args.modality, args.data, args.label_key, args.max_items
            )
    else:
        if args.data:
            raise ValueError(
                "--data needs a trained MODEL directory (a random --arch has no zero-shot accuracy)"
            )
        model = build_arch(args.arch)
        args.modality = model.modalities[0]
    result = bench_infer(
        model,
        args.modality,
        sizes,
        configs,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        budget_s=args.budget,
        latency_iters=args.latency_iters,
        pool=pool,
        zero_shot=zero_shot,
        compile_best=not args.no_compile,
        calibration=calibration,
    )
    result["model"] = args.model or args.arch
    m = result["machine"]
    print(
        f"{result['model']} ({args.modality} tower) on {m['cpu']}, {m['cores']} cores, {m['threads']} threads, ISA {m['isa']}"
    )
    print(format_rows(result))
    if "best_vs_ort_int8" in result:
        print(
            f"omnifuse-best vs ONNX Runtime stock int8 at batch {max(sizes)}: {result['best_vs_ort_int8']:.2f}x "
            f"(mean cosine to fp32 {result['best_mean_cosine']:.4f}); vs fp32 eager {result['best_vs_fp32']:.2f}x"
        )
    if "zero_shot_delta_points" in result:
        print(f"zero-shot accuracy, omnifuse-best minus fp32: {result['zero_shot_delta_points']:+.2f} points")
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
