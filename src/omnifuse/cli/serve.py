"""`omnifuse serve MODEL_DIR`: the HTTP server (embeddings, zero-shot, search, a web page)."""

from __future__ import annotations

from omnifuse.cli._common import add_verb


def register(sub) -> None:
    p = add_verb(
        sub,
        "serve",
        "serve a model over HTTP: /v1/embed, /v1/classify, /v1/search, /metrics and a web page at /",
        "  omnifuse serve runs/shapes-clip/best --index index/shapes      # http://127.0.0.1:8000/\n"
        "  omnifuse serve runs/shapes-clip/best --host 0.0.0.0 --api-key-file key.txt --max-batch 64\n"
        "  curl -s localhost:8000/v1/embed -H 'content-type: application/json' -d '{\"texts\": [\"a red circle\"]}'",
        run_serve,
    )
    p.add_argument("model_dir", help="model artifact directory (or an exported ONNX one)")
    p.add_argument(
        "--index", default=None, help="vector index directory for /v1/search (omnifuse index build)"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback needs an API key")
    p.add_argument("--port", type=int, default=8000)
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=None, help="require this key (X-API-Key or Bearer) on /v1 routes")
    key.add_argument("--api-key-file", default=None, help="read the API key from this file")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of the model")
    p.add_argument("--max-batch", type=int, default=32, help="largest batch of one forward pass")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="wait this long for a batch to fill")
    p.add_argument("--queue-size", type=int, default=256, help="most queued items; beyond: 429")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a request may wait before 503")
    p.add_argument("--cache-size", type=int, default=4096, help="embeddings kept in the LRU cache (0: off)")
    p.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body (MB)")
    p.add_argument("--max-items", type=int, default=64, help="most texts + images per request")
    p.add_argument("--max-text-chars", type=int, default=2000, help="longest text")
    p.add_argument("--max-image-pixels", type=int, default=40_000_000, help="largest width*height")
    p.add_argument(
        "--max-media-seconds", type=float, default=30.0, help="longest audio clip or video (seconds)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=64,
        help="most tokens a /v1/caption or /v1/answer request may ask for",
    )
    p.add_argument("--image-formats", default="PNG,JPEG,WEBP", help="accepted image formats (PIL names)")
    p.add_argument(
        "--allow-url-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="allow image_urls under this prefix (repeatable); without it URLs are refused",
    )
    p.add_argument(
        "--graceful-timeout", type=float, default=30.0, help="seconds in-flight work may take on SIGTERM"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def config_from_args(args):
    from omnifuse.serve.config import Limits, ServeConfig
    from omnifuse.serve.security import read_api_key_file

    api_key = read_api_key_file(args.api_key_file) if args.api_key_file else args.api_key
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_items=args.max_items,
        max_text_chars=args.max_text_chars,
        max_image_pixels=args.max_image_pixels,
        max_media_seconds=args.max_media_seconds,
        max_new_tokens=args.max_new_tokens,
        image_formats=tuple(f.strip() for f in args.image_formats.split(",") if f.strip()),
        allow_url_prefixes=tuple(args.allow_url_prefix),
    )
    return ServeConfig(
        model_dir=args.model_dir,
        index_dir=args.index,
        host=args.host,
        port=args.port,
        api_key=api_key,
        backend=args.backend,
        threads=args.threads,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        queue_size=args.queue_size,
        timeout_s=args.timeout,
        cache_size=args.cache_size,
        graceful_timeout_s=args.graceful_timeout,
        limits=limits,
    )


def run_serve(args) -> int:
    from pathlib import Path

    from omnifuse.serve import run_server

    if not Path(args.model_dir).is_dir():
        raise FileNotFoundError(f"model directory not found: {args.model_dir}")
    if args.index and not Path(args.index).is_dir():
        raise FileNotFoundError(f"index directory not found: {args.index}")
    config = config_from_args(args)
    from omnifuse.serve.security import check_bind

    check_bind(config.host, config.api_key)
    return run_server(config, log_level=args.log_level)
