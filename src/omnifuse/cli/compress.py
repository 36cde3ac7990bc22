"""`omnifuse compress MODEL --method M --out DIR --data VAL`."""

from __future__ import annotations

from omnifuse.cli._common import add_verb

METHOD_NAMES = (
    "dynamic-int8",
    "static-int8",
    "fp16",
    "bf16",
    "prune-magnitude",
    "prune-structured",
    "low-rank",
    "distill",
    "qat",
)


def _override(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--student-set takes key=value (an HF config field), got '{text}'")
    return key.strip(), yaml.safe_load(value)


def register(sub) -> None:
    parser = add_verb(
        sub,
        "compress",
        "compress an artifact (int8 / fp16 / bf16, pruning, low-rank, distillation, QAT) into a new one, "
        "with size, speed and quality before and after",
        "  omnifuse compress runs/shapes-clip/best --method dynamic-int8 --out runs/int8 "
        "--data data/shapes/val.jsonl\n"
        "  omnifuse compress runs/shapes-clip/best --method static-int8 --calib data/shapes/train.jsonl "
        "--out runs/s8 --data data/shapes/val.jsonl --max-drop 0.01 --train data/shapes/train.jsonl\n"
        "  omnifuse compress runs/shapes-clip/best --method prune-magnitude --sparsity 0.5 --out runs/p50 "
        "--data data/shapes/val.jsonl\n"
        "  omnifuse compress runs/shapes-clip/best --method prune-structured --sparsity 0.25 "
        "--finetune-steps 100 --train data/shapes/train.jsonl --out runs/heads --data data/shapes/val.jsonl\n"
        "  omnifuse compress runs/shapes-clip/best --method low-rank --energy 0.9 --out runs/lr "
        "--data data/shapes/val.jsonl\n"
        "  omnifuse compress runs/shapes-clip/best --method distill --student-preset tiny "
        "--student-set num_hidden_layers=1 --steps 300 --train data/shapes/train.jsonl --out runs/student "
        "--data data/shapes/val.jsonl",
        run,
    )
    parser.add_argument("model", help="artifact directory to compress (left untouched)")
    parser.add_argument("--method", required=True, choices=METHOD_NAMES)
    parser.add_argument("--out", required=True, help="new artifact directory")
    parser.add_argument("--data", required=True, help="evaluation split: quality before/after, speed batch")
    parser.add_argument("--calib", default=None, help="calibration split (static-int8)")
    parser.add_argument("--train", default=None, help="training split (fine-tuning, QAT, distillation)")
    parser.add_argument(
        "--label-key",
        default=None,
        help="zero-shot label of the quality figure (models that can zero_shot; default: color_shape when present)",
    )
    parser.add_argument("--text-column", default="captions", help="manifest column with the texts")
    group = parser.add_argument_group("method settings")
    group.add_argument("--sparsity", type=float, default=0.5, help="pruning fraction in (0, 1) (default 0.5)")
    group.add_argument("--scope", choices=("global", "layer"), default="global", help="prune-magnitude")
    group.add_argument("--energy", type=float, default=None, help="low-rank: singular-value energy to keep")
    group.add_argument(
        "--param-budget", type=float, default=None, help="low-rank: fraction of weights to keep"
    )
    group.add_argument("--finetune-steps", type=int, default=0, help="recovery fine-tuning after pruning")
    group.add_argument("--max-drop", type=float, default=None, help="int8: run QAT if quality drops more")
    group.add_argument("--qat-steps", type=int, default=100)
    group.add_argument(
        "--int8-weights",
        choices=("full", "reduced"),
        default=None,
        help="int8: 'full' needs VNNI/AMX-INT8 for int8 kernels (elsewhere it runs exact float "
        "matmuls); 'reduced' (7-bit) is exact in int8 on any x86 CPU (default: this CPU's choice)",
    )
    group.add_argument("--student", default=None, help="distill: a student artifact instead of a preset")
    group.add_argument("--student-preset", default="tiny", choices=("tiny", "small", "base"))
    group.add_argument(
        "--student-set", action="append", default=[], metavar="KEY=VALUE", help="student tower config field"
    )
    group.add_argument("--steps", type=int, default=200, help="distillation steps")
    group.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    group.add_argument("--lr", type=float, default=1e-4)
    group.add_argument("--batch-size", type=int, default=32)
    group.add_argument("--speed-batch", type=int, default=64, help="items in the timed batch")
    group.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from omnifuse.deploy.compress import CompressOptions, compress
    from omnifuse.eval.report import format_table

    opts = CompressOptions(
        sparsity=args.sparsity,
        scope=args.scope,
        energy=args.energy,
        param_budget=args.param_budget,
        finetune_steps=args.finetune_steps,
        lr=args.lr,
        batch_size=args.batch_size,
        student=args.student,
        student_preset=args.student_preset,
        student_overrides=dict(_override(s) for s in args.student_set),
        distill_steps=args.steps,
        temperature=args.temperature,
        max_drop=args.max_drop,
        qat_steps=args.qat_steps,
        int8_weights=args.int8_weights,
        label_key=args.label_key,
        speed_batch=args.speed_batch,
        seed=args.seed,
        progress=not args.quiet,
    )
    report = compress(
        args.model, args.method, args.out, args.data, calib=args.calib, train=args.train, options=opts,
        text_column=args.text_column,
    )  # fmt: skip
    print(format_table(report.rows()))
    if report.qat:
        print(f"quality dropped by {report.qat['triggered_by_drop']:.4f} > {report.qat['max_drop']}: ran QAT")
    print(f"wrote {report.out} (report: {report.out}/compress_report.json)")
    return 0
