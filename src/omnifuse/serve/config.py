"""Typed server settings: every limit has a safe default and is configurable."""

from __future__ import annotations

from dataclasses import dataclass, field

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class Limits:
    """Request limits, each enforced before any expensive work (see `omnifuse.serve.limits`)."""

    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body; counted while the body streams in (413 as soon as it is passed)."""
    max_items: int = 64
    """Most texts + images in one request."""
    max_text_chars: int = 2000
    """Longest single text (characters)."""
    max_image_pixels: int = 40_000_000
    """Largest width * height, checked from the image header before any pixel is decoded."""
    image_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
    """Image formats accepted (PIL format names)."""
    max_media_seconds: float = 30.0
    """Longest audio clip or video (seconds), checked after decoding the container header/samples."""
    max_labels: int = 256
    """Most labels in one zero-shot classification request."""
    max_k: int = 100
    """Most results of one search."""
    max_new_tokens: int = 64
    """Most tokens one text-generation request may ask for (`/v1/caption`, `/v1/answer`)."""
    allow_url_prefixes: tuple[str, ...] = ()
    """`image_urls` are fetched only when they start with one of these (empty: URLs are refused)."""
    url_timeout_s: float = 5.0
    max_images: int = 16
    """Most images one `/v1/generate/image` request may ask for."""
    max_guidance_scale: float = 10.0
    """Largest classifier-free guidance scale a request may ask for."""
    max_generate_s: float = 60.0
    """Longest an image generation may run; past it the request fails with 408."""

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_items",
            "max_text_chars",
            "max_image_pixels",
            "max_labels",
            "max_k",
            "max_media_seconds",
            "max_images",
            "max_guidance_scale",
            "max_generate_s",
            "max_new_tokens",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"limit '{name}' must be positive, got {getattr(self, name)}")
        self.image_formats = tuple(f.upper() for f in self.image_formats)
        self.allow_url_prefixes = tuple(self.allow_url_prefixes)
        for prefix in self.allow_url_prefixes:
            if not prefix.startswith(("http://", "https://")) or prefix.count("/") < 3:
                raise ValueError(
                    f"URL prefix {prefix!r} must be an http(s) URL with a host and a path, "
                    "e.g. https://images.example.com/"
                )


@dataclass
class ServeConfig:
    """Everything `omnifuse serve` needs."""

    model_dir: str | None = None
    """Artifact directory loaded with `omnifuse.runtime.load` (or pass a predictor to create_app)."""
    index_dir: str | None = None
    """Optional vector index (built with `omnifuse index build`) for /v1/search."""
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    """Required on /v1/* when set; required to bind anything but loopback."""
    backend: str = "auto"
    threads: int | None = None
    max_batch: int = 32
    """Largest batch one forward pass runs."""
    max_wait_ms: float = 5.0
    """How long the batcher waits for more requests before running a partial batch."""
    queue_size: int = 256
    """Most items waiting; beyond it requests get 429 at once."""
    timeout_s: float = 10.0
    """A request still waiting (queued or running) after this gets 503."""
    cache_size: int = 4096
    """Embeddings kept in the LRU cache (0 turns it off)."""
    graceful_timeout_s: float = 30.0
    """On SIGTERM, how long in-flight requests may take to finish."""
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.max_batch <= 0:
            raise ValueError(f"max_batch must be positive, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.queue_size < self.limits.max_items:
            raise ValueError(
                f"queue_size ({self.queue_size}) must hold one full request "
                f"(max_items={self.limits.max_items}); raise --queue-size or lower --max-items"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ValueError("the API key must be at least 8 characters long")
