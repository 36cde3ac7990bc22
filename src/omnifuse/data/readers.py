"""Readers: manifests (JSONL / CSV), image folders and shard directories -> lists of `Sample`.

Corrupt or missing samples (missing file, empty text, malformed row) go to a
`CorruptSamplePolicy`: skipped and counted by default, with the count and the first offenders
in the log; `strict=True` raises at the first one, naming file and line. A reader whose every
row was skipped raises `DataError` naming the first offenders.

Readers check that files exist, they do not decode them (that is the processors' job, and
`pack_shards` decodes every image before writing it).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from omnifuse.data.decode import FILE_MODALITIES, check_text
from omnifuse.data.sample import MODALITIES, CorruptSampleError, CorruptSamplePolicy, DataError, Sample
from omnifuse.data.shards import INDEX_NAME, ShardIndex, read_shards, verify_shards

logger = logging.getLogger("omnifuse.data")

JSON_SUFFIXES = (".jsonl", ".json")
CSV_SUFFIXES = (".csv",)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


Row = tuple[int, "dict[str, Any] | None", str]
"""(line number, row or None, reason the row is bad)."""


def _rows_jsonl(path: Path) -> list[Row]:
    """One entry per non-blank line; a malformed line comes with its reason.

    A `.json` file holding one JSON array of objects is accepted too; its "line" numbers are
    then the 1-based item numbers.
    """
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: malformed JSON array: {err}") from err
        entries: list[tuple[int, Any]] = list(enumerate(items, start=1))
    else:
        entries = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    rows: list[Row] = []
    for line_no, raw in entries:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as err:
                rows.append((line_no, None, f"malformed JSON line ({err.msg} at column {err.colno})"))
                continue
        if not isinstance(raw, dict):
            rows.append((line_no, None, f"row must be a JSON object, got {type(raw).__name__}"))
            continue
        rows.append((line_no, raw, ""))
    return rows


def _rows_csv(path: Path) -> tuple[list[str], list[Row]]:
    """(header, rows); the header is line 1."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows: list[Row] = []
        for row in reader:
            if None in row:  # more fields than the header
                n = len(header) + len(row[None])
                rows.append((reader.line_num, None, f"row has {n} fields, header has {len(header)}"))
            else:
                rows.append((reader.line_num, row, ""))
    return header, rows


def _missing_column(path: Path, column: str, what: str, found: list[str]) -> DataError:
    return DataError(
        f"{path}: column '{column}' ({what}) not found; columns found: {', '.join(found) or '(none)'}"
    )


def read_manifest(
    path: str | os.PathLike,
    columns: dict[str, str] | None = None,
    label_columns: list[str] | None = None,
    policy: CorruptSamplePolicy | None = None,
    check_files: bool = True,
    strict: bool = False,
) -> list[Sample]:
    """Read a JSONL (`.jsonl`, `.json`) or CSV (`.csv`, header row) manifest.

    columns: modality -> column name (default: each known modality name present as a column,
        e.g. `image`, `text`). File modalities (image, audio, video) hold paths; relative
        ones resolve against the manifest's directory and are stored as absolute strings.
        A text value may be a list of paraphrases (JSONL).
    label_columns: columns copied into `Sample.labels`; a `label` column is copied too, and a
        JSONL `labels` object is copied as is.
    policy: handling of bad rows (missing file when `check_files`, empty text, malformed JSON
        line, CSV row with extra fields): skip and count by default; `strict` (or a strict
        policy) raises at the first, naming `file:line`.

    Every other column goes to `Sample.meta`, with `meta["source"] = "file:line"` (1-based;
    a CSV header is line 1). A column named in `columns` / `label_columns` that the manifest
    lacks raises `DataError` naming it and the columns found; so does a manifest whose every
    row was skipped, naming the first offenders.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in JSON_SUFFIXES + CSV_SUFFIXES:
        raise DataError(
            f"{path}: unknown manifest extension '{suffix}'; use .jsonl or .json (JSON lines) or .csv"
        )
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    own_policy = policy is None
    policy = policy or CorruptSamplePolicy(strict=strict, name=str(path))
    skipped_before = policy.skipped

    try:
        if suffix in CSV_SUFFIXES:
            header, rows = _rows_csv(path)
        else:
            rows = _rows_jsonl(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read manifest ({err}); manifests must be UTF-8 text") from err
    if suffix not in CSV_SUFFIXES:
        header = list(dict.fromkeys(k for _, row, _ in rows if row is not None for k in row))
    n_rows = len(rows)

    if columns is None:
        columns = {m: m for m in MODALITIES if m in header}
        if "image" not in columns and "images" in header:  # a list of images per row
            columns["image"] = "images"
        if not columns and header:
            raise DataError(
                f"{path}: no modality column found (looked for {', '.join(MODALITIES)}); "
                f"columns found: {', '.join(header) or '(none)'}; pass columns={{'image': 'COLUMN', ...}}"
            )
    for modality, column in columns.items():
        if modality not in MODALITIES:
            raise DataError(
                f"{path}: unknown modality '{modality}' in columns; known: {', '.join(MODALITIES)}"
            )
        if column not in header and header:
            raise _missing_column(path, column, modality, header)
    label_columns = list(label_columns or [])
    for column in label_columns:
        if column not in header and header:
            raise _missing_column(path, column, "label", header)
    if "label" in header and "label" not in label_columns:
        label_columns.append("label")
    used = set(columns.values()) | set(label_columns) | {"labels"}

    base = path.parent.resolve()
    samples = []
    for line_no, row, reason in rows:
        source = f"{path}:{line_no}"
        if row is None:
            policy.report(source, reason)
            continue
        sample = _row_to_sample(row, source, base, columns, label_columns, used, policy, check_files)
        if sample is not None:
            samples.append(sample)

    if own_policy:
        policy.log()
    elif policy.skipped > skipped_before:
        logger.warning("%s: %s", path, policy.summary())
    logger.info("%s: read %d of %d rows", path, len(samples), n_rows)
    if not samples:
        if n_rows == 0:
            raise DataError(f"{path}: manifest has no rows")
        raise DataError(f"{path}: all {n_rows} rows were skipped; first: {'; '.join(policy.examples)}")
    return samples


def _row_to_sample(
    row: dict[str, Any],
    source: str,
    base: Path,
    columns: dict[str, str],
    label_columns: list[str],
    used: set[str],
    policy: CorruptSamplePolicy,
    check_files: bool,
) -> Sample | None:
    inputs: dict[str, Any] = {}
    for modality in sorted(columns):
        column = columns[modality]
        value = row.get(column)
        if modality == "text":
            try:
                value = check_text(value)
            except CorruptSampleError as err:
                policy.report(source, f"{err} in column '{column}'")
                return None
        elif modality in FILE_MODALITIES:
            many = modality == "image" and isinstance(value, list)  # several images (interleaved text)
            paths = []
            for item in value if many else [value]:
                if not isinstance(item, str) or not item.strip():
                    what = "no" if item in (None, "") else f"a {type(item).__name__}, not a"
                    policy.report(source, f"{what} {modality} path in column '{column}'")
                    return None
                file = Path(item.strip()).expanduser()
                file = file if file.is_absolute() else base / file
                if check_files and not file.is_file():
                    policy.report(source, f"{modality} file not found: {file}")
                    return None
                paths.append(os.path.normpath(file))
            if many and not paths:
                policy.report(source, f"empty list of images in column '{column}'")
                return None
            value = paths if many else paths[0]
        inputs[modality] = value

    labels: dict[str, Any] = {}
    if "labels" in row:
        value = row["labels"]
        if isinstance(value, str):  # a CSV cell holding a JSON object
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                pass
        if not isinstance(value, dict):
            policy.report(source, f"'labels' must be a JSON object, got {type(value).__name__}")
            return None
        labels.update(value)
    for column in label_columns:
        if column in row:
            labels[column] = row[column]
    meta = {k: v for k, v in row.items() if k not in used}
    meta["source"] = source
    return Sample(inputs=inputs, labels=labels, meta=meta)


def image_folder_classes(root: str | os.PathLike) -> list[str]:
    """Sorted class names: the (non-hidden) subfolders of `root`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class subfolders; expected ROOT/<class>/<image file>")
    return classes


def read_image_folder(
    root: str | os.PathLike,
    policy: CorruptSamplePolicy | None = None,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    strict: bool = False,
) -> list[Sample]:
    """Read `root/<class>/<file>`: `inputs={"image": path}`, `labels={"label": class}`.

    Files with other extensions are ignored; an empty (zero-byte) image file is reported
    to the policy.
    """
    root = Path(root)
    classes = image_folder_classes(root)
    own_policy = policy is None
    policy = policy or CorruptSamplePolicy(strict=strict, name=str(root))
    skipped_before = policy.skipped
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    samples = []
    for name in classes:
        for file in sorted((root / name).iterdir()):
            if not file.is_file() or file.suffix.lower() not in exts or file.name.startswith("."):
                continue
            source = str(file.resolve())
            if file.stat().st_size == 0:
                policy.report(source, "empty image file")
                continue
            samples.append(Sample(inputs={"image": source}, labels={"label": name}, meta={"source": source}))
    if own_policy:
        policy.log()
    if not samples:
        if policy.skipped > skipped_before:
            raise DataError(f"{root}: every image was skipped; first: {'; '.join(policy.examples)}")
        raise DataError(f"{root}: no image files ({', '.join(sorted(exts))}) in the class subfolders")
    logger.info("%s: read %d images in %d classes", root, len(samples), len(classes))
    return samples


def _kind(spec: str | os.PathLike) -> str:
    path = Path(spec)
    if path.is_file():
        if path.name == INDEX_NAME:
            return "shards"
        if path.suffix.lower() in JSON_SUFFIXES + CSV_SUFFIXES:
            return "manifest"
        raise DataError(f"{path}: cannot tell the data format; expected .jsonl, .json, .csv or a directory")
    if path.is_dir():
        return "shards" if (path / INDEX_NAME).is_file() else "image_folder"
    raise DataError(f"{path}: data not found")


def read_samples(spec: str | os.PathLike, **kwargs: Any) -> list[Sample]:
    """Read a manifest file, a shard directory (has `index.json`) or an image folder."""
    kind = _kind(spec)
    if kind == "manifest":
        return read_manifest(spec, **kwargs)
    # Column mappings only mean something for manifests; shards and folders name modalities.
    kwargs.pop("columns", None)
    kwargs.pop("label_columns", None)
    if kind == "shards":
        return read_shards(spec, **kwargs)
    return read_image_folder(spec, **kwargs)


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return json.dumps(value, sort_keys=True, default=str)


def inspect_dataset(spec: str | os.PathLike, top: int = 10, **kwargs: Any) -> dict[str, Any]:
    """A summary for `omnifuse data inspect`: count, modalities, label distribution, skipped.

    A shard directory is checked first; if it has problems the summary lists them (under
    `problems`) and reads nothing.
    """
    kind = _kind(spec)
    summary: dict[str, Any] = {"spec": str(spec), "kind": kind}
    if kind == "shards":
        problems = verify_shards(spec)
        summary["problems"] = problems
        if problems:
            try:
                index = ShardIndex.load(spec)
                summary.update(count=index.total, shards=len(index.shards))
            except DataError:
                pass
            return summary
        summary["shards"] = len(ShardIndex.load(spec).shards)
        kwargs.setdefault("verify", False)  # just verified
    policy = kwargs.pop("policy", None) or CorruptSamplePolicy(name=str(spec))
    samples = read_samples(spec, policy=policy, **kwargs)
    modalities: Counter[str] = Counter(m for s in samples for m in s.inputs)
    labels: dict[str, Counter[Any]] = {}
    for s in samples:
        for task, value in s.labels.items():
            labels.setdefault(task, Counter())[_hashable(value)] += 1
    summary.update(
        count=len(samples),
        modalities=dict(sorted(modalities.items())),
        labels={
            task: {"classes": len(c), "top": [[k, n] for k, n in c.most_common(top)]}
            for task, c in sorted(labels.items())
        },
        skipped=policy.skipped,
        skipped_examples=list(policy.examples),
    )
    return summary
