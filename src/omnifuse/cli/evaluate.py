"""`omnifuse eval MODEL DATA`."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(sub) -> None:
    parser = add_verb(
        sub,
        "eval",
        "evaluate an artifact with its kind's evaluator: retrieval R@1/5/10 and median rank both ways, "
        "zero-shot and a linear probe (dual encoders); accuracy, macro-F1 and per-class reports "
        "(classifiers); captions, answers and few-shot beside blind baselines (captioners); ...",
        "  omnifuse eval runs/shapes-clip/best data/shapes/test.jsonl\n"
        "  omnifuse eval runs/shapes-clip/best data/shapes/test.jsonl --label-key color_shape "
        "--single-object --out eval.json\n"
        "  omnifuse eval runs/shapes-clip/best data/shapes/test.jsonl --label-key shape "
        "--probe-train data/shapes/train.jsonl\n"
        "  omnifuse eval runs/shapes-vqa-fusion/best data/shapes-tasks/vqa_test.jsonl --text-column question "
        "--label-column answer --group-key qtype   # a fusion classifier\n"
        "  omnifuse eval runs/shapes-captioner/best data/shapes/captioner_test.jsonl --max-items 200"
        "   # captions, answers, few-shot (blind baselines beside)",
        run,
    )
    parser.add_argument("model", help="artifact directory (or hub name)")
    parser.add_argument("data", help="manifest, shard directory or image folder")
    parser.add_argument(
        "--text-column",
        default=None,
        help="manifest column with the texts (default: the model kind's, else 'captions')",
    )
    parser.add_argument(
        "--image-column", default=None, help="manifest column with the images (default: image)"
    )
    parser.add_argument("--max-items", type=int, default=1000, help="evaluate the first N items")
    parser.add_argument("--label-key", default=None, help="label for zero-shot accuracy (e.g. color_shape)")
    parser.add_argument("--template", action="append", default=None, help="prompt template with {}")
    parser.add_argument("--single-object", action="store_true", help="zero-shot on single-object scenes only")
    parser.add_argument(
        "--probe-train",
        default=None,
        help="embedding models: training data for a linear probe on --label-key",
    )
    parser.add_argument(
        "--label-column",
        action="append",
        default=None,
        help="manifest column(s) read as labels (e.g. --label-column digit for --label-key digit)",
    )
    parser.add_argument(
        "--group-key", default=None, help="classifiers: report accuracy per value of this field"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--strict", action="store_true")
    parser.add_argument(
        "--out",
        default=None,
        help="write the metrics as JSON here ({metrics, details} when the evaluator gives details)",
    )


DEFAULT_COLUMNS = {"text": "captions", "image": "image"}


def run(args) -> int:
    from omnifuse.data.labels import require_field, require_label_key
    from omnifuse.data.readers import read_samples
    from omnifuse.data.sample import CorruptSamplePolicy
    from omnifuse.eval.evaluator import linear_probe_eval
    from omnifuse.eval.registry import build_evaluator
    from omnifuse.eval.report import format_table
    from omnifuse.models import load_model
    from omnifuse.models.registry import spec_of
    from omnifuse.train.config import EvalConfig

    model = load_model(args.model)
    spec = spec_of(model)
    if spec.evaluator is None:
        raise ValueError(f"a {spec.name} has no evaluator; nothing to measure")
    probe = bool(args.probe_train and args.label_key)
    if probe:
        spec.require("embed", "--probe-train (a linear probe on frozen embeddings)")
    # the kind's own manifest columns (e.g. a captioner's interleaved `text`), then the flags
    columns = {**DEFAULT_COLUMNS, **spec.extras.get("columns", {})}
    given = {"text": args.text_column, "image": args.image_column}
    columns = {m: given[m] or c for m, c in columns.items() if m in model.modalities}
    policy = CorruptSamplePolicy(strict=args.strict, name=args.data)
    samples = read_samples(args.data, columns=columns, label_columns=args.label_column, policy=policy)
    if args.label_key:  # a named key that no sample has is an error, not a missing metric
        require_label_key(samples, args.label_key, args.data)
    if args.group_key:
        require_field(samples, args.group_key, args.data, "--group-key field")
    config = EvalConfig(
        batch_size=args.batch_size,
        max_items=args.max_items,
        label_key=args.label_key,
        templates=args.template,  # None: the templates saved with the model
        only_single_object=args.single_object,
        group_key=args.group_key,
    )
    evaluator = build_evaluator(spec.evaluator, config, samples, model, prefix="")
    metrics, details = evaluator.evaluate(model)
    if probe:
        train = read_samples(
            args.probe_train,
            columns=columns,
            label_columns=args.label_column,
            policy=CorruptSamplePolicy(name=args.probe_train),
        )
        require_label_key(train, args.label_key, args.probe_train)
        metrics.update(linear_probe_eval(model, train, samples, args.label_key, batch_size=args.batch_size))
    print(format_table([{"metric": k, "value": v} for k, v in metrics.items()]))
    if args.out:
        payload = {"metrics": metrics, "details": details} if details else metrics
        print(f"wrote {write_json(args.out, payload)}")
    return 0
