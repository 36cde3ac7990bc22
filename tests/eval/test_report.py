import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from omnifuse.eval.plots import plot_confusion_matrix, plot_curves, smooth
from omnifuse.eval.report import (
    ImageSection,
    RetrievalExample,
    RetrievalGridSection,
    TableSection,
    TextSection,
    format_table,
    image_data_uri,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_bytes(color=(255, 0, 0), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- plots


def _rows():
    rows = []
    for step in range(1, 31):
        rows.append(
            {"step": step, "train/loss": 2.0 / step + 0.05 * (step % 3), "train/lr": 1e-3 * step / 30}
        )
        if step % 10 == 0:
            rows.append(
                {"step": step, "val/loss": 1.0 / step, "val/R@1": step / 40, "val/accuracy": step / 35}
            )
    rows.append({"step": 31, "note": "text values are ignored", "val/flag": True})
    return rows


def test_plot_curves_writes_pngs(tmp_path):
    paths = plot_curves(_rows(), tmp_path / "plots")
    assert [p.name for p in paths] == ["loss.png", "lr.png", "metrics.png"]
    for p in paths:
        assert p.read_bytes().startswith(PNG_MAGIC)


def test_plot_curves_only_what_exists(tmp_path):
    assert [p.name for p in plot_curves([{"step": 1, "train/loss": 1.0}], tmp_path)] == ["loss.png"]
    assert plot_curves([], tmp_path / "empty") == []


def test_smooth_is_debiased_ema():
    assert smooth([2.0, 2.0, 2.0]).tolist() == pytest.approx([2.0, 2.0, 2.0])
    out = smooth([1.0, float("nan"), 3.0], weight=0.5)
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)


def test_plot_confusion_matrix(tmp_path):
    cm = np.array([[3, 1], [0, 4]])
    p = plot_confusion_matrix(cm, ["a", "b"], tmp_path / "cm.png", normalize=True)
    assert p.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "bad.png")


# ---------------------------------------------------------------------------- report


def test_format_table_aligns():
    text = format_table([{"name": "a", "R@1": 0.123456}, {"name": "long name", "R@1": 12, "extra": None}])
    assert text.splitlines() == [
        "name          R@1  extra",
        "---------  ------  -----",
        "a          0.1235",
        "long name      12",
    ]
    assert format_table([]) == "(no rows)"


def test_report_self_contained(tmp_path):
    png = _png_bytes()
    plot = tmp_path / "plot.png"
    plot.write_bytes(png)
    sections = [
        TableSection(
            "Retrieval", [{"model": "tiny", "text_to_image/R@1": 0.123456, "steps": 100}], note="val split"
        ),
        ImageSection("Loss", plot, caption="train loss"),
        RetrievalGridSection(
            "Examples",
            [
                RetrievalExample(
                    "<script>alert(1)</script> a red circle",
                    images=[png, Image.new("RGB", (300, 200), (0, 0, 255)), plot],
                    correct=[True, False, False],
                    scores=[0.91234, 0.5, -0.1],
                )
            ],
        ),
        TextSection("Config", "lr: 1e-3\n<b>not bold</b> & co"),
    ]
    path = write_report(tmp_path / "out" / "report.html", "Run <1>", sections)
    html = path.read_text(encoding="utf-8")

    assert "0.1235" in html and "100" in html and "val split" in html
    assert base64.b64encode(png).decode() in html  # plot embedded as-is
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; co" in html
    assert "Run &lt;1&gt;" in html
    assert "0.912" in html and "-0.100" in html
    assert "http" not in html.lower()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 4 and all(s.startswith("data:image/") for s in srcs)
    assert html.count('class="hit ok"') == 1 and html.count('class="hit bad"') == 2
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_image_data_uri_thumbnails_and_rejects_non_images():
    uri = image_data_uri(Image.new("RGB", (400, 100)), max_size=64)
    data = base64.b64decode(uri.split(",", 1)[1])
    assert Image.open(io.BytesIO(data)).size == (64, 16)
    assert image_data_uri(np.zeros((4, 4, 3), dtype=np.float32)).startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="not a readable image"):
        image_data_uri(b"<svg onload=alert(1)></svg>")
    with pytest.raises(FileNotFoundError):
        image_data_uri("/nonexistent/image.png")


def test_retrieval_example_lengths_must_match():
    with pytest.raises(ValueError, match="must match"):
        RetrievalExample("q", images=[b"x"], correct=[True, False], scores=[0.1])
