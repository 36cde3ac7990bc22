"""The server's endpoints, one router per module; see `registry.py` for how to add one.

Importing this package registers the built-in routers: ops (health, readiness, metrics), the
page, embed, classify, search (with item thumbnails) and image generation.
"""

from __future__ import annotations

from omnifuse.serve.routers import classify, embed, generate_image, ops, page, search  # noqa: F401  (registers them)
from omnifuse.serve.routers.registry import ROUTERS, ServeRouter, register_router

__all__ = ["ROUTERS", "ServeRouter", "register_router"]
