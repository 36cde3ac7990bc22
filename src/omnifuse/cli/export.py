"""`omnifuse export`: an artifact directory -> a validated ONNX artifact directory."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "export",
        "export a model artifact to ONNX (one graph per tower, or one classifier graph), checked "
        "against PyTorch with ONNX Runtime; a failed check writes nothing",
        "  omnifuse export runs/shapes-clip/best --out exported/shapes-clip\n"
        "  omnifuse export runs/shapes-clip/best --out exported/shapes-clip-int8 --optimize --quantize int8\n"
        "  omnifuse export runs/fusion/best --format onnx --opset 17 --atol 1e-4 --out exported/fusion",
        run_export,
    )
    parser.add_argument("model", help="omnifuse artifact directory (config.json, processor.json, weights)")
    parser.add_argument("--format", default="onnx", help="export format (only 'onnx')")
    parser.add_argument("--out", required=True, help="output artifact directory (must not exist)")
    parser.add_argument("--optimize", action="store_true", help="apply ONNX Runtime's transformer fusions")
    parser.add_argument(
        "--quantize", default=None, help="'int8': also write <graph>.int8.onnx (dynamic int8)"
    )
    parser.add_argument(
        "--int8-weights",
        choices=("full", "reduced"),
        default=None,
        help="with --quantize int8: 'reduced' (7-bit) weights are right on every x86 CPU with AVX2; "
        "'full' ones only with VNNI/AMX-INT8 (recorded; runtime.load checks). Default: 'full' if this "
        "CPU has VNNI, else 'reduced'",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed for fp32 graphs")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run_export(args) -> int:
    from omnifuse.deploy.export import FORMATS, ExportOptions, export_onnx

    if args.format not in FORMATS:
        raise ValueError(f"unknown export format '{args.format}'; known: {list(FORMATS)}")
    options = ExportOptions(
        opset=args.opset,
        optimize=args.optimize,
        quantize=args.quantize,
        atol=args.atol,
        int8_weights=args.int8_weights,
    )
    report = export_onnx(args.model, args.out, options, overwrite=args.overwrite)
    for p in report.parity:
        print(
            f"{p['graph']:>10} {p['variant']:>4}: max abs diff {p['max_abs_diff']:.2e}, "
            f"mean cosine {p['mean_cosine']:.6f} over batches {[s[next(iter(s))][0] for s in p['batch_shapes']]}"
        )
    print(
        f"wrote {report.directory} ({report.seconds:.1f} s); report: {report.directory}/onnx/export_report.json"
    )
    return 0
