"""`omnifuse bench train`: training speed of a recipe vs. a plain fp32 eager HF CLIPModel."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    train = add_verb(
        verbs,
        "train",
        "training samples/s and peak memory of a recipe vs. a plain fp32 eager HF CLIPModel of the same sizes",
        "  omnifuse bench train                      # 'small' towers on fresh synthetic shapes data\n"
        "  omnifuse bench train recipes/shapes_clip.yaml --steps 60 --out bench_train.json",
        run_train,
    )
    train.add_argument(
        "recipe",
        nargs="?",
        default=None,
        help="YAML recipe (default: the shapes recipe with 'small' towers, bf16 where fast)",
    )
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    train.add_argument("--steps", type=int, default=60, help="optimizer steps per configuration")
    train.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    train.add_argument("--out", default=None, help="write the results as JSON here")


def run_train(args) -> int:
    import tempfile
    from pathlib import Path

    from omnifuse.bench.train import bench_train
    from omnifuse.eval.report import format_table
    from omnifuse.train.config import load_recipe, recipe_from_dict

    with tempfile.TemporaryDirectory() as tmp:
        if args.recipe:
            recipe = load_recipe(args.recipe, args.overrides)
        else:
            from omnifuse.bench.train import default_bench_recipe
            from omnifuse.data.synth import SynthConfig, generate

            generate(SynthConfig(n=3000, seed=0), Path(tmp) / "data", progress=False)
            recipe = recipe_from_dict(default_bench_recipe(Path(tmp) / "data", Path(tmp)), args.overrides)
        result = bench_train(recipe, steps=args.steps, warmup=args.warmup)
    print(format_table(result["rows"]))
    print(
        f"speed-up vs HF CLIPModel fp32 eager: {result['speedup']:.2f}x "
        f"(final loss ratio {result['final_loss_ratio']:.3f}, same {result['steps']} steps, "
        f"batch {result['batch_size']}, {result['threads']} threads)"
    )
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
