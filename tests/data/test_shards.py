"""WebDataset shard writer and reader: round trip, checksums, corrupt and missing shards."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnifuse.data.readers import inspect_dataset, read_manifest, read_samples
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, DataError, Sample
from omnifuse.data.shards import (
    ShardChecksumError,
    ShardIndex,
    iter_shards,
    pack_shards,
    read_shards,
    verify_shards,
)


def make_png(path: Path, color) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), color).save(path, format="PNG")
    return path


@pytest.fixture
def manifest(tmp_path) -> Path:
    rows = []
    for i in range(5):
        make_png(tmp_path / "src" / "img" / f"{i}.png", (i * 40, 0, 0))
        text = f"picture {i}" if i % 2 else [f"picture {i}", f"image number {i}"]
        rows.append({"image": f"img/{i}.png", "text": text, "label": f"c{i % 2}", "id": i})
    path = tmp_path / "src" / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pack_read_round_trip(tmp_path, manifest):
    samples = read_manifest(manifest)
    out = tmp_path / "shards"
    index = pack_shards(samples, out, shard_size=2, progress=False)
    assert [s.file for s in index.shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert [s.count for s in index.shards] == [2, 2, 1]
    assert index.total == 5 and index.modalities == ["image", "text"]
    raw = json.loads((out / "index.json").read_text())
    assert raw["format"] == "omnifuse-shards" and raw["version"] == 1 and raw["total"] == 5
    assert set(raw["shards"][0]) == {"file", "sha256", "size", "count"}
    assert not list(out.glob(".*"))  # no temporary files left

    back = read_shards(out)
    assert len(back) == 5
    for orig, got in zip(samples, back):
        assert got.inputs["text"] == orig.inputs["text"]
        assert got.inputs["image"] == Path(orig.inputs["image"]).read_bytes()
        assert got.labels == orig.labels
        assert got.meta["id"] == orig.meta["id"]
        assert got.meta["origin"] == f"m.jsonl:{orig.meta['id'] + 1}"
        assert "shard-0000" in got.source and got.source.endswith(got.meta["source"].split(":")[-1])
    assert back[0].source.endswith("shard-000000.tar:000000000")
    assert [s.inputs["text"] for s in iter_shards(out)] == [s.inputs["text"] for s in back]
    assert read_samples(out)[0].labels == {"label": "c0"}
    assert verify_shards(out) == []
    summary = inspect_dataset(out)
    assert summary["kind"] == "shards" and summary["count"] == 5 and summary["problems"] == []
    assert summary["labels"]["label"]["classes"] == 2


def test_shards_readable_by_webdataset(tmp_path, manifest):
    wds = pytest.importorskip("webdataset")
    index = pack_shards(read_manifest(manifest), tmp_path / "out", shard_size=3, progress=False)
    urls = [str(p) for p in index.paths]
    items = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(items) == 5
    first = items[0]
    assert first["__key__"] == "000000000"
    assert first["txt"].decode() == "picture 0"
    assert first["png"] == (manifest.parent / "img" / "0.png").read_bytes()
    meta = json.loads(first["json"])
    assert meta["text"] == ["picture 0", "image number 0"] and meta["labels"] == {"label": "c0"}


def test_arrays_and_pil_encoded_as_png(tmp_path):
    arr = np.zeros((4, 5, 3), dtype=np.uint8)
    arr[..., 1] = 200
    samples = [
        Sample(inputs={"image": arr, "text": "green"}, meta={"source": "mem:1"}),
        Sample(inputs={"image": Image.new("RGB", (3, 3), "blue")}, labels={"k": np.int64(3)}),
    ]
    pack_shards(samples, tmp_path / "out", progress=False)
    back = read_shards(tmp_path / "out")
    img = Image.open(io.BytesIO(back[0].inputs["image"]))
    assert img.format == "PNG" and img.getpixel((0, 0)) == (0, 200, 0)
    assert back[1].labels == {"k": 3}


def test_corrupt_samples_skipped_when_packing(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    good = make_png(tmp_path / "good.png", (1, 2, 3))
    samples = [
        Sample(inputs={"image": str(bad), "text": "x"}, meta={"source": "m:1"}),
        Sample(inputs={"image": str(good), "text": " "}, meta={"source": "m:2"}),
        Sample(inputs={"image": str(good), "text": "ok"}, meta={"source": "m:3"}),
    ]
    policy = CorruptSamplePolicy()
    index = pack_shards(samples, tmp_path / "out", progress=False, policy=policy)
    assert index.total == 1 and policy.skipped == 2
    assert read_shards(tmp_path / "out")[0].source.endswith(":000000000")
    with pytest.raises(CorruptSampleError, match="m:1"):
        pack_shards(samples, tmp_path / "out2", progress=False, policy=CorruptSamplePolicy(strict=True))
    with pytest.raises(DataError, match="nothing to pack"):
        pack_shards(samples[:2], tmp_path / "out3", progress=False)


def test_corrupted_shard_is_refused(tmp_path, manifest):
    out = tmp_path / "out"
    pack_shards(read_manifest(manifest), out, shard_size=2, progress=False)
    shard = out / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[520] ^= 0xFF  # one byte inside the first member's data (after its 512-byte header)
    shard.write_bytes(bytes(data))
    expected = ShardIndex.load(out).shards[1].sha256
    with pytest.raises(ShardChecksumError, match=rf"shard-000001\.tar.*corrupted.*{expected}") as err:
        read_shards(out)
    assert "pack" in str(err.value)
    # iter_shards yields shard 0 but nothing from the corrupted shard 1
    got = []
    with pytest.raises(ShardChecksumError):
        for s in iter_shards(out):
            got.append(s)
    assert len(got) == 2
    problems = verify_shards(out)
    assert len(problems) == 1 and "shard-000001.tar" in problems[0]
    assert inspect_dataset(out)["problems"] == problems
    assert len(read_shards(out, verify=False)) >= 4  # unverified reading is still possible


def test_missing_shard_and_index(tmp_path, manifest):
    out = tmp_path / "out"
    pack_shards(read_manifest(manifest), out, shard_size=2, progress=False)
    (out / "shard-000002.tar").unlink()
    with pytest.raises(DataError, match=r"shard-000002\.tar.*missing"):
        read_shards(out)
    assert any("shard-000002.tar" in p for p in verify_shards(out))
    with pytest.raises(DataError, match="index not found"):
        read_shards(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="not an omnifuse shard index"):
        read_shards(tmp_path / "x")


def test_shard_size_validation_and_repack(tmp_path, manifest):
    samples = read_manifest(manifest)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="shard_size"):
            pack_shards(samples, tmp_path / "out", shard_size=bad, progress=False)
    with pytest.raises(DataError, match="no samples"):
        pack_shards([], tmp_path / "out", progress=False)
    out = tmp_path / "out"
    pack_shards(samples, out, shard_size=1, progress=False)
    first = (out / "shard-000000.tar").read_bytes()
    pack_shards(samples, out, shard_size=10, progress=False)  # fewer shards: stale ones go
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar"]
    assert verify_shards(out) == []
    pack_shards(samples, out, shard_size=1, progress=False)
    assert (out / "shard-000000.tar").read_bytes() == first  # reproducible bytes


def test_rows_with_several_images_round_trip_in_order(tmp_path):
    """Interleaved captioner rows (`image`: a list, one per `<image>`) pack as `<key>.0.png`,
    `<key>.1.png`, ... and read back as a list in the same order, ready for the processor."""
    from omnifuse.data.processors import ImageProcessor

    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    paths = []
    for i, rgb in enumerate(colors):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), rgb).save(paths[-1])
    text = "<image>Output: dax<|endofchunk|><image>Output: wug<|endofchunk|><image>Output:"
    samples = [
        Sample(inputs={"image": [str(p) for p in paths], "text": text}, meta={"id": 0}),
        Sample(inputs={"image": str(paths[0]), "text": "<image>Caption: red"}, meta={"id": 1}),
    ]
    pack_shards(samples, tmp_path / "shards", progress=False)
    back = read_shards(tmp_path / "shards")
    assert [len(b) for b in back[0].inputs["image"]] and len(back[0].inputs["image"]) == 3
    assert back[0].inputs["image"] == [p.read_bytes() for p in paths] and back[0].inputs["text"] == text
    assert back[1].inputs["image"] == paths[0].read_bytes()
    batch = ImageProcessor(size=8, mean=(0, 0, 0), std=(1, 1, 1))([s.inputs["image"] for s in back])
    assert batch["image_count"].tolist() == [3, 1]
    firsts = batch["image"][0, :, :, 0, 0]  # (3 images, 3 channels) of the first pixel
    assert torch.allclose(firsts, torch.eye(3), atol=1e-2)  # red, green, blue in order
    with pytest.raises(CorruptSampleError, match="empty list"):
        pack_shards(
            [Sample(inputs={"image": [], "text": "x"})],
            tmp_path / "bad",
            policy=CorruptSamplePolicy(strict=True),
            progress=False,
        )
