"""`omnifuse train RECIPE.yaml [--set key=value ...] [--resume]`."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "train",
        "train a model from a YAML recipe",
        "  omnifuse train recipes/shapes_clip.yaml\n"
        "  omnifuse train recipes/shapes_clip.yaml --set train.max_steps=200 --set train.lr=1e-3\n"
        "  omnifuse train recipes/shapes_clip.yaml --resume   # continue from the newest checkpoint\n"
        "  accelerate launch --num_processes 2 -m omnifuse.cli.main train recipes/shapes_clip.yaml\n"
        "  omnifuse train recipes/shapes_vqa.yaml --ensemble bagging --members 5   # one artifact, 5 members",
        run,
    )
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument(
        "--ensemble",
        choices=["bagging", "boosting"],
        default=None,
        help="train --members members of a classifier recipe on bootstrap resamples (bagging) or on "
        "SAMME-weighted resamples (boosting), saved as one ensemble artifact in RUN/best",
    )
    parser.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")


def run(args) -> int:
    import json

    from omnifuse.eval.report import format_table
    from omnifuse.train.config import load_recipe
    from omnifuse.train.run import run_recipe, summarize, write_run_report

    recipe = load_recipe(args.recipe, args.overrides)
    if args.ensemble:
        from omnifuse.train.ensemble import train_ensemble

        if args.resume:
            raise ValueError("--resume does not apply to --ensemble (each member is a run of its own)")
        done = train_ensemble(recipe, args.ensemble, args.members)
        print(json.dumps(done.info, indent=2))
        print(f"ensemble of {len(done.member_dirs)} ({done.method}): {done.artifact}")
        return 0
    result = run_recipe(recipe, resume=args.resume)
    report = write_run_report(recipe.run_dir, f"omnifuse run {recipe.name}", result)
    print(format_table([summarize(result)]))
    print(f"run directory: {recipe.run_dir}  best artifact: {recipe.run_dir / 'best'}  report: {report}")
    return 0
