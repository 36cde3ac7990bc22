"""`omnifuse data synth|pack|inspect|episodes`."""

from __future__ import annotations

import json

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "data",
        "make, pack and inspect datasets",
        "  omnifuse data synth --out data/shapes --n 10000 --seed 0\n"
        "  omnifuse data pack data/shapes/train.jsonl --out data/shapes-shards --shard-size 1000\n"
        "  omnifuse data inspect data/shapes-shards",
        None,
    )
    verbs = parser.add_subparsers(dest="data_verb", metavar="ACTION", required=True)

    synth = add_verb(
        verbs,
        "synth",
        "generate a shapes-world dataset (images, captions, questions, labels)",
        "  omnifuse data synth --out data/shapes --n 10000 --seed 0 --holdout 'red circle' 'blue square'\n"
        "  omnifuse data synth --out data/shapes --n 12000 --minimal-pairs\n"
        "  omnifuse data synth --out data/shapes --n 4000 --tasks   # + vqa_*.jsonl, match_*.jsonl\n"
        "  omnifuse data synth --out data/shapes --n 2000 --image-size 32 --captions   # + captioner_*.jsonl\n"
        "  omnifuse data synth --out data/shapes --n 4000 --pretraining   # + documents_*.txt, pretrain_*.jsonl\n"
        "  omnifuse data synth --out data/spoken --n 1500 --modalities image,audio   # + spoken captions (wav)\n"
        "  omnifuse data synth --out data/motion --n 2000 --modalities image,video --video-frames 8",
        run_synth,
    )
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--n", type=int, default=1000, help="number of scenes (default 1000)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--image-size", type=int, default=64, help="pixels (default 64)")
    synth.add_argument("--max-objects", type=int, default=3)
    synth.add_argument("--holdout", nargs="*", default=None, help="'color shape' pairs kept out of train")
    synth.add_argument(
        "--minimal-pairs",
        action="store_true",
        help="pair each train scene with a shape-swapped twin (hard negatives; train with data.group_size: 2)",
    )
    synth.add_argument(
        "--modalities",
        default="image",
        help="what to render per scene, comma-separated: image, audio (espeak-ng spoken captions), "
        "video (moving-shapes clips); default image",
    )
    synth.add_argument("--video-frames", type=int, default=None, help="frames per clip (video; default 8)")
    synth.add_argument("--video-size", type=int, default=None, help="clip side in pixels (video; default 32)")
    synth.add_argument(
        "--tasks",
        action="store_true",
        help="also write fusion-task manifests: vqa_<split>.jsonl (question -> answer), "
        "match_<split>.jsonl (relation caption true of the image, or its swapped twin) and "
        "grounding_<split>.jsonl (caption words tagged B-wrong/I-wrong/O against the image)",
    )
    synth.add_argument(
        "--pretraining",
        action="store_true",
        help="also write pre-training data: documents_<split>.txt (masked_lm), pretrain_<split>.jsonl "
        "(true caption + minimal-pair negative, vl_pretrain) and minimal_<split>.jsonl (match probes)",
    )
    synth.add_argument(
        "--captions",
        action="store_true",
        help="also write captioner data: caption_<split>.jsonl, answer_<split>.jsonl (free-form "
        "answers), fewshot_<split>.jsonl (in-context color -> nonce word sequences) and "
        "captioner_<split>.jsonl (all three mixed)",
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")

    pack = add_verb(
        verbs,
        "pack",
        "write a manifest as WebDataset tar shards with a checksum index",
        "  omnifuse data pack data/shapes/train.jsonl --out data/shards --shard-size 1000",
        run_pack,
    )
    pack.add_argument("manifest", help="JSONL or CSV manifest")
    pack.add_argument("--out", required=True)
    pack.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    pack.add_argument("--strict", action="store_true", help="fail on the first corrupt sample")

    inspect = add_verb(
        verbs,
        "inspect",
        "summarise a manifest, shard set or image folder (and verify shard checksums)",
        "  omnifuse data inspect data/shapes/train.jsonl",
        run_inspect,
    )
    inspect.add_argument("spec", help="manifest, shard directory or image folder")

    episodes = add_verb(
        verbs,
        "episodes",
        "play an expert (or random policy) in a Gymnasium / BabyAI environment and write the episodes as shards",
        "  omnifuse data episodes --env CartPole-v1 --episodes 50 --out data/episodes/cartpole\n"
        "  omnifuse data episodes --env BabyAI-GoToRedBall-v0 --episodes 200 --out data/episodes/gotoredball --seed 1000",
        run_episodes,
    )
    episodes.add_argument("--env", required=True, help="Gymnasium id (CartPole-v1, BabyAI-GoToLocal-v0, ...)")
    episodes.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    episodes.add_argument("--out", required=True, help="output shard directory")
    episodes.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i (default 0)")
    episodes.add_argument("--policy", choices=["expert", "random"], default="expert")
    episodes.add_argument("--max-steps", type=int, default=None, help="cut episodes at this length")
    episodes.add_argument("--shard-size", type=int, default=100, help="episodes per shard")
    episodes.add_argument("--quiet", action="store_true", help="no progress bar")


def run_synth(args) -> int:
    from omnifuse.data.synth import SynthConfig, generate

    kwargs = dict(
        n=args.n,
        seed=args.seed,
        image_size=args.image_size,
        max_objects=args.max_objects,
        minimal_pairs=args.minimal_pairs,
        modalities=[m.strip() for m in args.modalities.split(",") if m.strip()],
    )
    if args.video_frames is not None:
        kwargs["video_frames"] = args.video_frames
    if args.video_size is not None:
        kwargs["video_size"] = args.video_size
    if args.holdout is not None:
        kwargs["holdout"] = list(args.holdout)
    summary = generate(SynthConfig(**kwargs), args.out, progress=not args.quiet)
    if args.tasks:
        from omnifuse.data.synth.tasks import write_task_manifests

        for name, path in write_task_manifests(args.out, seed=args.seed).items():
            print(f"wrote {name}: {path}")
    if args.captions:
        from omnifuse.data.synth.captions import write_captioner_manifests

        for name, path in write_captioner_manifests(args.out, seed=args.seed).items():
            print(f"wrote {name}: {path}")
    if args.pretraining:
        from omnifuse.data.synth.pretraining import write_pretrain_manifests

        for name, path in write_pretrain_manifests(args.out, seed=args.seed).items():
            print(f"wrote {name}: {path}")
    print(
        json.dumps(
            summary.to_dict() if hasattr(summary, "to_dict") else summary.__dict__, indent=2, default=str
        )
    )
    return 0


def run_pack(args) -> int:
    from omnifuse.data.readers import read_manifest
    from omnifuse.data.sample import CorruptSamplePolicy
    from omnifuse.data.shards import pack_shards

    policy = CorruptSamplePolicy(strict=args.strict, name=args.manifest)
    samples = read_manifest(args.manifest, policy=policy)
    index = pack_shards(samples, args.out, shard_size=args.shard_size)
    shards = index.shards if hasattr(index, "shards") else index["shards"]
    print(f"wrote {len(samples)} samples in {len(shards)} shard(s) to {args.out} ({policy.summary()})")
    return 0


def run_episodes(args) -> int:
    import numpy as np

    from omnifuse.data.episodes.record import collect_episodes, write_episodes

    episodes = collect_episodes(
        args.env,
        args.episodes,
        seed=args.seed,
        policy=args.policy,
        max_steps=args.max_steps,
        progress=not args.quiet,
    )
    write_episodes(episodes, args.out, shard_size=args.shard_size)
    returns = [ep.total_return for ep in episodes]
    print(
        f"wrote {len(episodes)} {args.policy} episodes of {args.env} ({sum(map(len, episodes))} steps, "
        f"mean return {np.mean(returns):.2f}) to {args.out}"
    )
    return 0


def run_inspect(args) -> int:
    from omnifuse.data.readers import inspect_dataset

    print(json.dumps(inspect_dataset(args.spec), indent=2, default=str))
    return 0
