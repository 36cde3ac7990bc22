"""`omnifuse rollout MODEL --env ID --episodes N`: run a trained generalist in a real environment."""

from __future__ import annotations

import json

from omnifuse.cli._common import add_verb, write_json


def register(sub) -> None:
    parser = add_verb(
        sub,
        "rollout",
        "run a model that can act (a generalist) in a Gymnasium / BabyAI environment and report its returns",
        "  omnifuse rollout runs/generalist/best --env CartPole-v1 --episodes 20\n"
        "  omnifuse rollout runs/generalist/best --env BabyAI-GoToRedBall-v0 --episodes 20 --gif goto.gif\n"
        "  omnifuse rollout runs/generalist/best --env Pendulum-v1 --prompt data/generalist/episodes/Pendulum-v1",
        run,
    )
    parser.add_argument("model", help="artifact directory of a model that can act")
    parser.add_argument("--env", required=True, help="environment id the model was trained on")
    parser.add_argument("--episodes", type=int, default=10, help="episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i")
    parser.add_argument("--max-steps", type=int, default=None, help="cut episodes at this length")
    parser.add_argument(
        "--history",
        type=int,
        default=None,
        help="past steps the model sees (default: what fits the context and the training windows)",
    )
    parser.add_argument("--prompt", default=None, help="shard directory of demonstrations to prompt with")
    parser.add_argument("--gif", default=None, help="write the first episode as an animated GIF here")
    parser.add_argument("--out", default=None, help="write the returns as JSON here")


def run(args) -> int:
    from omnifuse.models import load_model
    from omnifuse.runtime.rollout import rollout, save_gif

    model = load_model(args.model)
    demos = None
    if args.prompt:
        from omnifuse.data.episodes.record import read_episodes

        demos = read_episodes(args.prompt)
    result = rollout(
        model,
        args.env,
        args.episodes,
        seed=args.seed,
        demonstrations=demos,
        max_steps=args.max_steps,
        record=bool(args.gif),
        max_history=args.history,
        progress=True,
    )
    summary = result.to_dict()
    if args.gif:
        summary["gif"] = str(save_gif(result.frames, args.gif))
    if args.out:
        write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return 0
