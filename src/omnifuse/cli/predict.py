"""`omnifuse predict MODEL INPUTS`: batch prediction from a manifest to CSV or JSONL."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "predict",
        "predict labels for every row of a manifest with a trained classifier (or zero-shot labels); "
        "a token classifier writes one label per word (JSONL)",
        "  omnifuse predict runs/shapes-vqa/best data/shapes/vqa_test.jsonl --columns text=question --out preds.csv\n"
        "  omnifuse predict runs/shapes-clip/best data/shapes/test.jsonl --columns image=image \\\n"
        "      --labels 'red circle' 'blue square' --out preds.jsonl --top-k 2\n"
        "  omnifuse predict runs/grounding/best data/shapes/grounding_test.jsonl --columns text=caption \\\n"
        "      image=image --out tags.jsonl",
        run,
    )
    parser.add_argument("model", help="artifact directory (PyTorch or exported)")
    parser.add_argument("inputs", help="JSONL/CSV manifest or shard directory")
    parser.add_argument("--out", required=True, help="output file: .csv or .jsonl")
    parser.add_argument(
        "--columns",
        nargs="*",
        default=[],
        metavar="MODALITY=COLUMN",
        help="manifest column per modality (default: columns named like the modalities)",
    )
    parser.add_argument("--labels", nargs="*", default=None, help="zero-shot labels (dual encoders)")
    parser.add_argument("--top-k", type=int, default=1, help="labels kept per row (default 1)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backend", default="auto", help="runtime backend: auto, torch, onnx")


def parse_columns(items: list[str]) -> dict[str, str]:
    columns = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--columns expects MODALITY=COLUMN; got '{item}'")
        modality, column = item.split("=", 1)
        columns[modality.strip()] = column.strip()
    return columns


def run(args) -> int:
    from omnifuse.runtime.predict import predict_manifest

    n = predict_manifest(
        args.model,
        args.inputs,
        args.out,
        columns=parse_columns(args.columns) or None,
        labels=args.labels,
        top_k=args.top_k,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    print(f"wrote {n} predictions to {args.out}")
    return 0
