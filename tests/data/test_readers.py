"""Readers and decoding: manifests, image folders, corrupt-sample policy."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnifuse.data.decode import DECODERS, check_text, decode_value, load_image
from omnifuse.data.readers import (
    image_folder_classes,
    inspect_dataset,
    read_image_folder,
    read_manifest,
    read_samples,
)
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, DataError


def png_bytes(color=(255, 0, 0), size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def make_png(path: Path, color=(255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color))
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- decode


def test_load_image_accepts_path_bytes_array_pil(tmp_path):
    p = make_png(tmp_path / "a.png", (10, 20, 30))
    for value in (p, str(p), p.read_bytes()):
        img = load_image(value)
        assert img.mode == "RGB" and img.size == (8, 6)
        assert img.getpixel((0, 0)) == (10, 20, 30)
    assert load_image(np.full((4, 5, 3), 7, dtype=np.uint8)).size == (5, 4)
    gray = load_image(np.ones((4, 5), dtype=np.float32))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (255, 255, 255)
    assert load_image(Image.new("L", (3, 3))).mode == "RGB"


def test_load_image_truncated_and_garbage(tmp_path):
    data = png_bytes(size=(64, 64))
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSampleError, match=r"m\.jsonl:3.*trunc\.png"):
        load_image(truncated, source="m.jsonl:3")
    with pytest.raises(CorruptSampleError, match="cannot decode image"):
        load_image(b"this is not an image")
    with pytest.raises(CorruptSampleError, match="not found"):
        load_image(tmp_path / "missing.png", source="x:1")
    with pytest.raises(CorruptSampleError, match="shape"):
        load_image(np.zeros((3, 4, 5), dtype=np.uint8))
    with pytest.raises(CorruptSampleError, match=r"\[0, 1\]"):
        load_image(np.full((3, 4), 2.0))
    with pytest.raises(CorruptSampleError):
        load_image(12)


def test_check_text_and_registry():
    assert check_text("a cat") == "a cat"
    assert check_text(["a", "  ", "b"]) == ["a", "b"]
    for bad in ("", "   ", None, 3, [" ", ""], ["a", 3]):
        with pytest.raises(CorruptSampleError, match="f:7"):
            check_text(bad, source="f:7")
    assert set(DECODERS) >= {"image", "text"}
    assert decode_value("text", "hi") == "hi"
    with pytest.raises(DataError, match="audio"):
        decode_value("audio", "x.wav")


# --------------------------------------------------------------------------- manifests


def test_jsonl_manifest_relative_paths_labels_meta(tmp_path):
    make_png(tmp_path / "data" / "img" / "0.png")
    make_png(tmp_path / "data" / "img" / "1.png")
    manifest = write_jsonl(
        tmp_path / "data" / "train.jsonl",
        [
            {"image": "img/0.png", "text": "a red square", "label": "red", "id": 0},
            "",
            {"image": "img/1.png", "text": ["one", "", "two"], "labels": {"shape": "square"}, "id": 1},
        ],
    )
    samples = read_manifest(manifest)
    assert len(samples) == 2
    s0, s1 = samples
    assert Path(s0.inputs["image"]).is_absolute()
    assert Path(s0.inputs["image"]) == (tmp_path / "data" / "img" / "0.png").resolve()
    assert s0.inputs["text"] == "a red square"
    assert s0.labels == {"label": "red"}
    assert s0.meta == {"id": 0, "source": f"{manifest}:1"}
    assert s1.inputs["text"] == ["one", "two"]
    assert s1.labels == {"shape": "square"}
    assert s1.source == f"{manifest}:3"  # blank line 2 still counts


def test_csv_manifest_columns_and_label_columns(tmp_path):
    make_png(tmp_path / "pics" / "a.png")
    manifest = write_csv(
        tmp_path / "m.csv",
        ["filepath", "caption", "color", "note"],
        [["pics/a.png", "a red thing", "red", "hello"]],
    )
    (sample,) = read_manifest(
        manifest, columns={"image": "filepath", "text": "caption"}, label_columns=["color"]
    )
    assert Path(sample.inputs["image"]) == (tmp_path / "pics" / "a.png").resolve()
    assert sample.inputs["text"] == "a red thing"
    assert sample.labels == {"color": "red"}
    assert sample.meta == {"note": "hello", "source": f"{manifest}:2"}  # header is line 1


def test_missing_files_skipped_and_counted(tmp_path, caplog):
    make_png(tmp_path / "ok.png")
    rows = [{"image": "ok.png", "text": "fine"}]
    rows += [{"image": f"gone{i}.png", "text": "lost"} for i in range(7)]
    manifest = write_jsonl(tmp_path / "m.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="omnifuse.data"):
        samples = read_manifest(manifest)
    assert len(samples) == 1
    log = caplog.text
    assert "skipped 7" in log
    assert f"{manifest}:2" in log and "gone0.png" in log
    assert "gone6.png" not in log  # only the first few offenders

    policy = CorruptSamplePolicy()
    read_manifest(manifest, policy=policy)
    assert policy.skipped == 7 and len(policy.examples) == 5


def test_strict_mode_names_file_and_line(tmp_path):
    make_png(tmp_path / "ok.png")
    manifest = write_jsonl(
        tmp_path / "m.jsonl", [{"image": "ok.png", "text": "x"}, {"image": "nope.png", "text": "y"}]
    )
    with pytest.raises(CorruptSampleError, match=rf"{manifest}:2.*nope\.png"):
        read_manifest(manifest, strict=True)
    with pytest.raises(CorruptSampleError, match=rf"{manifest}:2"):
        read_manifest(manifest, policy=CorruptSamplePolicy(strict=True))


def test_empty_text_and_malformed_json_skipped(tmp_path):
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [{"text": "good"}, {"text": "   "}, "{not json", {"text": []}, {"text": ["", "ok"]}],
    )
    policy = CorruptSamplePolicy()
    samples = read_manifest(manifest, policy=policy)
    assert [s.inputs["text"] for s in samples] == ["good", ["ok"]]
    assert policy.skipped == 3
    assert any(f"{manifest}:3" in e and "malformed JSON" in e for e in policy.examples)
    with pytest.raises(CorruptSampleError, match=rf"{manifest}:2.*empty text"):
        read_manifest(manifest, strict=True)


def test_all_missing_manifest_names_first_files(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", ["image", "text"], [[f"x{i}.png", "t"] for i in range(3)])
    with pytest.raises(DataError, match=r"all 3 rows were skipped.*x0\.png.*x1\.png"):
        read_manifest(manifest)


def test_missing_column_and_bad_extension(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", ["path", "caption"], [["a.png", "t"]])
    with pytest.raises(DataError, match=r"m\.csv: column 'filename'.*found: path, caption"):
        read_manifest(manifest, columns={"image": "filename"})
    with pytest.raises(DataError, match="no modality column"):
        read_manifest(manifest)
    jsonl = write_jsonl(tmp_path / "m.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match=r"column 'caption'.*found: text"):
        read_manifest(jsonl, columns={"text": "caption"})
    with pytest.raises(DataError, match=r"column 'kind' \(label\)"):
        read_manifest(jsonl, label_columns=["kind"])
    other = tmp_path / "m.parquet"
    other.write_text("")
    with pytest.raises(DataError, match=r"\.parquet"):
        read_manifest(other)


def test_check_files_off_keeps_missing(tmp_path):
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"image": "later.png"}])
    (sample,) = read_manifest(manifest, check_files=False)
    assert sample.inputs["image"] == str(tmp_path.resolve() / "later.png")


# --------------------------------------------------------------------------- image folders


def test_image_folder(tmp_path):
    make_png(tmp_path / "dog" / "b.png")
    make_png(tmp_path / "cat" / "a.jpg")  # PNG bytes, .jpg name: the reader only lists files
    make_png(tmp_path / "cat" / "c.png")
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    (tmp_path / "dog" / "empty.png").write_bytes(b"")
    assert image_folder_classes(tmp_path) == ["cat", "dog"]
    policy = CorruptSamplePolicy()
    samples = read_image_folder(tmp_path, policy=policy)
    assert [(Path(s.inputs["image"]).name, s.labels["label"]) for s in samples] == [
        ("a.jpg", "cat"),
        ("c.png", "cat"),
        ("b.png", "dog"),
    ]
    assert samples[0].source == samples[0].inputs["image"]
    assert policy.skipped == 1
    assert read_samples(tmp_path)[0].labels == {"label": "cat"}


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_image_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no class subfolders"):
        read_image_folder(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="no image files"):
        read_image_folder(tmp_path)


def test_read_samples_dispatch_and_inspect(tmp_path):
    make_png(tmp_path / "a.png")
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [{"image": "a.png", "text": "x", "label": "red"}, {"image": "b.png", "text": "y", "label": "blue"}],
    )
    assert len(read_samples(manifest)) == 1
    with pytest.raises(DataError, match="not found"):
        read_samples(tmp_path / "missing.jsonl")
    summary = inspect_dataset(manifest)
    assert summary["kind"] == "manifest"
    assert summary["count"] == 1
    assert summary["modalities"] == {"image": 1, "text": 1}
    assert summary["labels"]["label"]["top"] == [["red", 1]]
    assert summary["skipped"] == 1 and "b.png" in summary["skipped_examples"][0]
