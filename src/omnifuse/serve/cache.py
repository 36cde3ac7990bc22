"""An LRU cache of embeddings keyed by a content hash (model fingerprint + modality + content)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


def content_key(fingerprint: str, modality: str, content: bytes | str) -> str:
    """SHA-256 of fingerprint, modality and the raw bytes (or UTF-8 text), length-prefixed."""
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    h = hashlib.sha256()
    for part in (fingerprint.encode(), modality.encode(), data):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


class EmbeddingCache:
    """Thread-safe LRU map key -> (E,) float32 vector; counts hits and misses per modality."""

    def __init__(self, capacity: int, on_hit=None, on_miss=None):
        self.capacity = capacity
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._on_hit = on_hit
        self._on_miss = on_miss

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, modality: str = "") -> np.ndarray | None:
        if self.capacity == 0:
            return None
        with self._lock:
            vec = self._data.get(key)
            if vec is not None:
                self._data.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        callback = self._on_hit if vec is not None else self._on_miss
        if callback:
            callback(modality)
        return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        if self.capacity == 0:
            return
        vec = np.array(vec, dtype=np.float32)  # own copy: callers may not mutate it
        vec.setflags(write=False)
        with self._lock:
            self._data[key] = vec
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)
