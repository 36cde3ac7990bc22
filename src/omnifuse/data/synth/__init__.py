"""The synthetic shapes world: deterministic images of 1-3 colored shapes with captions,
question-answer pairs and labels, with color-shape combinations held out of training.

Pieces, each usable alone: `sample_scene` (what is where) -> renderers (`render_image`,
later audio and video via `register_renderer`) and text (`describe`, `questions`) ->
`generate` (files plus JSONL manifests per split). Example::

    from omnifuse.data.synth import SynthConfig, generate
    summary = generate(SynthConfig(n=10_000, seed=0), "data/shapes")
"""

from omnifuse.data.synth.config import DEFAULT_HOLDOUT, SPLITS, SynthConfig
from omnifuse.data.synth.generate import SynthSummary, generate, make_sample, make_scene
from omnifuse.data.synth.render import render_image
from omnifuse.data.synth.renderers import RENDERERS, Renderer, register_renderer
from omnifuse.data.synth.rng import sample_rng
from omnifuse.data.synth.scene import Scene, SceneObject, relation_holds, sample_scene, scene_labels
from omnifuse.data.synth.text import canonical_caption, describe, questions, vocabulary, words
from omnifuse.data.synth.vocab import (
    BACKGROUND_RGB,
    COLOR_RGB,
    COLORS,
    GRID,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    color_shape_classes,
    position_name,
)

__all__ = [
    "BACKGROUND_RGB",
    "COLORS",
    "COLOR_RGB",
    "DEFAULT_HOLDOUT",
    "GRID",
    "POSITIONS",
    "RELATIONS",
    "RENDERERS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "Renderer",
    "Scene",
    "SceneObject",
    "SynthConfig",
    "SynthSummary",
    "canonical_caption",
    "color_shape_classes",
    "describe",
    "generate",
    "make_sample",
    "make_scene",
    "position_name",
    "questions",
    "register_renderer",
    "relation_holds",
    "render_image",
    "sample_rng",
    "sample_scene",
    "scene_labels",
    "vocabulary",
    "words",
]
