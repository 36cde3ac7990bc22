"""A vector index over embedded items: FAISS for search, JSONL for ids and metadata.

Directory layout (nothing is pickled):

    index.faiss   the FAISS index (its own binary format), row i = line i of items.jsonl
    items.jsonl   one JSON object per item: {"id", "metadata"}
    index.json    model fingerprint, modality, kind, dim, count

`kind` 'flat' is exact inner-product search (IndexFlatIP); above `AUTO_THRESHOLD` items 'auto'
picks HNSW (Malkov & Yashunin, 2016), a graph index with sub-linear search; 'ivf' is an
inverted-file index trained with k-means (Jégou et al., 2011). Vectors are L2-normalised, so
inner product is cosine similarity. Loading checks the model fingerprint: an index built with
another model is refused, since its vectors live in a different space.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse._optional import require
from omnifuse.utils.io import atomic_dir, recover_dir

logger = logging.getLogger("omnifuse.serve")

INDEX_FILE, ITEMS_FILE, INFO_FILE = "index.faiss", "items.jsonl", "index.json"
KINDS = ("auto", "flat", "hnsw", "ivf")
AUTO_THRESHOLD = 50_000
"""'auto' builds an exact flat index below this many items, HNSW above."""


class IndexLoadError(ValueError):
    """A missing, corrupt or mismatched index."""


@dataclass
class IndexInfo:
    fingerprint: str
    modality: str
    kind: str
    dim: int
    count: int = 0
    model_dir: str | None = None
    version: int = 1


@dataclass
class SearchHit:
    id: str
    score: float
    metadata: dict[str, Any]


def _faiss():
    return require("faiss", "serve", "the vector index")


def resolve_kind(kind: str, n: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown index kind '{kind}'; choose one of {KINDS}")
    if kind == "auto":
        return "flat" if n < AUTO_THRESHOLD else "hnsw"
    return kind


def _new_faiss_index(kind: str, dim: int, train: np.ndarray):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
        return index
    nlist = max(1, min(int(4 * math.sqrt(len(train))), len(train) // 39 or 1))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    index.nprobe = max(1, nlist // 8)
    return index


class VectorIndex:
    """FAISS index + item ids and metadata + the info needed to refuse a mismatched model."""

    def __init__(self, faiss_index, items: list[dict[str, Any]], info: IndexInfo):
        self.faiss_index = faiss_index
        self.items = items
        self.info = info
        self._positions = {item["id"]: i for i, item in enumerate(items)}

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def create(
        cls,
        embeddings: np.ndarray,
        items: list[dict[str, Any]],
        fingerprint: str,
        modality: str,
        kind: str = "auto",
        model_dir: str | None = None,
    ) -> VectorIndex:
        """A new index over (N, E) normalised `embeddings`, one item dict {"id", "metadata"} per row."""
        if embeddings.ndim != 2 or len(embeddings) == 0:
            raise ValueError(f"need a non-empty (N, E) embedding matrix, got shape {embeddings.shape}")
        kind = resolve_kind(kind, len(embeddings))
        dim = int(embeddings.shape[1])
        index = cls(
            _new_faiss_index(kind, dim, embeddings),
            [],
            IndexInfo(fingerprint, modality, kind, dim, model_dir=model_dir),
        )
        index.add(embeddings, items)
        return index

    def add(self, embeddings: np.ndarray, items: list[dict[str, Any]]) -> None:
        """Append rows; ids must be new (the old vectors are kept as they are, not re-embedded)."""
        if len(embeddings) != len(items):
            raise ValueError(f"{len(embeddings)} embeddings for {len(items)} items")
        if len(embeddings) and embeddings.shape[1] != self.info.dim:
            raise ValueError(
                f"embedding size {embeddings.shape[1]} does not match the index's {self.info.dim}"
            )
        for item in items:
            item["id"] = str(item["id"])
            if item["id"] in self._positions:
                raise ValueError(
                    f"item id '{item['id']}' is already in the index; --append adds new items only"
                )
            self._positions[item["id"]] = len(self.items)
            self.items.append(item)
        if len(embeddings):
            self.faiss_index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
        self.info.count = len(self.items)

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[SearchHit]]:
        """(Q, E) normalised queries -> per query, up to k hits sorted by cosine similarity."""
        if queries.ndim != 2 or queries.shape[1] != self.info.dim:
            raise ValueError(f"queries must be (Q, {self.info.dim}), got {queries.shape}")
        k = max(1, min(k, len(self.items)))
        scores, ids = self.faiss_index.search(np.ascontiguousarray(queries, dtype=np.float32), k)  # (Q, k)
        return [
            [
                SearchHit(self.items[j]["id"], float(s), self.items[j].get("metadata", {}))
                for s, j in zip(row_s, row_i)
                if j >= 0
            ]
            for row_s, row_i in zip(scores, ids)
        ]

    def item(self, item_id: str) -> dict[str, Any] | None:
        pos = self._positions.get(item_id)
        return None if pos is None else self.items[pos]

    def image_path(self, item_id: str) -> Path | None:
        """The image file registered for an item (only files named in the index are ever served)."""
        item = self.item(item_id)
        path = (item or {}).get("metadata", {}).get("image")
        return Path(path) if isinstance(path, str) and Path(path).is_file() else None

    # ---- persistence ----------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index directory atomically (`omnifuse.utils.io.atomic_dir`): a server
        loading it finds the previous index or this one, complete."""
        faiss = _faiss()

        def write(tmp: Path) -> None:
            faiss.write_index(self.faiss_index, str(tmp / INDEX_FILE))
            with open(tmp / ITEMS_FILE, "w", encoding="utf-8") as f:
                for item in self.items:
                    f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
            (tmp / INFO_FILE).write_text(json.dumps(asdict(self.info), indent=2))

        return atomic_dir(Path(directory), write, marker=INFO_FILE)

    @classmethod
    def load(cls, directory: str | os.PathLike, fingerprint: str | None = None) -> VectorIndex:
        """Load an index; with `fingerprint`, refuse one built with a different model."""
        directory = recover_dir(Path(directory))
        info_path = directory / INFO_FILE
        if not info_path.is_file():
            raise IndexLoadError(
                f"{directory}: not an omnifuse index (no {INFO_FILE}); build one with 'omnifuse index build'"
            )
        try:
            info = IndexInfo(**json.loads(info_path.read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise IndexLoadError(f"{info_path}: malformed index info ({err})") from err
        if fingerprint is not None and info.fingerprint != fingerprint:
            raise IndexLoadError(
                f"{directory} was built with a different model (fingerprint {info.fingerprint}, "
                f"model {info.model_dir or '?'}); this model's fingerprint is {fingerprint}. "
                "Rebuild the index with this model: omnifuse index build MODEL_DIR DATA --out DIR"
            )
        items = []
        with open(directory / ITEMS_FILE, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        items.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise IndexLoadError(
                            f"{directory / ITEMS_FILE}:{line_no}: malformed JSON ({err.msg})"
                        ) from err
        faiss_index = _faiss().read_index(str(directory / INDEX_FILE))
        if faiss_index.ntotal != len(items) or faiss_index.d != info.dim:
            raise IndexLoadError(
                f"{directory}: index holds {faiss_index.ntotal} vectors of size {faiss_index.d} but "
                f"{ITEMS_FILE} has {len(items)} items and info says size {info.dim}; rebuild it"
            )
        return cls(faiss_index, items, info)


# ---- building from a data set -------------------------------------------------------------
def _item_for(sample, position: int) -> dict[str, Any]:
    from omnifuse.data.processors import first_text

    meta = {k: v for k, v in sample.meta.items() if k not in ("id", "source")}
    # the manifest's file name and line, not the server's directory layout
    metadata: dict[str, Any] = {"source": os.path.basename(sample.source), "labels": sample.labels, **meta}
    text = sample.inputs.get("text")
    if text is not None:
        metadata["text"] = first_text(text)
    image = sample.inputs.get("image")
    if isinstance(image, (str, os.PathLike)):
        metadata["image"] = str(Path(image).resolve())
    return {"id": str(sample.meta.get("id", position)), "metadata": metadata}


def build_index(
    model_dir: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    modality: str = "image",
    append: bool = False,
    kind: str = "auto",
    batch_size: int = 64,
    backend: str = "auto",
    progress: bool = True,
    limit: int | None = None,
) -> IndexInfo:
    """Embed the `modality` of every sample of `data` (manifest, shards, image folder) and index it.

    With `append`, load the index at `out` and add only the new samples (the old vectors are
    kept); the model must be the one the index was built with.
    """
    from tqdm.auto import tqdm

    from omnifuse import runtime
    from omnifuse.data.decode import decode_value
    from omnifuse.data.readers import read_samples
    from omnifuse.data.sample import CorruptSampleError

    predictor = runtime.load(model_dir, backend=backend, batch_size=batch_size)
    if modality not in predictor.modalities:
        raise ValueError(f"the model takes {predictor.modalities}; cannot index modality '{modality}'")
    existing = VectorIndex.load(out, predictor.fingerprint) if append else None
    if existing is not None and existing.info.modality != modality:
        raise ValueError(f"{out} indexes '{existing.info.modality}', not '{modality}'")
    if not append and (Path(out) / INFO_FILE).exists():
        raise ValueError(f"{out} already holds an index; pass --append to add to it or choose another --out")
    samples = [s for s in read_samples(data) if modality in s.inputs]
    if limit:
        samples = samples[:limit]
    if not samples:
        raise ValueError(f"{data}: no samples with a '{modality}' input")
    offset = len(existing) if existing is not None else 0
    items = [_item_for(s, offset + i) for i, s in enumerate(samples)]
    chunks, kept, skipped = [], [], 0
    bar = tqdm(total=len(samples), desc=f"embedding {modality}", unit="item", disable=not progress)
    for start in range(0, len(samples), batch_size):
        values, batch_items = [], []
        for sample, item in zip(samples[start : start + batch_size], items[start : start + batch_size]):
            try:
                values.append(decode_value(modality, sample.inputs[modality], sample.source))
                batch_items.append(item)
            except CorruptSampleError as err:
                skipped += 1
                logger.warning("skipping %s", err)
        if values:
            chunks.append(predictor.embed(modality, values))  # (B, E)
            kept.extend(batch_items)
        bar.update(min(batch_size, len(samples) - start))
    bar.close()
    if not chunks:
        raise ValueError(f"{data}: every sample was corrupt; nothing to index")
    embeddings = np.concatenate(chunks)  # (N, E)
    if existing is not None:
        existing.add(embeddings, kept)
        index = existing
    else:
        index = VectorIndex.create(
            embeddings, kept, predictor.fingerprint, modality, kind, model_dir=str(model_dir)
        )
    index.save(out)
    if skipped:
        logger.warning("skipped %d corrupt samples", skipped)
    return index.info
