"""HTTP serving: a FastAPI app with dynamic batching, an embedding cache and a FAISS index.

app = create_app(ServeConfig(model_dir="runs/shapes-clip/best", index_dir="index/"))
omnifuse serve runs/shapes-clip/best --index index/      # the same from the command line

FastAPI, uvicorn, FAISS and prometheus_client are imported inside the modules that need them
(`pip install 'omnifuse[serve]'`).
"""

from __future__ import annotations

from omnifuse._optional import require
from omnifuse.serve.config import Limits, ServeConfig

__all__ = ["Limits", "ServeConfig", "create_app", "run_server"]


def create_app(*args, **kwargs):
    """See `omnifuse.serve.app.create_app`."""
    require("fastapi", "serve", "the HTTP server")
    from omnifuse.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)


def run_server(*args, **kwargs):
    """See `omnifuse.serve.app.run_server`."""
    require("uvicorn", "serve", "the HTTP server")
    from omnifuse.serve.app import run_server as _run_server

    return _run_server(*args, **kwargs)
