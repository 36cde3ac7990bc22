"""`omnifuse demo`: synthesize, train a small CLIP from scratch, evaluate, report."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "demo",
        "train a small CLIP-style model on a synthetic shapes world and write a report (offline)",
        "  omnifuse demo                     # sized to about 4 minutes of training on this machine\n"
        "  omnifuse demo --budget 600        # more time, more accuracy\n"
        "  omnifuse demo --workdir /tmp/demo --steps 300\n"
        "  omnifuse demo --modalities text,image,audio   # spoken captions too; every pair's retrieval\n"
        "  omnifuse demo --modalities text,video         # moving shapes: retrieval and motion direction",
        run,
    )
    parser.add_argument("--workdir", default=None, help="where data and the run go (default runs/demo-work)")
    parser.add_argument("--n", type=int, default=None, help="scenes (12000; audio 1500; video 4000)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (CLIP demo: default sized by --budget; audio 500; video 600)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=240.0,
        help="CLIP demo: training time in seconds; the demo times a few steps here and sizes the "
        "schedule to fit (default 240)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--modalities",
        default="text,image",
        help="comma-separated towers: text,image (CLIP demo) or with audio, e.g. text,image,audio "
        "(spoken captions by espeak-ng; needs omnifuse[audio]), or text,video (moving-shapes clips; "
        "needs omnifuse[video])",
    )
    parser.add_argument(
        "--anchor",
        default="text",
        help="with audio: the modality every other one is aligned to ('none': every pair)",
    )


def run(args) -> int:
    from omnifuse.demos.clip import run_demo
    from omnifuse.eval.report import format_table

    if "video" in args.modalities.split(","):
        return run_with_video(args)
    if "audio" in args.modalities.split(","):
        return run_with_audio(args)
    args.workdir = args.workdir or "runs/demo-work"
    args.n = args.n or 12_000
    result = run_demo(args.workdir, n=args.n, steps=args.steps, seed=args.seed, budget_s=args.budget)
    keys = [
        "test/zero_shot/top1",
        "test/zero_shot/seen_top1",
        "test/zero_shot/heldout_top1",
        "test/text_to_image/R@1",
        "test/text_to_image/R@5",
        "test/image_to_text/R@1",
        "train/steps",
        "train/seconds",
        "demo/seconds",
    ]
    print(format_table([{"metric": k, "value": result.metrics.get(k)} for k in keys]))
    print(f"report: {result.report}\nartifact: {result.artifact}")
    return 0


def run_with_audio(args) -> int:
    from omnifuse.demos.trimodal import run_trimodal_demo
    from omnifuse.eval.report import format_table

    result = run_trimodal_demo(
        args.workdir or "runs/demo-audio-work",
        modalities=args.modalities,
        n=args.n or 1500,
        steps=args.steps or 500,
        seed=args.seed,
        anchor=None if args.anchor == "none" else args.anchor,
    )
    print(format_table(result.table))
    print(f"test scenes: {result.n_test}; train {result.train_seconds:.0f} s; demo {result.seconds:.0f} s")
    print(f"report: {result.report}\nartifact: {result.artifact}")
    return 0


def run_with_video(args) -> int:
    from omnifuse.demos.video import run_video_demo
    from omnifuse.eval.report import format_table

    if sorted(args.modalities.split(",")) != ["text", "video"]:
        raise ValueError(
            f"--modalities {args.modalities}: the video demo aligns text and video only (text,video)"
        )
    result = run_video_demo(
        args.workdir or "runs/video-demo-work", n=args.n or 4000, steps=args.steps or 600, seed=args.seed
    )
    print(format_table(result.table))
    print(f"train {result.metrics['train/seconds']:.0f} s; demo {result.seconds:.0f} s")
    print(f"metrics: {result.artifact.parent / 'test_metrics.json'}\nartifact: {result.artifact}")
    return 0
