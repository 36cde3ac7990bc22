"""Moving-shapes clips: the `video` renderer of the shapes world.

Each object of a scene (its color, shape and size) slides in a straight line, up, down, left
or right, over `video_frames` frames, and the clip gets motion captions ("a red circle moves
up", "a blue square moves left and a green star moves down"). The middle of each path is
drawn uniformly from the same box whatever the direction, so the middle frame says nothing
about the direction and the first frame little: a model has to compare frames in order.
(Averaging frames cannot tell "up" from "down" either: both visit the same positions.)

Clips are written as H.264 mp4 through PyAV (libx264, 4:4:4 chroma so small shapes keep
their colors; another encoder PyAV has otherwise), or as `.npy` arrays (F, H, W, 3) uint8.
Every clip depends only on (seed, index) and the config.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from omnifuse._optional import require
from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.render import shape_polygon
from omnifuse.data.synth.renderers import register_renderer
from omnifuse.data.synth.rng import sample_rng
from omnifuse.data.synth.scene import Scene, SceneObject
from omnifuse.data.synth.vocab import BACKGROUND_RGB, COLOR_RGB, GRID, SIZE_RADIUS

#: Direction name -> unit step (x right, y down), in the fixed order used by labels.
DIRECTIONS: dict[str, tuple[int, int]] = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}

#: Fraction of the frame side an object travels over a clip.
TRAVEL = 0.5

#: mp4 encoders tried in order (the first that PyAV has is used).
MP4_CODECS: tuple[str, ...] = ("libx264", "mpeg4")


@dataclass(frozen=True)
class Track:
    """One object's straight path: pixel centre at the first and last frame."""

    obj: SceneObject
    direction: str
    start: tuple[float, float]
    end: tuple[float, float]

    def at(self, t: float) -> tuple[float, float]:
        """Centre at time t in [0, 1]."""
        return (
            self.start[0] + t * (self.end[0] - self.start[0]),
            self.start[1] + t * (self.end[1] - self.start[1]),
        )


def sample_tracks(scene: Scene, rng: np.random.Generator, size: int, travel: float = TRAVEL) -> list[Track]:
    """A direction and a path per object; the path's midpoint ignores the direction."""
    cell = size / GRID
    tracks = []
    for obj in scene.objects:
        direction = list(DIRECTIONS)[int(rng.integers(len(DIRECTIONS)))]
        dx, dy = DIRECTIONS[direction]
        r = SIZE_RADIUS[obj.size] * cell
        half = travel * size / 2
        lo, hi = r + half, size - r - half  # the same box for every direction
        mx, my = rng.uniform(lo, hi), rng.uniform(lo, hi)
        tracks.append(
            Track(obj, direction, (mx - dx * half, my - dy * half), (mx + dx * half, my + dy * half))
        )
    return tracks


def redirect(tracks: list[Track], rng: np.random.Generator, size: int, travel: float = TRAVEL) -> list[Track]:
    """The same tracks with one object moving in another direction, about the same midpoint."""
    i = int(rng.integers(len(tracks)))
    old = tracks[i]
    others = [d for d in DIRECTIONS if d != old.direction]
    direction = others[int(rng.integers(len(others)))]
    dx, dy = DIRECTIONS[direction]
    half = travel * size / 2
    mx, my = (old.start[0] + old.end[0]) / 2, (old.start[1] + old.end[1]) / 2
    new = Track(old.obj, direction, (mx - dx * half, my - dy * half), (mx + dx * half, my + dy * half))
    return tracks[:i] + [new] + tracks[i + 1 :]


def _tracks(scene: Scene, sample_id: str, rng: np.random.Generator, config: SynthConfig) -> list[Track]:
    index = int(sample_id)  # ids are zero-padded sample indices
    paired = config.video_direction_pairs and index % 2 == 1
    if paired and config.split_of(index) == "train" and config.split_of(index - 1) == "train":
        # make_scene gave this sample the previous one's scene: replay its tracks, then redirect one.
        twin_rng = sample_rng(config.seed, index - 1, zlib.crc32(b"video"))
        return redirect(sample_tracks(scene, twin_rng, config.video_size), rng, config.video_size)
    return sample_tracks(scene, rng, config.video_size)


def render_frames(tracks: list[Track], size: int, num_frames: int) -> np.ndarray:
    """(F, size, size, 3) uint8 frames of the objects along their tracks (flat colors, no antialiasing)."""
    cell = size / GRID
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for f in range(num_frames):
        t = f / max(1, num_frames - 1)
        image = Image.new("RGB", (size, size), BACKGROUND_RGB)
        draw = ImageDraw.Draw(image)
        for track in tracks:
            x, y = track.at(t)
            r = SIZE_RADIUS[track.obj.size] * cell
            polygon = shape_polygon(track.obj.shape, x, y, r)
            if polygon is None:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=COLOR_RGB[track.obj.color])
            else:
                draw.polygon(polygon, fill=COLOR_RGB[track.obj.color])
        frames[f] = np.asarray(image)
    return frames


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def motion_caption(motions: list[tuple[str, str]]) -> str:
    """The canonical caption of (object, direction) pairs: "a red circle moves up and a blue square moves left"."""
    return _join([f"a {obj} moves {direction}" for obj, direction in motions])


def motion_captions(tracks: list[Track]) -> list[str]:
    """Paraphrases; the first is canonical (`motion_caption`)."""
    forms = ["the {c} goes {d}", "a {c} moving {d}", "a {s} {c} moves {d}"]
    canonical = motion_caption([(t.obj.combo, t.direction) for t in tracks])
    return [canonical] + [
        _join([form.format(c=t.obj.combo, d=t.direction, s=t.obj.size) for t in tracks]) for form in forms
    ]


def mp4_codec() -> str | None:
    """The first of `MP4_CODECS` that PyAV can encode with, or None."""
    av = require("av", "video", "writing mp4 clips")
    return next((c for c in MP4_CODECS if c in av.codecs_available), None)


def write_mp4(frames: np.ndarray, path: Path, fps: int = 8) -> None:
    """Encode (F, H, W, 3) uint8 frames as an mp4 (H.264 4:4:4 near-lossless with libx264)."""
    av = require("av", "video", "writing mp4 clips")
    codec = mp4_codec()
    if codec is None:
        raise ValueError(f"PyAV has none of the mp4 encoders {MP4_CODECS}; set video_format: npy")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        if codec == "libx264":
            stream.pix_fmt = "yuv444p"
            stream.options = {"crf": "8", "preset": "medium", "threads": "1"}
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = {"qscale": "2"}
            stream.codec_context.thread_count = 1
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush
            container.mux(packet)


@register_renderer("video")
def _video_renderer(
    scene: Scene, sample_id: str, out_dir: Path, rng: np.random.Generator, config: SynthConfig
) -> dict[str, Any]:
    tracks = _tracks(scene, sample_id, rng, config)
    frames = render_frames(tracks, config.video_size, config.video_frames)
    rel = f"videos/{sample_id}.{config.video_format}"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if config.video_format == "mp4":
        write_mp4(frames, path)
    else:
        np.save(path, frames, allow_pickle=False)
    return {
        "video": rel,
        "video_captions": motion_captions(tracks),
        "motion": [{"object": t.obj.combo, "direction": t.direction} for t in tracks],
    }
