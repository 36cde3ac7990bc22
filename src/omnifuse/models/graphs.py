"""ONNX-exportable views of a model: one graph per servable unit, with flat tensor inputs.

A kind says which graphs it exports by registering `export_graphs=...` with its spec
(`register_model_kind(..., export_graphs=tower_graphs)`); `omnifuse export` asks the spec.

- `tower_graphs`: kinds that `embed` give one graph per modality (`text.onnx`: ids + mask ->
  normalised embedding; `image.onnx`: pixels -> normalised embedding), so each modality can be
  served alone.
- `classifier_graph`: kinds with a trained head give one `classifier.onnx` whose inputs are
  every modality's tensors plus a `<modality>_present` (B,) bool flag, and whose output is the
  class probabilities; the runtime feeds placeholder tensors with the flag False for a missing
  modality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

#: modality -> the processed batch keys its tower reads (in graph input order) and dynamic axes.
MODALITY_INPUTS: dict[str, dict[str, dict[int, str]]] = {
    "text": {"text": {0: "batch", 1: "text_len"}, "text_mask": {0: "batch", 1: "text_len"}},
    "image": {"image": {0: "batch"}},
    "audio": {"audio": {0: "batch", 1: "audio_len"}, "audio_mask": {0: "batch", 1: "audio_len"}},
    "video": {"video": {0: "batch", 1: "video_len"}, "video_mask": {0: "batch", 1: "video_len"}},
}


@dataclass
class GraphSpec:
    """One graph to export: the wrapper module, its flat inputs and output, and dynamic axes."""

    name: str
    """File stem under onnx/ (`text`, `image`, `classifier`)."""
    module: nn.Module
    input_names: list[str]
    output_name: str
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)
    """Modalities whose processed tensors feed this graph."""
    hf_config: object | None = None
    """The HF config of the transformer inside, when there is one (ONNX Runtime's transformer
    fusions need its heads and hidden size); None otherwise."""


def present_flag(modality: str) -> str:
    """The (B,) bool input that tells a fused graph whether `modality` is present in a row."""
    return f"{modality}_present"


def modality_inputs(modality: str) -> dict[str, dict[int, str]]:
    if modality not in MODALITY_INPUTS:
        raise ValueError(f"cannot export a '{modality}' input yet; exportable: {sorted(MODALITY_INPUTS)}")
    return MODALITY_INPUTS[modality]


class TowerGraph(nn.Module):
    """Flat tensors -> `model.encode(modality, batch)`: (B, E) L2-normalised float32."""

    def __init__(self, model: nn.Module, modality: str, input_names: list[str]):
        super().__init__()
        self.model, self.modality, self.input_names = model, modality, input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.input_names, tensors))
        return self.model.encode(self.modality, batch).float()  # (B, E)


class ClassifierGraph(nn.Module):
    """Flat tensors (every modality + `<m>_present` flags) -> (B, C) probabilities."""

    def __init__(self, model: nn.Module, input_names: list[str]):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.input_names, tensors))
        return self.model.predict_proba(batch).float()  # (B, C)


def tower_graphs(model: nn.Module, towers: dict[str, nn.Module] | None = None) -> list[GraphSpec]:
    """One `TowerGraph` per modality of a model with `encode(modality, batch)`; `towers`
    (modality -> encoder) lets the export find each tower's HF config."""
    specs = []
    for m in model.modalities:
        axes = modality_inputs(m)
        names = list(axes)
        tower = towers[m] if towers is not None and m in towers else None
        hf_config = getattr(getattr(tower, "model", None), "config", None)
        graph = TowerGraph(model, m, names).eval()
        specs.append(
            GraphSpec(m, graph, names, "embedding", {**axes, "embedding": {0: "batch"}}, [m], hf_config)
        )
    return specs


def classifier_graph(model: nn.Module) -> list[GraphSpec]:
    """One `ClassifierGraph` over every modality of a model with `predict_proba(batch)`."""
    axes: dict[str, dict[int, str]] = {}
    for m in model.modalities:
        axes.update(modality_inputs(m))
        axes[present_flag(m)] = {0: "batch"}
    names = list(axes)
    graph = ClassifierGraph(model, names).eval()  # eval: the exporter restores this mode
    return [
        GraphSpec(
            "classifier",
            graph,
            names,
            "probabilities",
            {**axes, "probabilities": {0: "batch"}},
            list(model.modalities),
        )
    ]
