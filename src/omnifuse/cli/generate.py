"""`omnifuse generate KIND ...`: captions, answers (and images, ...) from a trained generative model.

Each sub-command is one `add_<name>(verbs)` function listed in SUBCOMMANDS: it adds its parser
(with :func:`add_decoding_args` for the shared sampling controls) and sets `func`. A new
generative kind adds its sub-command by writing one such function and appending it.

`caption` and `answer` load any artifact whose spec can `generate_text` and call its
`caption(images, settings, few_shot, streamer=None)` / `answer(images, questions, settings,
few_shot, streamer=None)` (both return a `GenerationOutput`), `read_few_shot(path, task)` and
`tokenizer`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omnifuse.cli._common import add_verb


def add_decoding_args(parser: argparse.ArgumentParser, max_new_tokens: int = 32) -> None:
    """The sampling controls every generative sub-command shares (-> GenerationSettings)."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"default {max_new_tokens}")
    g.add_argument("--strategy", choices=("greedy", "beam", "sample"), default="greedy")
    g.add_argument("--num-beams", type=int, default=4, help="beams for --strategy beam")
    g.add_argument("--temperature", type=float, default=1.0, help="for --strategy sample")
    g.add_argument("--top-k", type=int, default=0, help="for --strategy sample (0: off)")
    g.add_argument("--top-p", type=float, default=1.0, help="for --strategy sample (1: off)")
    g.add_argument("--repetition-penalty", type=float, default=1.0)
    g.add_argument("--num-return-sequences", type=int, default=1)
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    g.add_argument("--seed", type=int, default=None, help="seed for sampling")
    g.add_argument("--no-cache", action="store_true", help="decode without the KV cache")
    g.add_argument("--limit", type=int, default=None, help="refuse max_new_tokens above this (default 512)")


def settings_from_args(args: argparse.Namespace):
    """GenerationSettings from :func:`add_decoding_args` options, checked against the limit."""
    from omnifuse.generation import MAX_NEW_TOKENS_LIMIT, GenerationSettings

    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        strategy=args.strategy,
        num_beams=args.num_beams,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        num_return_sequences=args.num_return_sequences,
        stop=args.stop,
        seed=args.seed,
        use_cache=not args.no_cache,
    )
    settings.check_limit(args.limit if args.limit is not None else MAX_NEW_TOKENS_LIMIT)
    return settings


def load_generator(path: str, capability: str, what: str):
    """Load an artifact and check (through its spec) that it can do `capability`."""
    from omnifuse.models import load_model
    from omnifuse.models.registry import spec_of

    model = load_model(path)
    spec_of(model).require(capability, what)
    return model


def emit(rows: list[dict[str, Any]], out: str | None, as_json: bool) -> None:
    """Rows as JSON lines (to --out or stdout), or the plain text of each row on stdout."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} result(s) to {out}")
    elif as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        for r in rows:
            print(r["text"])


def _common_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="write JSON lines here")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of plain text")
    parser.add_argument("--stream", action="store_true", help="print tokens as they are decoded (one prompt)")
    parser.add_argument(
        "--few-shot",
        default=None,
        metavar="FILE",
        help='JSONL of in-context examples, one per line: {"image": PATH, "text": ...} '
        '(captions) or {"image": PATH, "question": ..., "answer": ...} (answers)',
    )


def _run_text(args: argparse.Namespace, task: str, images: list[str], question: str | None) -> int:
    from omnifuse.generation import stream_generate

    model = load_generator(args.model, "generate_text", f"omnifuse generate {task}")
    settings = settings_from_args(args)
    shots = model.read_few_shot(args.few_shot, task) if args.few_shot else []
    call = dict(images=images, settings=settings, few_shot=shots)
    if question is not None:
        call["questions"] = [question] * len(images)
    method = model.caption if task == "caption" else model.answer
    if args.stream:
        if len(images) != 1:
            raise ValueError("--stream decodes one prompt: give one image")
        stream = stream_generate(
            lambda streamer: method(**call, streamer=streamer), model.tokenizer, settings.stop
        )
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    out = method(**call)
    n = settings.num_return_sequences
    rows = [
        {"image": images[i // n], **({"question": question} if question else {}), "text": t, "finish": r}
        for i, (t, r) in enumerate(zip(out.texts, out.finish_reasons, strict=True))
    ]
    emit(rows, args.out, args.json)
    return 0


def add_caption(verbs) -> None:
    p = add_verb(
        verbs,
        "caption",
        "describe images with a captioner",
        "  omnifuse generate caption runs/shapes-captioner/best img/0.png img/1.png\n"
        "  omnifuse generate caption MODEL img.png --strategy beam --num-beams 3 --json\n"
        "  omnifuse generate caption MODEL img.png --few-shot examples.jsonl --stream",
        lambda args: _run_text(args, "caption", args.images, None),
    )
    p.add_argument("model", help="artifact directory of a model that can generate text")
    p.add_argument("images", nargs="+", help="image files")
    _common_outputs(p)
    add_decoding_args(p)


def add_answer(verbs) -> None:
    p = add_verb(
        verbs,
        "answer",
        "answer a question about an image",
        "  omnifuse generate answer runs/shapes-captioner/best --image img/0.png --question 'what color is the circle?'",
        lambda args: _run_text(args, "answer", args.image, args.question),
    )
    p.add_argument("model", help="artifact directory of a model that can generate text")
    p.add_argument("--image", action="append", required=True, help="image file (repeat for several)")
    p.add_argument("--question", required=True)
    _common_outputs(p)
    add_decoding_args(p, max_new_tokens=8)


def _run_image(args: argparse.Namespace) -> int:
    from omnifuse.models import load_model
    from omnifuse.models.registry import spec_of
    from omnifuse.models.text_to_image import image_grid

    model = load_generator(args.model, "generate_image", "omnifuse generate image")
    settings = settings_from_args(args)
    clip = None
    if args.rerank:
        clip = load_model(args.rerank)
        spec_of(clip).require("embed", "--rerank")
    out = model.generate(args.prompts, n=args.n, settings=settings, guidance_scale=args.guidance, rerank=clip)
    grid = image_grid(out.images, columns=args.n)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, format="PNG")
    rows = [
        {"prompt": p, "rank": i % args.n, **({"clip_score": out.scores[i]} if out.scores else {})}
        for i, p in enumerate(out.prompts)
    ]
    if args.json:
        for r in rows:
            print(json.dumps(r))
    ranked = " (best first by CLIP score)" if clip is not None else ""
    print(f"wrote {len(out.images)} image(s), {len(args.prompts)} row(s) x {args.n}{ranked}, to {args.out}")
    return 0


def add_image(verbs) -> None:
    p = add_verb(
        verbs,
        "image",
        "draw images from text prompts with a text-to-image model (a PNG grid: one row per prompt)",
        '  omnifuse generate image runs/shapes-t2i/best "a red circle above a blue square" --n 16 \\\n'
        "      --rerank runs/shapes-clip/best --guidance 3 --seed 0 --out grid.png\n"
        '  omnifuse generate image MODEL "a green star" "a blue hexagon" --n 4 --top-k 64 --out two_rows.png',
        _run_image,
    )
    p.add_argument("model", help="artifact directory of a model that can generate images")
    p.add_argument("prompts", nargs="+", help="text prompts (one grid row each)")
    p.add_argument("--n", type=int, default=4, help="candidates per prompt (default 4)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1: off)")
    p.add_argument(
        "--rerank", default=None, metavar="CLIP_DIR", help="a DualEncoder artifact: sort by CLIP score"
    )
    p.add_argument("--out", default="grid.png", help="PNG grid to write (default grid.png)")
    p.add_argument(
        "--json", action="store_true", help="also print one JSON line per image (prompt, rank, score)"
    )
    add_decoding_args(p)
    p.set_defaults(strategy="sample")


#: One function per sub-command; append yours.
SUBCOMMANDS = [add_caption, add_answer, add_image]


def register(sub) -> None:
    parser = add_verb(
        sub,
        "generate",
        "generate with a trained model: captions, answers, images (see each sub-command's --help)",
        "  omnifuse generate caption runs/shapes-captioner/best img.png\n"
        "  omnifuse generate answer runs/shapes-captioner/best --image img.png --question 'how many shapes?'",
        None,
    )
    verbs = parser.add_subparsers(dest="generate_verb", metavar="WHAT", required=True)
    for add in SUBCOMMANDS:
        add(verbs)
