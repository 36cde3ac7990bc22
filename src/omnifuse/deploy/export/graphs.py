"""What gets exported: the graphs a model kind registers with its spec (`export_graphs`).

The graph wrappers live with the models (`omnifuse.models.graphs`: `tower_graphs` for kinds
that embed, `classifier_graph` for trained heads); a kind opts in with
`register_model_kind(..., export_graphs=...)`. Placeholder inputs for a missing modality are
part of the artifact <-> runtime contract (`omnifuse.runtime.contract`).
"""

from __future__ import annotations

from torch import nn

from omnifuse.models.graphs import (
    MODALITY_INPUTS,
    ClassifierGraph,
    GraphSpec,
    TowerGraph,
    modality_inputs,
)
from omnifuse.runtime.contract import placeholder_inputs

__all__ = [
    "MODALITY_INPUTS",
    "ClassifierGraph",
    "GraphSpec",
    "TowerGraph",
    "exportable_kinds",
    "graph_specs",
    "modality_inputs",
    "placeholder_inputs",
]


def exportable_kinds() -> list[str]:
    """The registered kinds that declare export graphs."""
    import omnifuse.models  # noqa: F401  (registers every kind)
    from omnifuse.models.registry import MODEL_KINDS

    return sorted(name for name, spec in MODEL_KINDS.items() if "export_graphs" in spec.extras)


def graph_specs(model: nn.Module) -> list[GraphSpec]:
    """The graphs of a model, from its kind's spec (`spec.extras["export_graphs"](model)`)."""
    from omnifuse.models.registry import spec_of

    try:
        spec = spec_of(model)
    except ValueError as err:
        raise ValueError(
            f"cannot export a '{type(model).__name__}' to ONNX: {err}; exportable kinds: {exportable_kinds()}"
        ) from None
    build = spec.extras.get("export_graphs")
    if build is None:
        raise ValueError(
            f"cannot export a '{spec.name}' to ONNX: the kind registers no export graphs; "
            f"exportable kinds: {exportable_kinds()}"
        )
    return build(model)
