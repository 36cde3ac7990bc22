"""WebDataset tar shards with a checksum index: `pack_shards` writes them, `read_shards` reads them.

A shard is a plain tar file whose members are `<key>.<ext>` (the WebDataset convention), so
`webdataset.WebDataset(urls)` reads our shards as they are. Per sample, with `key` a
zero-padded running index:

- `<key>.png` / `<key>.jpg` / ...: the image file's original bytes (arrays and PIL images are
  encoded as PNG); audio and video files likewise keep their bytes and extension;
- `<key>.txt`: the text (the first paraphrase when there are several);
- `<key>.json`: everything else, so that nothing is lost: all texts, labels, meta (minus
  absolute paths of the packing machine, plus `origin`, the sample's original source) and
  `members` (modality -> member extension).

`index.json` (written last, after every shard is complete) lists each shard's file name,
sha256, size and sample count. Readers verify every shard against it before yielding anything
from that shard and refuse a corrupted one with `ShardChecksumError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from omnifuse.data.decode import check_text, load_image
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, DataError, Sample
from omnifuse.utils.io import AtomicFile, atomic_write, is_temp

logger = logging.getLogger("omnifuse.data")

INDEX_NAME = "index.json"
INDEX_FORMAT = "omnifuse-shards"
INDEX_VERSION = 1
SHARD_PATTERN = "shard-{:06d}.tar"

#: PIL format -> member extension of images kept byte for byte.
_IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}
_IMAGE_EXTS = {"png", "jpg", "jpeg", "webp", "bmp", "gif"}
_AUDIO_EXTS = {"wav", "flac", "mp3", "ogg", "m4a", "opus"}
_VIDEO_EXTS = {"mp4", "webm", "avi", "mkv", "mov"}
_RESERVED_EXTS = {"txt", "json"}
#: Modalities packed as opaque bytes under a fixed extension (an episode's arrays as `.npz`).
_BYTES_MODALITIES = {"episode": "npz"}
_CHUNK = 1 << 20


class ShardChecksumError(DataError):
    """A shard's bytes do not match its checksum in `index.json`: the shard is corrupted."""


@dataclass
class ShardInfo:
    """One shard's entry in `index.json`."""

    file: str
    """File name, relative to the index's directory."""
    sha256: str
    size: int
    """Size in bytes."""
    count: int
    """Number of samples."""


@dataclass
class ShardIndex:
    """The checksum index of a shard directory (`index.json`)."""

    shards: list[ShardInfo]
    total: int
    modalities: list[str]
    format: str = INDEX_FORMAT
    version: int = INDEX_VERSION
    directory: Path | None = field(default=None, compare=False, repr=False)
    """Where the index lives (not saved)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "shards": [asdict(s) for s in self.shards],
            "total": self.total,
            "modalities": list(self.modalities),
        }

    @property
    def paths(self) -> list[Path]:
        base = self.directory or Path(".")
        return [base / s.file for s in self.shards]

    @classmethod
    def load(cls, dir_or_index: str | os.PathLike) -> ShardIndex:
        """Read `DIR/index.json` (or the index file itself), checking its format."""
        path = Path(dir_or_index)
        if path.is_dir():
            path = path / INDEX_NAME
        if not path.is_file():
            raise DataError(
                f"{path}: shard index not found; pack shards with `omnifuse data pack MANIFEST --out DIR`"
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: cannot read shard index: {err}") from err
        if not isinstance(raw, dict) or raw.get("format") != INDEX_FORMAT:
            raise DataError(f"{path}: not an omnifuse shard index (expected format '{INDEX_FORMAT}')")
        if raw.get("version") != INDEX_VERSION:
            raise DataError(
                f"{path}: shard index version {raw.get('version')!r} is not supported "
                f"(this omnifuse reads version {INDEX_VERSION})"
            )
        try:
            shards = [
                ShardInfo(str(s["file"]), str(s["sha256"]), int(s["size"]), int(s["count"]))
                for s in raw["shards"]
            ]
            return cls(
                shards=shards,
                total=int(raw["total"]),
                modalities=list(raw.get("modalities", [])),
                directory=path.parent,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: malformed shard index ({type(err).__name__}: {err})") from err

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `index.json` atomically (temporary name, fsync, rename)."""
        path = Path(directory) / INDEX_NAME
        atomic_write(path, json.dumps(self.to_dict(), indent=2) + "\n")
        self.directory = path.parent
        return path


# --------------------------------------------------------------------------- writing


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def _is_local_abs_path(value: Any) -> bool:
    return isinstance(value, str) and os.path.isabs(value) and os.path.exists(value)


def _origin(source: str) -> str:
    """`/abs/dir/manifest.jsonl:12` -> `manifest.jsonl:12`: no absolute paths in the shards."""
    return os.path.basename(source) if os.path.isabs(source) else source


def _image_member(value: Any) -> tuple[str, bytes]:
    """Return (extension, bytes): a file's own bytes when PIL knows its format, else PNG."""
    data: bytes | None = None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise CorruptSampleError(f"image file not found: {path}")
        data = path.read_bytes()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    img = load_image(data if data is not None else value)  # full decode: refuse corrupt images
    if data is not None:
        with Image.open(io.BytesIO(data)) as probe:
            ext = _IMAGE_FORMATS.get(probe.format or "")
        if ext is not None:
            return ext, data
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "png", buf.getvalue()


def _file_member(modality: str, value: Any, used: set[str]) -> tuple[str, bytes]:
    """Audio / video: the file's bytes under its own extension."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data, ext = bytes(value), ""
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise CorruptSampleError(f"{modality} file not found: {path}")
        data, ext = path.read_bytes(), path.suffix.lower().lstrip(".")
    else:
        raise DataError(f"cannot pack a {modality} value of type {type(value).__name__}; pack files instead")
    if not data:
        raise CorruptSampleError(f"empty {modality} file")
    if not ext.isalnum() or ext in _RESERVED_EXTS or ext in used:
        ext = f"{modality}.bin"
    return ext, data


def _sample_members(sample: Sample, key: str) -> list[tuple[str, bytes]]:
    """The tar members of one sample; raises CorruptSampleError on a bad value."""
    members: list[tuple[str, bytes]] = []
    kinds: dict[str, str | list[str]] = {}  # modality -> member extension(s)
    record: dict[str, Any] = {"key": key}
    for modality in sorted(sample.inputs):
        value = sample.inputs[modality]
        if value is None:
            continue
        if modality == "text":
            text = check_text(value)
            record["text"] = text
            first = text if isinstance(text, str) else text[0]
            ext, data = "txt", first.encode("utf-8")
        elif modality == "image" and isinstance(value, (list, tuple)):
            # several images (interleaved captioner rows): `<key>.0.png`, `<key>.1.png`, ...
            if not value:
                raise CorruptSampleError("empty list of images")
            exts = []
            for i, item in enumerate(value):
                ext, data = _image_member(item)
                exts.append(f"{i}.{ext}")
                members.append((exts[-1], data))
            kinds[modality] = exts
            continue
        elif modality == "image":
            ext, data = _image_member(value)
        elif modality in ("audio", "video"):
            ext, data = _file_member(modality, value, set(kinds.values()))
        elif modality in _BYTES_MODALITIES and isinstance(value, (bytes, bytearray)) and value:
            ext, data = _BYTES_MODALITIES[modality], bytes(value)
        else:
            raise DataError(f"{sample.source}: cannot pack unknown modality '{modality}'")
        kinds[modality] = ext
        members.append((ext, data))
    if not members:
        raise CorruptSampleError("sample has no inputs")
    meta = {k: v for k, v in sample.meta.items() if k != "source" and not _is_local_abs_path(v)}
    meta.setdefault("origin", _origin(sample.source))
    record.update(members=kinds, labels=dict(sample.labels), meta=meta)
    blob = json.dumps(record, ensure_ascii=False, default=_json_default).encode("utf-8")
    members.append(("json", blob))
    return [(f"{key}.{ext}", data) for ext, data in members]


class _ShardFile:
    """One shard being written under a temporary name (`omnifuse.utils.io.AtomicFile`);
    `close()` fsyncs and renames it."""

    def __init__(self, path: Path):
        self.path = path
        self.atomic = AtomicFile(path, "wb")
        self.tar = tarfile.open(fileobj=self.atomic.file, mode="w", format=tarfile.PAX_FORMAT)
        self.count = 0

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o444  # reproducible shards
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> ShardInfo:
        self.tar.close()
        self.atomic.commit()
        sha, size = _sha256(self.path)
        return ShardInfo(file=self.path.name, sha256=sha, size=size, count=self.count)

    def abort(self) -> None:
        self.tar.close()
        self.atomic.abort()


def pack_shards(
    samples: Sequence[Sample],
    out_dir: str | os.PathLike,
    shard_size: int = 1000,
    progress: bool = True,
    policy: CorruptSamplePolicy | None = None,
) -> ShardIndex:
    """Write `samples` as WebDataset shards `shard-000000.tar`, ... plus `index.json`.

    Each shard is written under a temporary name and renamed once complete; `index.json` is
    written last, so a directory with an index only ever lists complete shards. Images are
    fully decoded first: corrupt samples (unreadable image, empty text, missing file) are
    skipped and counted by `policy` (strict mode raises on the first). Re-packing into a
    directory removes the shards of its previous index that the new one does not list.
    """
    if shard_size <= 0:
        raise ValueError(f"shard_size must be a positive number of samples, got {shard_size}")
    if not samples:
        raise DataError("no samples to pack")
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy = policy or CorruptSamplePolicy(name=f"pack {out}")
    previous: list[str] = []
    if (out / INDEX_NAME).exists():
        try:
            previous = [s.file for s in ShardIndex.load(out).shards]
        except DataError:
            pass
        (out / INDEX_NAME).unlink()  # never leave an index pointing at half-rewritten shards

    shards: list[ShardInfo] = []
    modalities: set[str] = set()
    current: _ShardFile | None = None
    written = 0
    try:
        for sample in tqdm(samples, desc=f"packing {out.name}", unit="sample", disable=not progress):
            key = f"{written:09d}"
            try:
                members = _sample_members(sample, key)
            except CorruptSampleError as err:
                policy.report(sample.source, str(err))
                continue
            if current is None:
                current = _ShardFile(out / SHARD_PATTERN.format(len(shards)))
            for name, data in members:
                current.add(name, data)
            current.count += 1
            written += 1
            modalities.update(m for m, v in sample.inputs.items() if v is not None)
            if current.count >= shard_size:
                shards.append(current.close())
                current = None
        if current is not None:
            shards.append(current.close())
            current = None
    finally:
        if current is not None:
            current.abort()

    policy.log()
    if written == 0:
        raise DataError(f"nothing to pack into {out}: {policy.summary()}")
    index = ShardIndex(shards=shards, total=written, modalities=sorted(modalities))
    index.save(out)
    for name in set(previous) - {s.file for s in shards}:
        (out / name).unlink(missing_ok=True)
    logger.info("packed %d samples into %d shard(s) in %s", written, len(shards), out)
    return index


# --------------------------------------------------------------------------- reading


def _sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _check_shard(path: Path, info: ShardInfo) -> None:
    """Raise DataError if the shard is missing, ShardChecksumError if its bytes do not match."""
    if not path.is_file():
        raise DataError(f"{path}: shard listed in {INDEX_NAME} is missing")
    sha, size = _sha256(path)
    if sha != info.sha256 or size != info.size:
        raise ShardChecksumError(
            f"{path}: shard is corrupted: sha256 expected {info.sha256}, got {sha} "
            f"(size expected {info.size} bytes, got {size}). Re-pack it with "
            "`omnifuse data pack MANIFEST --out DIR` or restore the file from a good copy."
        )


_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]+)$")  # WebDataset's key/extension split


def _infer_members(exts: Sequence[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for ext in exts:
        low = ext.lower()
        if low == "txt":
            kinds["text"] = ext
        elif low in _IMAGE_EXTS:
            kinds.setdefault("image", ext)
        elif low in _AUDIO_EXTS:
            kinds.setdefault("audio", ext)
        elif low in _VIDEO_EXTS:
            kinds.setdefault("video", ext)
    return kinds


def _build_sample(
    shard: Path, key: str, members: dict[str, bytes], policy: CorruptSamplePolicy
) -> Sample | None:
    source = f"{shard}:{key}"
    record: dict[str, Any] = {}
    if "json" in members:
        try:
            record = json.loads(members["json"].decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as err:
            policy.report(source, f"unreadable {key}.json: {err}")
            return None
    kinds = record.get("members") or _infer_members(list(members))
    inputs: dict[str, Any] = {}
    for modality, ext in sorted(kinds.items()):
        if isinstance(ext, list):  # several images, in order
            missing = [e for e in ext if e not in members]
            if missing:
                policy.report(source, f"member {key}.{missing[0]} ({modality}) is missing")
                return None
            inputs[modality] = [members[e] for e in ext]
            continue
        if modality == "text" and "text" in record:
            value: Any = record["text"]
        elif ext not in members:
            policy.report(source, f"member {key}.{ext} ({modality}) is missing")
            return None
        elif modality == "text":
            try:
                value = members[ext].decode("utf-8")
            except UnicodeDecodeError as err:
                policy.report(source, f"text is not UTF-8: {err}")
                return None
        else:
            value = members[ext]
        if modality == "text":
            try:
                value = check_text(value)
            except CorruptSampleError as err:
                policy.report(source, str(err))
                return None
        inputs[modality] = value
    if not inputs:
        policy.report(source, f"no known modality among members {sorted(members)}")
        return None
    meta = dict(record.get("meta") or {})
    meta["source"] = source
    return Sample(inputs=inputs, labels=dict(record.get("labels") or {}), meta=meta)


def _read_shard(path: Path, policy: CorruptSamplePolicy) -> Iterator[Sample]:
    try:
        with tarfile.open(path, mode="r") as tar:
            key: str | None = None
            group: dict[str, bytes] = {}
            for member in tar:
                if not member.isfile():
                    continue
                match = _MEMBER.match(member.name)
                if match is None:
                    continue
                mkey, ext = match.groups()
                if mkey != key:
                    if key is not None and (sample := _build_sample(path, key, group, policy)):
                        yield sample
                    key, group = mkey, {}
                fh = tar.extractfile(member)
                group[ext] = fh.read() if fh is not None else b""
            if key is not None and (sample := _build_sample(path, key, group, policy)):
                yield sample
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read shard ({err}); is it a tar file written by pack?") from err


def iter_shards(
    dir_or_index: str | os.PathLike,
    verify: bool = True,
    policy: CorruptSamplePolicy | None = None,
    strict: bool = False,
) -> Iterator[Sample]:
    """Yield the samples of a shard directory, shard by shard.

    Each shard is checked against `index.json` (size and sha256) before anything from it is
    yielded: a missing shard raises `DataError`, a mismatch `ShardChecksumError`.
    `meta["source"]` of a sample is `SHARD_PATH:KEY`; images (and audio / video) come as
    bytes, texts as a string or a list of paraphrases.
    """
    index = ShardIndex.load(dir_or_index)
    own_policy = policy is None
    policy = policy or CorruptSamplePolicy(strict=strict, name=f"shards {index.directory}")
    for info, path in zip(index.shards, index.paths):
        if verify:
            _check_shard(path, info)
        elif not path.is_file():
            raise DataError(f"{path}: shard listed in {INDEX_NAME} is missing")
        yield from _read_shard(path, policy)
    if own_policy:
        policy.log()


def read_shards(
    dir_or_index: str | os.PathLike,
    verify: bool = True,
    policy: CorruptSamplePolicy | None = None,
    strict: bool = False,
) -> list[Sample]:
    """Read every sample of a shard directory; with `verify`, all shards are checked first."""
    index = ShardIndex.load(dir_or_index)
    if verify:
        for info, path in zip(index.shards, index.paths):
            _check_shard(path, info)
    policy = policy or CorruptSamplePolicy(strict=strict, name=f"shards {index.directory}")
    samples = list(iter_shards(dir_or_index, verify=False, policy=policy))
    policy.log()
    if not samples and index.total:
        raise DataError(f"{index.directory}: no readable sample in the shards; {policy.summary()}")
    return samples


def verify_shards(dir_or_index: str | os.PathLike) -> list[str]:
    """Check a shard directory against its index; return the problems found (empty: all good)."""
    try:
        index = ShardIndex.load(dir_or_index)
    except DataError as err:
        return [str(err)]
    problems = []
    for info, path in zip(index.shards, index.paths):
        try:
            _check_shard(path, info)
        except DataError as err:
            problems.append(str(err))
    counted = sum(s.count for s in index.shards)
    if counted != index.total:
        problems.append(f"{index.directory}: index total {index.total} != sum of shard counts {counted}")
    listed = {s.file for s in index.shards}
    directory = index.directory or Path(".")
    for path in sorted(directory.glob("shard-*.tar")):
        if path.name not in listed:
            problems.append(f"{path}: shard not listed in {INDEX_NAME} (left over from another pack?)")
    for path in sorted(p for p in directory.glob(".*") if is_temp(p)):
        problems.append(f"{path}: incomplete file (an interrupted pack?)")
    return problems
