"""`omnifuse index build MODEL_DIR DATA --out DIR`: a FAISS index of embedded samples for search."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    parser = add_verb(
        sub,
        "index",
        "vector indexes for `omnifuse serve --index`",
        "  omnifuse index build runs/shapes-clip/best data/shapes/test.jsonl --out index/shapes\n"
        "  omnifuse index build runs/shapes-clip/best data/more.jsonl --out index/shapes --append",
        None,
    )
    verbs = parser.add_subparsers(dest="index_verb", metavar="ACTION", required=True)
    build = add_verb(
        verbs,
        "build",
        "embed a manifest, shard set or image folder and write a FAISS index with ids and metadata",
        "  omnifuse index build runs/shapes-clip/best data/shapes/test.jsonl --out index/shapes\n"
        "  omnifuse index build MODEL data/shards --out index/big --kind hnsw --batch-size 128\n"
        "  omnifuse index build MODEL data/new.jsonl --out index/shapes --append   # adds, keeps old vectors",
        run_build,
    )
    build.add_argument("model_dir", help="model artifact directory")
    build.add_argument("data", help="manifest (.jsonl/.csv), shard directory or image folder")
    build.add_argument("--out", required=True, help="index directory")
    build.add_argument("--modality", default="image", help="which input of each sample to index")
    build.add_argument("--append", action="store_true", help="add to the index at --out (same model)")
    build.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "flat", "hnsw", "ivf"],
        help="auto: exact below 50k items, HNSW above",
    )
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    build.add_argument("--limit", type=int, default=None, help="index only the first N samples")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_build(args) -> int:
    from omnifuse.serve.index import build_index

    info = build_index(
        args.model_dir,
        args.data,
        args.out,
        modality=args.modality,
        append=args.append,
        kind=args.kind,
        batch_size=args.batch_size,
        backend=args.backend,
        progress=not args.no_progress,
        limit=args.limit,
    )
    print(
        f"index {args.out}: {info.count} {info.modality} items, kind {info.kind}, dim {info.dim}, model {info.fingerprint}"
    )
    return 0
