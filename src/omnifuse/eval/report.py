"""One self-contained HTML report per run, and plain-text tables for the terminal.

`write_report` renders a list of sections into a single ``.html`` file: inline CSS, images
embedded as base64 ``data:`` URIs, no JavaScript, no external requests, so the file can be
mailed, archived or opened offline. All text is HTML-escaped.

>>> rows = [{"model": "tiny", "R@1": 0.123456}]
>>> print(format_table(rows))
model     R@1
-----  ------
tiny   0.1235
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnifuse.utils.io import atomic_write

ImageLike = Any  # str | Path (file), bytes (encoded image), PIL.Image.Image, numpy (H, W[, C]) array

_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


# ---------------------------------------------------------------------------- formatting


def format_value(v: Any) -> str:
    """A table cell: floats to 4 significant digits, ints as they are, None as empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        return str(f) if not math.isfinite(f) else f"{f:.4g}"
    return str(v)


def _is_numeric(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _columns(rows: Sequence[dict]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols[str(k)] = None
    return list(cols)


def _cell(row: dict, col: str) -> Any:
    if col in row:
        return row[col]
    return next((v for k, v in row.items() if str(k) == col), None)


def format_table(rows: Sequence[dict]) -> str:
    """Rows of dicts as an aligned plain-text table (columns in first-seen order).

    Numbers are right-aligned, text left-aligned, missing cells left blank.
    """
    if not rows:
        return "(no rows)"
    cols = _columns(rows)
    cells = [[format_value(_cell(r, c)) for c in cols] for r in rows]
    numeric = [all(_is_numeric(_cell(r, c)) or _cell(r, c) is None for r in rows) for c in cols]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cols), rule, *(line(row) for row in cells)])


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------- images


def _encode_pil(img: Any, max_size: int | None) -> tuple[bytes, str]:
    if max_size is not None:
        img = img.copy()
        img.thumbnail((max_size, max_size))
    buf = io.BytesIO()
    if img.mode == "RGB" and max_size is not None:  # photo thumbnails: JPEG is ~5x smaller
        img.save(buf, format="JPEG", quality=85)
        return buf.getvalue(), "image/jpeg"
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    img.save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def _sniff(data: bytes) -> str | None:
    for magic, mime in _MAGIC.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_data_uri(image: ImageLike, max_size: int | None = None) -> str:
    """A ``data:image/...;base64,...`` URI for a file path, encoded bytes, PIL image or array.

    Encoded PNG/JPEG/GIF/WebP bytes are embedded as they are unless ``max_size`` asks for a
    thumbnail; anything else is decoded with Pillow and re-encoded (so an SVG or HTML payload
    can never be smuggled in as an "image").
    """
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"report image not found: {path}")
        image = path.read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        mime = _sniff(data)
        if mime is None or max_size is not None:
            try:
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    data, mime = _encode_pil(img, max_size)
            except Exception as err:
                raise ValueError("report image bytes are not a readable image") from err
    elif isinstance(image, Image.Image):
        data, mime = _encode_pil(image, max_size)
    elif hasattr(image, "__array__"):
        import numpy as np

        arr = np.asarray(image)
        if arr.dtype.kind == "f":
            arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
        data, mime = _encode_pil(Image.fromarray(arr), max_size)
    else:
        raise TypeError(f"cannot embed {type(image).__name__} as an image (path, bytes, PIL image or array)")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# ---------------------------------------------------------------------------- sections


@dataclass
class TableSection:
    """A metrics table: one dict per row, columns in first-seen order, floats to 4 digits."""

    title: str
    rows: list[dict]
    note: str = ""

    def to_html(self) -> str:
        if not self.rows:
            body = '<p class="note">(no rows)</p>'
        else:
            cols = _columns(self.rows)
            head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
            lines = []
            for r in self.rows:
                tds = []
                for c in cols:
                    v = _cell(r, c)
                    cls = ' class="num"' if _is_numeric(v) else ""
                    tds.append(f"<td{cls}>{_esc(format_value(v))}</td>")
                lines.append(f"<tr>{''.join(tds)}</tr>")
            body = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
        note = f'<p class="note">{_esc(self.note)}</p>' if self.note else ""
        return body + note


@dataclass
class ImageSection:
    """One image (a plot file, PNG bytes, PIL image ...) embedded at full resolution."""

    title: str
    image: ImageLike
    caption: str = ""

    def to_html(self) -> str:
        cap = f"<figcaption>{_esc(self.caption)}</figcaption>" if self.caption else ""
        return (
            f'<figure class="plot"><img src="{image_data_uri(self.image)}" alt="{_esc(self.caption or self.title)}">'
            f"{cap}</figure>"
        )


@dataclass
class RetrievalExample:
    """A text query and its top-k retrieved images, best first, with correctness and scores."""

    query: str
    images: list[ImageLike]
    correct: list[bool]
    scores: list[float]

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.correct) != n or len(self.scores) != n:
            raise ValueError(
                f"retrieval example {self.query!r}: {n} images, {len(self.correct)} correct flags and "
                f"{len(self.scores)} scores; they must match"
            )


@dataclass
class RetrievalGridSection:
    """One row per query: its retrieved images, outlined green when correct and red when wrong."""

    title: str
    examples: list[RetrievalExample]
    thumb_size: int = 128

    def to_html(self) -> str:
        out = []
        for i, ex in enumerate(self.examples, 1):
            hits = []
            for rank, (img, ok, score) in enumerate(zip(ex.images, ex.correct, ex.scores), 1):
                cls, mark = ("hit ok", "&#10003;") if ok else ("hit bad", "&#10007;")
                hits.append(
                    f'<figure class="{cls}"><img src="{image_data_uri(img, self.thumb_size)}" '
                    f'alt="rank {rank}" style="max-width:{self.thumb_size}px;max-height:{self.thumb_size}px">'
                    f"<figcaption>{mark} #{rank} &middot; {_esc(format(float(score), '.3f'))}</figcaption></figure>"
                )
            out.append(
                f'<div class="query"><p class="qtext">{i}. {_esc(ex.query)}</p>'
                f'<div class="hits">{"".join(hits)}</div></div>'
            )
        return "".join(out) or '<p class="note">(no examples)</p>'


@dataclass
class TextSection:
    """Preformatted text (a config, a log excerpt, a plain-text table)."""

    title: str
    text: str

    def to_html(self) -> str:
        return f"<pre>{_esc(self.text)}</pre>"


ReportSection = TableSection | ImageSection | RetrievalGridSection | TextSection

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.6rem;border-bottom:1px solid #d0d7de;padding-bottom:.4rem}
h2{font-size:1.2rem;margin-top:2rem}
nav ul{padding-left:1.2rem;columns:2}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#57606a;font-size:.85rem}
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;font-size:.85rem}
figure{margin:0}
figure.plot img{max-width:100%}
figure.plot figcaption{color:#57606a;font-size:.85rem}
.query{margin:1rem 0}
.qtext{font-weight:600;margin:.2rem 0}
.hits{display:flex;flex-wrap:wrap;gap:.5rem}
.hit{text-align:center;font-size:.8rem}
.hit img{display:block;border:4px solid;border-radius:3px}
.hit.ok img{border-color:#1a7f37}
.hit.bad img{border-color:#cf222e}
.hit.ok figcaption{color:#1a7f37}
.hit.bad figcaption{color:#cf222e}
"""


def render_report(title: str, sections: Sequence[ReportSection]) -> str:
    """The report as an HTML string (see `write_report`)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if len(sections) > 1:
        items = "".join(f'<li><a href="#s{i}">{_esc(s.title)}</a></li>' for i, s in enumerate(sections, 1))
        parts.append(f"<nav><ul>{items}</ul></nav>")
    for i, section in enumerate(sections, 1):
        if not hasattr(section, "to_html"):
            raise TypeError(f"section {i} is a {type(section).__name__}, not a report section")
        parts.append(f'<section id="s{i}"><h2>{_esc(section.title)}</h2>{section.to_html()}</section>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | Path, title: str, sections: Sequence[ReportSection]) -> Path:
    """Write one self-contained HTML file (inline CSS, embedded images, no JS) and return its path.

    Written atomically (`omnifuse.utils.io.atomic_write`), so a reader never sees half a report.
    """
    return atomic_write(Path(path), render_report(title, sections))


__all__ = [
    "ImageSection",
    "ReportSection",
    "RetrievalExample",
    "RetrievalGridSection",
    "TableSection",
    "TextSection",
    "format_table",
    "format_value",
    "image_data_uri",
    "render_report",
    "write_report",
]
