"""`omnifuse` command line: one module per verb, each a thin call into the library."""

from __future__ import annotations

import argparse
import os
import sys

from omnifuse.cli import bench, data, demo, evaluate, generate, predict, rollout, train
from omnifuse.cli import compress as compress_verb
from omnifuse.cli import export as export_verb
from omnifuse.cli import index as index_verb
from omnifuse.cli import serve as serve_verb
from omnifuse.utils.logs import configure_cli_logging

VERBS = (
    data,
    train,
    evaluate,
    predict,
    rollout,
    generate,
    bench,
    demo,
    index_verb,
    serve_verb,
    compress_verb,
    export_verb,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnifuse",
        description="Build, train, evaluate and ship multimodal models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  omnifuse demo\n  omnifuse data synth --out data/shapes --n 2000\n"
        "  omnifuse train recipes/shapes_clip.yaml --set train.max_steps=200\n"
        "  omnifuse eval runs/shapes-clip/best data/shapes/test.jsonl",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, third-party INFO included"
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    configure_cli_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        if args.verbose:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"omnifuse {args.verb}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
