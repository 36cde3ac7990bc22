"""Abuse: each bad request gets a 4xx with a message and the server keeps answering; memory
stays bounded under repeated bad requests; a burst beyond the queue gets 429s, then service."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from omnifuse.serve import Limits, ServeConfig, create_app

KEY = "abuse-key-0123456789"
MAX_BODY = 256 * 1024


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)


def noisy(fmt: str) -> bytes:
    """A 64 px random-noise image: large enough that half of it still holds the header."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, format=fmt
    )
    return buf.getvalue()


def _cases(image_bytes) -> dict[str, tuple[dict, int, str]]:
    """name -> (httpx request kwargs, expected status, a fragment of the error message)."""
    auth = {"X-API-Key": KEY}
    png, jpeg = noisy("PNG"), noisy("JPEG")

    def upload(data: bytes, name: str = "x.png") -> dict:
        return {"files": [("image", (name, data, "application/octet-stream"))], "headers": auth}

    def as_json(payload) -> dict:
        return {"json": payload, "headers": auth}

    return {
        "garbage image": (upload(b"\x13\x37garbage" * 100), 400, "not a recognised image"),
        "empty file": (upload(b""), 400, "empty file"),
        "truncated png": (upload(png[: len(png) // 2]), 400, "truncated or corrupt"),
        "truncated jpeg": (upload(jpeg[: len(jpeg) // 2]), 400, "truncated or corrupt"),
        "30000x30000 png": (upload(png_header(30000, 30000)), 413, "pixels"),
        "gif": (upload(image_bytes(fmt="GIF")), 415, "GIF is not accepted"),
        "bmp": (upload(image_bytes(fmt="BMP")), 415, "BMP is not accepted"),
        "body over the limit": (upload(b"\x00" * (MAX_BODY + 1)), 413, "over the limit"),
        "too many items": (as_json({"texts": ["a"] * 9}), 413, "too many items"),
        "1 MB of text": (
            {
                "content": json.dumps({"texts": ["a" * 200_000]}).encode(),
                "headers": {**auth, "content-type": "application/json"},
            },
            413,
            "characters",
        ),
        "non-utf8 text": (
            {"content": b'{"texts": ["caf\xe9"]}', "headers": {**auth, "content-type": "application/json"}},
            400,
            "not valid UTF-8",
        ),
        "wrong content type": (
            {"content": b"texts=a", "headers": {**auth, "content-type": "text/plain"}},
            415,
            "content type",
        ),
        "malformed json": (
            {"content": b'{"texts": [', "headers": {**auth, "content-type": "application/json"}},
            400,
            "malformed JSON",
        ),
        "json not an object": (as_json(["a"]), 422, "must be an object"),
        "unknown field": (as_json({"txts": ["a"]}), 422, "unknown field"),
        "wrong type": (as_json({"texts": [1, 2]}), 422, "texts.0"),
        "empty inputs": (as_json({}), 400, "no inputs"),
        "empty text": (as_json({"texts": [" "]}), 400, "is empty"),
        "bad base64": (as_json({"images": ["***"]}), 400, "not valid base64"),
        "image url without allow-list": (
            as_json({"image_urls": ["http://169.254.169.254/"]}),
            400,
            "disabled",
        ),
        "wrong api key": (
            {"json": {"texts": ["a"]}, "headers": {"X-API-Key": "not-the-key"}},
            401,
            "invalid API key",
        ),
        "missing api key": ({"json": {"texts": ["a"]}}, 401, "missing API key"),
    }


@pytest.fixture(scope="module")
def abuse_server(subprocess_server, serve_model_dir):
    return subprocess_server(
        serve_model_dir,
        "--api-key",
        KEY,
        "--max-body-mb",
        str(MAX_BODY / 2**20),
        "--max-items",
        "8",
        "--max-text-chars",
        "1000",
        "--queue-size",
        "16",
    )


def test_abuse_gets_4xx_the_server_keeps_answering_and_memory_is_bounded(abuse_server, image_bytes):
    cases = _cases(image_bytes)
    good = {
        "json": {"texts": ["a red circle"], "images": [base64.b64encode(image_bytes()).decode()]},
        "headers": {"X-API-Key": KEY},
    }
    rss = []
    with httpx.Client(base_url=abuse_server.url, timeout=10) as client:
        for round_no in range(6):
            for name, (kwargs, status, fragment) in cases.items():
                r = client.post("/v1/embed", **kwargs)
                assert r.status_code == status, (name, r.status_code, r.text)
                message = r.json()["error"]
                assert fragment in message, (name, message)
                assert "Traceback" not in r.text and "/work/" not in r.text and ".py" not in r.text, name
                if round_no == 0:
                    assert client.get("/healthz").status_code == 200, name
            assert client.post("/v1/embed", **good).status_code == 200
            rss.append(abuse_server.rss_mb)
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
        assert 'status="413"' in metrics and 'status="401"' in metrics
    # after warm-up (round 1), rounds of bad requests must not keep growing the server's memory
    assert rss[-1] - rss[1] < 25, (
        f"server RSS grew {rss[-1] - rss[1]:.1f} MB over {len(rss) - 2} rounds: {rss}"
    )


def test_body_limit_is_enforced_while_reading_a_chunked_upload(abuse_server):
    sent = {"bytes": 0}

    def body():
        for _ in range(64):  # 64 x 64 KiB = 4 MiB, far over the limit; no Content-Length
            sent["bytes"] += 65536
            yield b"\x00" * 65536

    with httpx.Client(base_url=abuse_server.url, timeout=10) as client:
        try:
            r = client.post(
                "/v1/embed", content=body(), headers={"X-API-Key": KEY, "content-type": "application/json"}
            )
            assert r.status_code == 413
        except httpx.HTTPError:
            pass  # the server may close the connection before the client finishes sending
        assert client.get("/healthz").status_code == 200


def test_burst_beyond_the_queue_gets_429_then_normal_service(slow_predictor, thread_server, image_bytes):
    predictor = slow_predictor(0.15)
    config = ServeConfig(
        model_dir="unused", max_batch=4, max_wait_ms=1, queue_size=8, limits=Limits(max_items=4)
    )
    server = thread_server(create_app(config, predictor=predictor))
    payload = {"texts": [f"text {i}" for i in range(4)]}

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            posts = [
                client.post("/v1/embed", json={"texts": [f"{i} {t}" for t in payload["texts"]]})
                for i in range(24)
            ]
            tasks = [asyncio.ensure_future(p) for p in posts]
            await asyncio.sleep(0.05)
            health = await client.get("/healthz")  # answers while the queue is full
            metrics = await client.get("/metrics")
            return (
                [r.status_code for r in await asyncio.gather(*tasks)],
                health.status_code,
                metrics.status_code,
            )

    codes, health, metrics = asyncio.run(burst())
    assert health == 200 and metrics == 200
    assert codes.count(429) >= 10 and codes.count(200) >= 2 and set(codes) <= {200, 429}, codes
    r = httpx.post(f"{server.url}/v1/embed", json={"texts": ["after the burst"]}, timeout=20)
    assert r.status_code == 200
    assert 'omnifuse_rejections_total{reason="queue_full"}' in httpx.get(f"{server.url}/metrics").text


def test_deadline_gives_503_and_a_disconnect_cancels_queued_work(slow_predictor, thread_server):
    predictor = slow_predictor(0.5)
    config = ServeConfig(model_dir="unused", max_batch=1, max_wait_ms=0, queue_size=64, timeout_s=0.3)
    server = thread_server(create_app(config, predictor=predictor))
    r = httpx.post(f"{server.url}/v1/embed", json={"texts": ["x1"]}, timeout=10)
    assert r.status_code == 503 and "timed out" in r.json()["error"]

    predictor.delay_s, predictor.items = 0.3, 0
    app_state = server.app.state.serve
    app_state.config.timeout_s = 10

    keep_task = None

    async def main():
        nonlocal keep_task
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            keep_task = asyncio.ensure_future(client.post("/v1/embed", json={"texts": ["kept"]}))
            await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=server.url, timeout=0.1) as quitter:
                for i in range(4):
                    with pytest.raises(httpx.TimeoutException):
                        await quitter.post("/v1/embed", json={"texts": [f"abandoned {i}"]})
            return (await keep_task).status_code

    assert asyncio.run(main()) == 200
    for _ in range(30):
        if app_state.batcher.depth == 0:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert predictor.items < 1 + 4  # abandoned requests were cancelled before reaching the model
    assert 'reason="client_disconnected"' in httpx.get(f"{server.url}/metrics").text


def _parser_attacks() -> dict[str, tuple[bytes, str | None, int, str]]:
    """name -> (body, content type, expected status, a fragment of the error message): bodies
    that break JSON parsers. Each is sent to every POST endpoint."""
    deep = b"[" * 100_000 + b"]" * 100_000
    json_type = "application/json"
    return {
        "100,000 nested arrays": (b'{"texts": ' + deep + b"}", json_type, 400, "nested too deeply"),
        "100,000 nested arrays, bare": (deep, json_type, 400, "nested too deeply"),
        "50,000 nested objects": (
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            json_type,
            400,
            "nested too deeply",
        ),
        "5,000-digit integer": (
            b'{"texts": ["a"], "k": ' + b"9" * 5000 + b"}",
            json_type,
            422,
            "number literal",
        ),
        "100,000-digit float": (b'{"k": 1.' + b"5" * 100_000 + b"}", json_type, 422, "number literal"),
        "float overflowing to infinity": (b'{"texts": ["a"], "k": 1e999}', json_type, 422, "out of range"),
        "NaN literal": (b'{"texts": ["a"], "top_k": NaN}', json_type, 400, "NaN"),
        "Infinity literal": (b'{"texts": ["a"], "k": Infinity}', json_type, 400, "Infinity"),
        "-Infinity literal": (b'{"texts": ["a"], "k": -Infinity}', json_type, 400, "-Infinity"),
        "duplicate keys": (
            b'{"texts": ["a"], "texts": ["b"], "text": "a", "text": "b"}',
            json_type,
            400,
            "duplicate key",
        ),
        "100,000-character key": (b'{"' + b"k" * 100_000 + b'": 1}', json_type, 422, "the limit is 256"),
        "lone surrogate": (
            b'{"texts": ["\\ud800"], "text": "\\udfff", "labels": ["\\ud800x"]}',
            json_type,
            400,
            "surrogate",
        ),
        "invalid UTF-8": (b'{"texts": ["caf\xe9"], "text": "caf\xe9"}', json_type, 400, "not valid UTF-8"),
        "overlong UTF-8": (b'{"texts": ["\xc0\xaf"]}', json_type, 400, "not valid UTF-8"),
        "UTF-16 body": ('{"texts": ["a"]}'.encode("utf-16"), json_type, 400, "not valid UTF-8"),
        "UTF-8 byte order mark": (b'\xef\xbb\xbf{"texts": ["a"]}', json_type, 400, "BOM"),
        "control character in a string": (b'{"texts": ["a\x01b"]}', json_type, 400, "control character"),
        "trailing garbage": (b'{"texts": ["a"]} {}', json_type, 400, "Extra data"),
        "truncated": (b'{"texts": ["a"', json_type, 400, "malformed JSON"),
        "empty body": (b"", json_type, 400, "empty request body"),
        "whitespace body": (b" \n\t ", json_type, 400, "empty request body"),
        "null body": (b"null", json_type, 422, "must be an object"),
        "number body": (b"1e999", json_type, 422, "out of range"),
        "100,000 unknown keys": (
            b"{" + b",".join(b'"k%d": 1' % i for i in range(100_000)) + b"}",
            json_type,
            422,
            "unknown field",
        ),
        "no content type": (b'{"texts": ["a"]}', None, 415, "content type"),
        "wrong content type": (b'{"texts": ["a"]}', "text/plain", 415, "content type"),
        "multipart without a boundary": (b"--x\r\n", "multipart/form-data", 400, "boundary"),
        "multipart garbage": (b"\x00" * 1000, "multipart/form-data; boundary=x", 400, "multipart"),
        "multipart part without a name": (
            b"--x\r\nContent-Disposition: form-data\r\n\r\na\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
            400,
            "name",
        ),
        "multipart with 5,000 fields": (
            b"".join(b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\na\r\n' for _ in range(5000))
            + b"--x--\r\n",
            "multipart/form-data; boundary=x",
            400,
            "Too many fields",
        ),
    }


@pytest.mark.parametrize("path", ["/v1/embed", "/v1/classify", "/v1/search"])
def test_json_parser_attacks_get_4xx_with_a_message(path, serve_model_dir, shapes_index):
    """Deep nesting, huge or non-finite numbers, duplicate or huge keys, bad Unicode, wrong
    content types: 400/413/415/422 with a message on every endpoint, never a 5xx."""
    from fastapi.testclient import TestClient

    from omnifuse import runtime
    from omnifuse.serve.index import VectorIndex

    app = create_app(
        ServeConfig(model_dir="unused"),
        predictor=runtime.load(serve_model_dir),
        index=VectorIndex.load(shapes_index),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        for name, (body, ctype, status, fragment) in _parser_attacks().items():
            headers = {"content-type": ctype} if ctype else {}
            r = client.post(path, content=body, headers=headers)
            assert r.status_code == status, (path, name, r.status_code, r.text[:300])
            message = r.json()["error"]
            assert fragment in message and len(message) < 400, (path, name, message[:500])
        good = {
            "/v1/embed": {"texts": ["a"]},
            "/v1/classify": {"texts": ["a"], "labels": ["x", "y"]},
            "/v1/search": {"text": "a red circle"},
        }
        assert client.post(path, json=good[path]).status_code == 200  # and it still serves


def test_prompt_templates_that_are_not_one_placeholder_get_422(serve_model_dir):
    """Templates are format strings from the client: `{0}`, `{x}`, `{}{}`, a lone brace or a
    huge width would raise (or allocate) inside the server; each is a 422 naming the template."""
    from fastapi.testclient import TestClient

    from omnifuse import runtime

    app = create_app(ServeConfig(model_dir="unused"), predictor=runtime.load(serve_model_dir))
    with TestClient(app, raise_server_exceptions=False) as client:
        for template in [
            "{} {0}",
            "{}{}",
            "{} {x}",
            "{} {",
            "} {}",
            "{0.__class__} {}",
            "{:>99999999}",
            "{!r}",
        ]:
            r = client.post(
                "/v1/classify", json={"texts": ["a"], "labels": ["x", "y"], "templates": [template]}
            )
            assert r.status_code == 422, (template, r.status_code, r.text)
            assert "placeholder" in r.json()["error"], template
        r = client.post(
            "/v1/classify", json={"texts": ["a"], "labels": ["x", "y"], "templates": ["{{literal}} {}"]}
        )
        assert r.status_code == 200, r.text
