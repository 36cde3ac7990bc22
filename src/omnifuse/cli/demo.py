"""`omnifuse demo`: synthesize, train a small CLIP from scratch, evaluate, report."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "demo",
        "train a small CLIP-style model on a synthetic shapes world and write a report (offline)",
        "  omnifuse demo\n  omnifuse demo --workdir /tmp/demo --steps 300",
        run,
    )
    parser.add_argument("--workdir", default="runs/demo-work", help="where data and the run go")
    parser.add_argument("--n", type=int, default=12_000, help="scenes to synthesize")
    parser.add_argument("--steps", type=int, default=1600, help="training steps")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from omnifuse.eval.report import format_table
    from omnifuse.pipelines.demo import run_demo

    result = run_demo(args.workdir, n=args.n, steps=args.steps, seed=args.seed)
    keys = [
        "test/zero_shot/top1",
        "test/zero_shot/heldout_top1",
        "test/text_to_image/R@1",
        "test/text_to_image/R@5",
        "test/image_to_text/R@1",
        "train/seconds",
        "demo/seconds",
    ]
    print(format_table([{"metric": k, "value": result.metrics.get(k)} for k in keys]))
    print(f"report: {result.report}\nartifact: {result.artifact}")
    return 0
