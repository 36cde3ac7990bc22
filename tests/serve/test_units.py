"""Building blocks of the server: cache, batcher, limits, security, index."""

from __future__ import annotations

import struct
import threading
import time
import zlib

import numpy as np
import pytest

from omnifuse.serve.batching import DynamicBatcher
from omnifuse.serve.cache import EmbeddingCache, content_key
from omnifuse.serve.config import Limits, ServeConfig
from omnifuse.serve.errors import RequestError
from omnifuse.serve.index import IndexLoadError, VectorIndex, build_index
from omnifuse.serve.limits import open_image
from omnifuse.serve.security import check_api_key, check_bind, check_url_allowed


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and an IHDR chunk declaring width x height, with no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 64)
    idat_chunk = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat_chunk


def test_cache_is_lru_and_keyed_by_content_modality_and_model():
    cache = EmbeddingCache(2)
    a, b, c = (content_key("fp", "text", t) for t in ("a", "b", "c"))
    assert content_key("fp", "text", "a") == a
    assert len({a, content_key("fp2", "text", "a"), content_key("fp", "image", b"a")}) == 3
    cache.put(a, np.ones(3))
    cache.put(b, np.zeros(3))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, np.ones(3))  # evicts b
    assert cache.get(b) is None and cache.get(c) is not None
    assert (cache.hits, cache.misses) == (2, 1)
    assert EmbeddingCache(0).get(a) is None


def test_batcher_groups_requests_into_batches():
    sizes = []

    def run(task, items):
        sizes.append(len(items))
        return [x * 2 for x in items]

    batcher = DynamicBatcher(run, max_batch=4, max_wait_s=0.2, queue_size=32).start()
    futures = [f for i in range(10) for f in batcher.submit(("embed", "text"), [i], timeout_s=5)]
    assert [f.result(5) for f in futures] == [i * 2 for i in range(10)]
    assert sizes == [4, 4, 2]  # full batches at once, the rest after max_wait
    batcher.close()


def test_batcher_bounded_queue_deadline_cancel_and_drain():
    gate = threading.Event()
    seen = []

    def run(task, items):
        gate.wait(5)
        seen.extend(items)
        return items

    batcher = DynamicBatcher(run, max_batch=1, max_wait_s=0, queue_size=3).start()
    first = batcher.submit("t", ["first"], timeout_s=5)  # taken by the worker, blocks on the gate
    time.sleep(0.1)
    queued = batcher.submit("t", ["a", "b"], timeout_s=5)
    with pytest.raises(RequestError) as err:
        batcher.submit("t", ["c", "d"], timeout_s=5)  # all or nothing: 2 more do not fit
    assert err.value.status == 429 and "queue is full" in err.value.message
    expired = batcher.submit("t", ["late"], timeout_s=0.01)
    queued[1].cancel()  # a client that went away
    time.sleep(0.05)
    gate.set()
    batcher.close()  # drains: everything accepted and still wanted has run
    assert first[0].result() == "first" and queued[0].result() == "a"
    assert queued[1].cancelled()
    with pytest.raises(RequestError, match="timed out"):
        expired[0].result()
    assert seen == ["first", "a"]
    with pytest.raises(RequestError) as err:
        batcher.submit("t", ["x"], timeout_s=1)
    assert err.value.status == 503


def test_open_image_checks_header_before_decoding(image_bytes):
    limits = Limits(max_image_pixels=1_000_000)
    assert open_image(image_bytes(), limits).size == (16, 16)
    with pytest.raises(RequestError, match="3000x3000 = 9000000 pixels; the limit is 1000000") as err:
        open_image(png_header(3000, 3000), limits)  # under PIL's own guard: our header check
    assert err.value.status == 413
    with pytest.raises(RequestError, match="image has 900000000 pixels; the limit is 1000000") as err:
        open_image(png_header(30000, 30000), limits)  # PIL's decompression-bomb guard, at open
    assert err.value.status == 413
    with pytest.raises(RequestError, match="truncated or corrupt"):
        open_image(image_bytes(size=64)[:-40], limits)
    with pytest.raises(RequestError, match="format GIF is not accepted") as err:
        open_image(image_bytes(fmt="GIF"), limits)
    assert err.value.status == 415
    with pytest.raises(RequestError, match="empty file"):
        open_image(b"", limits)
    with pytest.raises(RequestError, match="not a recognised image"):
        open_image(b"\x00garbage" * 10, limits)


def test_security_rules():
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    with pytest.raises(ValueError, match="refusing to bind 0.0.0.0 without an API key"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "secret-key-123")
    check_api_key(None, {})
    check_api_key("secret-key-123", {"x-api-key": "secret-key-123"})
    check_api_key("secret-key-123", {"authorization": "Bearer secret-key-123"})
    for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Basic secret-key-123"}):
        with pytest.raises(RequestError) as err:
            check_api_key("secret-key-123", headers)
        assert err.value.status == 401
    with pytest.raises(RequestError, match="disabled"):
        check_url_allowed("http://169.254.169.254/latest", ())
    with pytest.raises(RequestError, match="not under an allowed prefix"):
        check_url_allowed("http://evil.example/a.png", ("https://images.example.com/",))
    with pytest.raises(RequestError, match="plain http"):
        check_url_allowed("https://images.example.com@evil/a.png", ("https://images.example.com",))
    with pytest.raises(ValueError, match="queue_size"):
        ServeConfig(queue_size=4, limits=Limits(max_items=8))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_vector_index_kinds_search_and_round_trip(kind, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = [{"id": f"i{i}", "metadata": {"n": i}} for i in range(200)]
    index = VectorIndex.create(x, items, fingerprint="fp", modality="image", kind=kind)
    hits = index.search(x[:5], k=3)
    assert [h[0].id for h in hits] == ["i0", "i1", "i2", "i3", "i4"]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-4) and hits[0][0].metadata == {"n": 0}
    index.save(tmp_path / "ix")
    assert not list((tmp_path / "ix").glob("*.pkl"))
    loaded = VectorIndex.load(tmp_path / "ix", "fp")
    assert loaded.info.kind == kind and len(loaded) == 200
    assert loaded.search(x[7:8], 1)[0][0].id == "i7"
    with pytest.raises(IndexLoadError, match="different model"):
        VectorIndex.load(tmp_path / "ix", "another-fingerprint")
    with pytest.raises(ValueError, match="already in the index"):
        loaded.add(x[:1], [{"id": "i0", "metadata": {}}])


def test_build_index_append_and_model_check(serve_model_dir, other_model_dir, shapes_dir, tmp_path):
    out = tmp_path / "index"
    info = build_index(serve_model_dir, shapes_dir / "test.jsonl", out, progress=False, limit=5)
    assert (info.count, info.kind, info.modality) == (5, "flat", "image")
    with pytest.raises(ValueError, match="already holds an index"):
        build_index(serve_model_dir, shapes_dir / "test.jsonl", out, progress=False)
    before = VectorIndex.load(out).faiss_index.reconstruct_n(0, 5)  # (5, E)
    info = build_index(serve_model_dir, shapes_dir / "val.jsonl", out, append=True, progress=False)
    assert info.count == 5 + 12
    index = VectorIndex.load(out)
    np.testing.assert_array_equal(index.faiss_index.reconstruct_n(0, 5), before)  # old rows kept as they were
    first = index.items[0]
    assert first["metadata"]["text"] and index.image_path(first["id"]).is_file()
    with pytest.raises(IndexLoadError, match="different model"):
        build_index(other_model_dir, shapes_dir / "val.jsonl", out, append=True, progress=False)
