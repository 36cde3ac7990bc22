"""`omnifuse bench generalist`: expert-normalised scores per control task, captioning and VQA of the same weights."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(verbs) -> None:
    parser = add_verb(
        verbs,
        "generalist",
        "train one Gato-style generalist on expert episodes (classic control, BabyAI), captioning, VQA and "
        "text; table of expert-normalised scores (random and expert measured in the same run) and caption/VQA "
        "figures beside a same-size specialist",
        "  omnifuse bench generalist --out bench_generalist.json\n"
        "  omnifuse bench generalist --steps 600 --demo-episodes 30 --tasks CartPole-v1 BabyAI-GoToRedBall-v0",
        run,
    )
    parser.add_argument("--work-dir", default="runs/bench-generalist", help="data, runs and GIFs go here")
    parser.add_argument(
        "--tasks", nargs="*", default=None, help="environment ids (default: the 8 with experts)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps of the generalist (default 500)"
    )
    parser.add_argument(
        "--demo-episodes", type=int, default=None, help="expert episodes per task (default 30)"
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=None, help="episodes per task and policy (default 20)"
    )
    parser.add_argument("--scenes", type=int, default=None, help="shapes-world scenes (default 600)")
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--context", type=int, default=None, help="context length in tokens (default 128)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--window-steps", type=int, default=None, help="most steps per training window (default 1)"
    )
    parser.add_argument("--history", type=int, default=None, help="past steps seen when acting (default 0)")
    parser.add_argument(
        "--prompt", action="store_true", help="prompt evaluation episodes with a demonstration"
    )
    parser.add_argument("--no-specialist", action="store_true", help="skip the caption/VQA specialist")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def run(args) -> int:
    from omnifuse.bench.generalist import GeneralistBenchConfig, bench_generalist
    from omnifuse.eval.report import format_table

    cfg = GeneralistBenchConfig()
    for name, value in (
        ("tasks", list(args.tasks) if args.tasks else None),
        ("steps", args.steps),
        ("demo_episodes", args.demo_episodes),
        ("eval_episodes", args.eval_episodes),
        ("scenes", args.scenes),
        ("hidden_size", args.hidden_size),
        ("num_layers", args.layers),
        ("context_length", args.context),
        ("batch_size", args.batch_size),
        ("window_steps", args.window_steps),
        ("max_history", args.history),
        ("threads", args.threads),
    ):
        if value is not None:
            setattr(cfg, name, value)
    cfg.prompt = args.prompt
    cfg.specialist = not args.no_specialist
    result = bench_generalist(args.work_dir, cfg)
    print(format_table(result["rows"]))
    print(format_table([result["summary"]]))
    for name, figures in result["text"].items():
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()})
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0
