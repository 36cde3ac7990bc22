"""Authentication, bind policy and the URL allow-list (no fetching of arbitrary client URLs).

- Binding anything but loopback requires an API key (`check_bind`), so a server is never
  exposed unauthenticated by accident.
- The key is compared in constant time (`hmac.compare_digest`) on every /v1 route; the
  health, readiness and metrics routes and the static page stay public (the page sends the key
  the user types into its key field).
- `fetch_url` fetches only URLs under a configured prefix (SSRF guard), without redirects,
  with a timeout and a byte cap counted while streaming.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from omnifuse.serve.config import LOOPBACK_HOSTS
from omnifuse.serve.errors import RequestError

PUBLIC_PATHS = ("/", "/healthz", "/readyz", "/metrics", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to bind a non-loopback address without an API key."""
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"refusing to bind {host} without an API key: anyone on the network could use the server; "
            "pass --api-key KEY or --api-key-file FILE (or bind 127.0.0.1)"
        )


def read_api_key_file(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"API key file not found: {path}")
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ValueError(f"API key file {path} is empty")
    return key


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def presented_key(headers) -> str | None:
    """The key from `X-API-Key: KEY` or `Authorization: Bearer KEY`."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_api_key(expected: str | None, headers) -> None:
    """Raise 401 unless the request carries the expected key (constant-time comparison)."""
    if not expected:
        return
    given = presented_key(headers)
    if given is None:
        raise RequestError(
            401,
            "missing API key: send 'X-API-Key: KEY' or 'Authorization: Bearer KEY'",
            {"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise RequestError(401, "invalid API key", {"WWW-Authenticate": "Bearer"})


def check_url_allowed(url: str, prefixes: tuple[str, ...]) -> None:
    if not prefixes:
        raise RequestError(
            400, "image_urls are disabled on this server (start it with --allow-url-prefix to allow some)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise RequestError(400, f"image URL must be a plain http(s) URL: {url[:200]!r}")
    if not any(url.startswith(p) for p in prefixes):
        raise RequestError(400, f"image URL is not under an allowed prefix: {url[:200]!r}")


def fetch_url(url: str, prefixes: tuple[str, ...], max_bytes: int, timeout_s: float) -> bytes:
    """GET an allowed URL (no redirects), at most `max_bytes`; errors become 400s."""
    import httpx

    check_url_allowed(url, prefixes)
    try:
        with httpx.Client(follow_redirects=False, timeout=timeout_s) as client:
            with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise RequestError(400, f"fetching the image URL returned HTTP {resp.status_code}")
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise RequestError(413, f"image URL body is over the limit of {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as err:
        raise RequestError(400, f"cannot fetch the image URL: {type(err).__name__}") from err
