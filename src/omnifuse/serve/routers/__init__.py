"""The server's endpoints, one router per module; see `registry.py` for how to add one.

Importing this package registers the built-in routers: ops (health, readiness, metrics), the
page, embed, classify, search (with item thumbnails) and image generation.
"""

from __future__ import annotations

from omnifuse.serve.routers import (  # noqa: F401  (registers them)
    classify,
    embed,
    generate_image,
    generate_text,
    ops,
    page,
    search,
)
from omnifuse.serve.routers.registry import ROUTERS, ServeRouter, register_router

__all__ = ["ROUTERS", "ServeRouter", "register_router"]
