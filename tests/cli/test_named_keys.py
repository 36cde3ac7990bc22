"""A key or column the user names that the data does not have is an error that names it, the
keys that do exist and how to supply it; never a metric that silently goes missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnifuse.cli.main import main
from omnifuse.data.labels import require_field, require_label_key
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import DataError, Sample


@pytest.fixture(scope="module")
def digit_manifest(shapes_dir, tmp_path_factory) -> Path:
    """The shapes test split with a top-level `digit` column (not inside `labels`)."""
    out = tmp_path_factory.mktemp("digits") / "digits.jsonl"
    rows = [json.loads(line) for line in (shapes_dir / "test.jsonl").read_text().splitlines()]
    with open(out, "w") as f:
        for row in rows:
            row["image"] = str(shapes_dir / row["image"])
            row["digit"] = row["labels"]["shape"]
            f.write(json.dumps(row) + "\n")
    return out


def _save_tiny(tiny_model, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    tiny_model().save_pretrained(out)
    return out


def test_eval_label_key_only_in_a_top_level_column_is_an_error_naming_it(
    tiny_model, digit_manifest, tmp_path, capsys
):
    model = _save_tiny(tiny_model, tmp_path)
    code = main(["eval", str(model), str(digit_manifest), "--label-key", "digit", "--max-items", "8"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no sample has a 'digit' label" in err
    assert "label keys found: color, color_shape, count, shape" in err
    assert "top-level column" in err and "--label-column digit" in err and '"labels"' in err

    code = main(["eval", str(model), str(digit_manifest), "--label-key", "nope", "--max-items", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "no sample has a 'nope' label" in err and "--label-column COLUMN" in err


def test_eval_label_column_reads_a_top_level_column_as_the_label(
    tiny_model, digit_manifest, tmp_path, capsys
):
    model = _save_tiny(tiny_model, tmp_path)
    out = tmp_path / "e.json"
    args = ["eval", str(model), str(digit_manifest), "--label-key", "digit", "--label-column", "digit"]
    assert main([*args, "--max-items", "8", "--out", str(out)]) == 0, capsys.readouterr().err
    metrics = json.loads(out.read_text())
    assert 0 <= metrics["zero_shot/top1"] <= 1


def test_compress_quality_with_a_missing_label_key_is_an_error(tiny_model, digit_manifest):
    from omnifuse.deploy.compress.quality import measure_quality

    samples = read_samples(str(digit_manifest), columns={"text": "captions", "image": "image"})
    with pytest.raises(DataError, match="no sample has a 'digit' label.*move it into a labels object"):
        measure_quality(tiny_model(), samples, "digit", batch_size=8)
    quality = measure_quality(tiny_model(), samples, None, batch_size=8)  # default: color_shape, present
    assert "zero_shot/top1" in quality.metrics


def test_predict_columns_for_a_modality_the_model_does_not_take_is_an_error(
    tiny_model, digit_manifest, tmp_path, capsys
):
    model = _save_tiny(tiny_model, tmp_path)
    code = main(
        [
            "predict",
            str(model),
            str(digit_manifest),
            "--out",
            str(tmp_path / "p.jsonl"),
            "--columns",
            "image=image",
            "audio=digit",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "audio=digit" in err and "the model takes" in err


def test_require_label_key_and_require_field_messages():
    samples = [Sample({"text": "a"}, {"shape": "star"}, {"digit": 3, "source": "m.jsonl:1"})]
    assert require_label_key(samples, "shape") == samples
    with pytest.raises(
        DataError, match=r"no sample has a 'digit' label \(label keys found: shape\); 'digit' is a top-level"
    ):
        require_label_key(samples, "digit", "m.jsonl")
    with pytest.raises(DataError, match="other columns: digit.*label_columns=\\[...\\] COLUMN"):
        require_label_key(samples, "colour", column_option="label_columns=[...]")
    require_field(samples, "digit")
    with pytest.raises(
        DataError,
        match="no sample has a 'qtype' --group-key field; label keys and columns found: digit, shape",
    ):
        require_field(samples, "qtype", what="--group-key field")
