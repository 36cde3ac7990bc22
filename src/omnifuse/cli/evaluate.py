"""`omnifuse eval MODEL DATA`."""

from __future__ import annotations

from omnifuse.cli._common import add_verb, write_json


def register(sub) -> None:
    parser = add_verb(
        sub,
        "eval",
        "evaluate an artifact: retrieval R@1/5/10 and median rank both ways, zero-shot, linear probe",
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
    parser.add_argument("--text-column", default="captions", help="manifest column with the texts")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--max-items", type=int, default=1000, help="retrieval over the first N pairs")
    parser.add_argument("--label-key", default=None, help="label for zero-shot accuracy (e.g. color_shape)")
    parser.add_argument("--template", action="append", default=None, help="prompt template with {}")
    parser.add_argument("--single-object", action="store_true", help="zero-shot on single-object scenes only")
    parser.add_argument("--probe-train", default=None, help="training data for a linear probe on --label-key")
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
    parser.add_argument("--out", default=None, help="write the metrics as JSON here")


def run(args) -> int:
    from omnifuse.data.labels import require_label_key
    from omnifuse.data.readers import read_samples
    from omnifuse.data.sample import CorruptSamplePolicy
    from omnifuse.eval.evaluator import DualEncoderEvaluator, linear_probe_eval
    from omnifuse.eval.report import format_table
    from omnifuse.models import load_model
    from omnifuse.models.registry import spec_of

    model = load_model(args.model)
    columns = {"text": args.text_column, "image": args.image_column}
    policy = CorruptSamplePolicy(strict=args.strict, name=args.data)
    evaluator_name = spec_of(model).evaluator
    if isinstance(evaluator_name, str) and evaluator_name not in ("retrieval", "classification"):
        return run_spec_evaluator(args, model, evaluator_name, policy)
    if model.model_type != "dual_encoder":
        return run_classifier(args, model, columns, policy)
    samples = read_samples(args.data, columns=columns, label_columns=args.label_column, policy=policy)
    if args.label_key:  # a named key that no sample has is an error, not a missing metric
        require_label_key(samples, args.label_key, args.data)
    evaluator = DualEncoderEvaluator(
        samples,
        batch_size=args.batch_size,
        max_items=args.max_items,
        label_key=args.label_key,
        templates=args.template,  # None: the templates saved with the model
        only_single_object=args.single_object,
        prefix="",
    )
    metrics = evaluator(model)
    if args.probe_train and args.label_key:
        train = read_samples(
            args.probe_train,
            columns=columns,
            label_columns=args.label_column,
            policy=CorruptSamplePolicy(name=args.probe_train),
        )
        require_label_key(train, args.label_key, args.probe_train)
        metrics.update(linear_probe_eval(model, train, samples, args.label_key, batch_size=args.batch_size))
    rows = [{"metric": k, "value": v} for k, v in metrics.items()]
    print(format_table(rows))
    if args.out:
        print(f"wrote {write_json(args.out, metrics)}")
    return 0


def run_classifier(args, model, columns: dict[str, str], policy) -> int:
    """Accuracy, macro-F1, per-group accuracy (and per-class report in --out) of a classifier."""
    from omnifuse.data.labels import require_field
    from omnifuse.data.readers import read_samples
    from omnifuse.eval.classification import ClassifierEvaluator
    from omnifuse.eval.report import format_table

    columns = {m: c for m, c in columns.items() if m in model.modalities}
    samples = read_samples(args.data, columns=columns, label_columns=args.label_column, policy=policy)
    if args.group_key:
        require_field(samples, args.group_key, args.data, "--group-key field")
    evaluator = ClassifierEvaluator(samples, args.batch_size, args.max_items, args.group_key, prefix="")
    metrics, details = evaluator.evaluate(model)
    print(format_table([{"metric": k, "value": v} for k, v in metrics.items()]))
    if args.out:
        print(f"wrote {write_json(args.out, {'metrics': metrics, 'details': details})}")
    return 0


def run_spec_evaluator(args, model, name: str, policy) -> int:
    """The evaluator a kind's spec names (e.g. `captioner`: captions, answers, few-shot, each
    beside its blind baselines), over the manifest's `image` and `text` columns."""
    from types import SimpleNamespace

    from omnifuse.data.readers import read_samples
    from omnifuse.eval.registry import build_evaluator
    from omnifuse.eval.report import format_table

    text = "text" if args.text_column == "captions" else args.text_column  # interleaved texts
    samples = read_samples(
        args.data,
        columns={"image": args.image_column, "text": text},
        label_columns=args.label_column or None,
        policy=policy,
    )
    config = SimpleNamespace(batch_size=min(args.batch_size, 64), max_items=args.max_items)
    evaluator = build_evaluator(name, config, samples, model, prefix="")
    metrics, details = evaluator.evaluate(model)
    print(format_table([{"metric": k, "value": v} for k, v in metrics.items()]))
    if args.out:
        print(f"wrote {write_json(args.out, {'metrics': metrics, 'details': details})}")
    return 0
