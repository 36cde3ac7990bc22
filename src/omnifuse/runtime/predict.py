"""Batch prediction: a manifest in, one row per sample out (CSV or JSONL), nothing dropped silently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from omnifuse import runtime
from omnifuse.data.decode import decode_value
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, Sample
from omnifuse.utils.progress import progress_bar


def _decode_row(sample: Sample, modalities: list[str], policy: CorruptSamplePolicy) -> dict | None:
    try:
        return {m: decode_value(m, sample.inputs[m], sample.source) for m in modalities if m in sample.inputs}
    except CorruptSampleError as err:
        policy.report(sample.source, str(err))
        return None


def predict_manifest(
    model_dir: str,
    inputs: str,
    out: str,
    columns: dict[str, str] | None = None,
    labels: list[str] | None = None,
    top_k: int = 1,
    batch_size: int = 64,
    backend: str = "auto",
) -> int:
    """Write `id, prediction, score, top_k` per readable row; unreadable rows get an `error`.

    A model that labels tokens (its kind can `label_tokens`) writes `id, words, labels` per row
    instead (JSONL only).
    """
    out_path = Path(out)
    if out_path.suffix.lower() not in (".csv", ".jsonl"):
        raise ValueError(f"--out must end in .csv or .jsonl; got {out}")
    spec = _spec_of_artifact(model_dir)
    if spec is not None and spec.can("label_tokens"):
        return predict_token_labels(model_dir, inputs, out_path, columns, batch_size)
    predictor = runtime.load(model_dir, backend=backend, batch_size=batch_size)
    wanted = predictor.modalities if not labels else [m for m in predictor.modalities if m != "text"]
    unused = sorted(set(columns or {}) - set(predictor.modalities))
    if unused:  # a named column that would be read and then ignored is an error
        raise ValueError(
            f"--columns names {', '.join(f'{m}={columns[m]}' for m in unused)}, but the model takes "
            f"{predictor.modalities}; map only those"
        )
    columns = columns or {m: m for m in wanted}
    samples = read_samples(inputs, columns=columns)
    modalities = sorted(set(columns) & set(predictor.modalities))
    if not modalities:
        raise ValueError(f"--columns maps {sorted(columns)}; the model takes {predictor.modalities}")
    policy = CorruptSamplePolicy(name=str(inputs))
    rows = []
    for start in progress_bar(range(0, len(samples), batch_size), desc="predict", unit="batch"):
        chunk = samples[start : start + batch_size]
        decoded = [_decode_row(s, modalities, policy) for s in chunk]
        ok = [i for i, d in enumerate(decoded) if d]
        results = []
        if ok:
            by_modality = {m: [decoded[i][m] for i in ok] for m in modalities}
            results = predictor.classify(by_modality, labels=labels, top_k=top_k)
        result_of = dict(zip(ok, results))
        for i, s in enumerate(chunk):
            row = {"id": s.meta.get("id", s.source)}
            if i in result_of:
                best = result_of[i][0]
                row.update(prediction=best.label, score=round(best.score, 6))
                row["top_k"] = [[r.label, round(r.score, 6)] for r in result_of[i]]
            else:
                row.update(prediction=None, score=None, top_k=[], error="unreadable input (see log)")
            rows.append(row)
    policy.log()
    write_rows(rows, out_path)
    return len(rows)


def _spec_of_artifact(model_dir: str):
    """The registered kind of an artifact directory, or None (not registered, or no config.json)."""
    from omnifuse.models.artifact import read_config, resolve_artifact_dir
    from omnifuse.models.registry import MODEL_KINDS

    try:
        kind = read_config(resolve_artifact_dir(model_dir)).get("model_type")
    except (OSError, ValueError):
        return None  # the backend's own loader reports what is wrong with the directory
    return MODEL_KINDS.get(kind)


def predict_token_labels(
    model_dir: str, inputs: str, out: Path, columns: dict[str, str] | None = None, batch_size: int = 64
) -> int:
    """One JSONL row per sample: `id`, `words` and one label per word (`labels`); unreadable rows get an `error`."""
    from omnifuse.models.factory import load_model

    if out.suffix.lower() != ".jsonl":
        raise ValueError(f"per-token labels are written as JSONL; --out must end in .jsonl, got {out}")
    model = load_model(model_dir)
    columns = columns or {m: m for m in model.modalities}
    samples = read_samples(inputs, columns=columns)
    lacking = [i for i, s in enumerate(samples) if "text" not in s.inputs]
    if lacking:
        raise ValueError(
            f"{inputs}: row {lacking[0]} has no text to label (map the text column with --columns text=COLUMN)"
        )
    rows = []
    for start in progress_bar(range(0, len(samples), batch_size), desc="predict", unit="batch"):
        chunk = samples[start : start + batch_size]
        for s, labelled in zip(chunk, model.label_samples(chunk, batch_size)):
            row = {"id": s.meta.get("id", s.source), "words": [w for w, _ in labelled]}
            row["labels"] = [label for _, label in labelled]
            if not labelled:
                row["error"] = "unreadable input (see log)"
            rows.append(row)
    write_rows(rows, out)
    return len(rows)


def write_rows(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    fields = ["id", "prediction", "score", "top_k", "error"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "top_k": json.dumps(r.get("top_k", []))})
