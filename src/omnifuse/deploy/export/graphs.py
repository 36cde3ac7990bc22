"""What gets exported: one ONNX graph per servable unit, with flat tensor inputs.

A DualEncoder gives one graph per tower (`text.onnx`: ids + mask -> normalised embedding;
`image.onnx`: pixels -> normalised embedding), so each modality can be served alone. A
fusion classifier gives one `classifier.onnx` whose inputs are every modality's tensors plus
a `<modality>_present` (B,) bool flag, and whose output is the class probabilities; the
runtime feeds placeholder tensors with the flag False for a missing modality.
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

EXPORTABLE_MODEL_TYPES = ("dual_encoder", "fusion_classifier")


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


def graph_specs(model: nn.Module) -> list[GraphSpec]:
    """The graphs of a model, by its `model_type`."""
    model_type = getattr(model, "model_type", type(model).__name__)
    if model_type == "dual_encoder":
        specs = []
        for m in model.modalities:
            axes = modality_inputs(m)
            names = list(axes)
            specs.append(
                GraphSpec(
                    m,
                    TowerGraph(model, m, names).eval(),
                    names,
                    "embedding",
                    {**axes, "embedding": {0: "batch"}},
                    [m],
                )
            )
        return specs
    if model_type == "fusion_classifier":
        axes: dict[str, dict[int, str]] = {}
        for m in model.modalities:
            axes.update(modality_inputs(m))
            axes[f"{m}_present"] = {0: "batch"}
        names = list(axes)
        return [
            GraphSpec(
                "classifier",
                ClassifierGraph(model, names).eval(),  # eval: the exporter restores this mode
                names,
                "probabilities",
                {**axes, "probabilities": {0: "batch"}},
                list(model.modalities),
            )
        ]
    raise ValueError(
        f"cannot export a '{model_type}' to ONNX; exportable model types: {list(EXPORTABLE_MODEL_TYPES)}"
    )


def placeholder_inputs(modality: str, processor, batch_size: int) -> dict[str, torch.Tensor]:
    """Stand-in tensors for a modality a sample lacks (its `<m>_present` flag is then False).

    The text mask is all ones (an all-masked row would make attention NaN, which a zero
    weight downstream cannot undo); the fusion module ignores these rows via the flag.
    """
    if modality == "text":
        pad = getattr(processor["text"].tokenizer, "pad_token_id", None) or 0
        ids = torch.full((batch_size, 1), pad, dtype=torch.long)  # (B, 1)
        return {"text": ids, "text_mask": torch.ones_like(ids)}
    if modality == "image":
        size = processor["image"].settings.size
        return {"image": torch.zeros(batch_size, 3, size, size)}  # (B, 3, H, W)
    make = getattr(processor[modality], "placeholder", None)
    if make is None:
        raise ValueError(f"no placeholder input for a missing '{modality}'; exportable: text, image")
    return make(batch_size)
