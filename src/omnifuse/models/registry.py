"""Model kinds as registered specs: one `ModelSpec` per kind, registered by a decorator.

Training, evaluation, the runtime, the server, export and compression ask the spec of a model
(`spec_of(model)`, `get_spec(name)`) what it can do — never `isinstance`, `model_type` string
comparisons or `hasattr`. A new kind is one folder under `omnifuse/models/` whose model class is
decorated with :func:`register_model_kind`; importing `omnifuse.models` imports every kind.

This module imports only torch's base class (timm's `_registry.py` is the pattern): the kinds
import the registry, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from torch import nn

CAPABILITIES = frozenset(
    {
        "embed",  # embeddings per modality in one space (retrieval, the vector index)
        "zero_shot",  # classify by similarity to embedded prompts
        "classify",  # a trained classification head
        "label_tokens",  # one label per text token
        "fill_mask",  # masked language modelling
        "generate_text",  # captions, answers
        "generate_image",  # images from a text prompt
        "tokenize_image",  # images <-> grids of discrete codes
        "act",  # actions in an environment
    }
)
"""What a kind can offer; a spec names a subset, and callers check it with `spec.can(...)`."""

M = TypeVar("M", bound=type[nn.Module])


class KindConfig(Protocol):
    """A model kind's recipe config: a dataclass whose `type` field is the kind's name.

    `Recipe.model` holds one of the registered kinds' configs (the union of `model_configs()`).
    """

    type: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything the rest of the library needs to know about one model kind."""

    name: str
    """The kind's name: `model.type` in a recipe, `model_type` in an artifact's config.json."""
    config_class: type
    """The typed recipe config (a dataclass with a `type` field equal to `name`)."""
    model_class: type[nn.Module]
    """The model; it has `from_pretrained`, `save_pretrained` and `from_config`."""
    build: Callable[..., nn.Module]
    """`build(config, processor, samples=None)` -> a fresh model; `samples` are the training
    data (classifiers take their class names from them)."""
    modalities: Callable[[Any], list[str]]
    """`modalities(config)` -> the input modalities the kind consumes, sorted."""
    capabilities: frozenset[str]
    """A subset of :data:`CAPABILITIES`."""
    evaluator: str | Callable[..., Any] | None = None
    """How the kind is validated: the name of an evaluator registered in `omnifuse.eval`
    (`retrieval`, `classification`), or a callable `evaluator(eval_config, val_samples, model)`
    returning one; None when the kind has no validation metrics."""
    targets: Callable[[nn.Module], Any] | None = None
    """`targets(model)` -> what turns sample labels into tensors for the training loop, or None."""
    processors: Callable[[Any], dict[str, Any]] | None = None
    """`processors(config)` -> preprocessing the kind brings along, by modality (e.g. the
    processors saved with a pretrained artifact it starts from); None: all built from the recipe."""
    train_log: Callable[[nn.Module], dict[str, float]] | None = None
    """`train_log(model)` -> scalars the training loop logs beside the loss, as `train/<name>`
    (e.g. a learned temperature); None: nothing more."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Kind-specific hooks that a layer asks for by name (e.g. an export graph builder)."""

    def can(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability '{capability}'; known: {sorted(CAPABILITIES)}")
        return capability in self.capabilities

    def require(self, capability: str, what: str) -> None:
        """Raise a ValueError that names the kind when it cannot do `what`."""
        if not self.can(capability):
            offers = ", ".join(sorted(self.capabilities)) or "nothing"
            raise ValueError(f"{what} needs a model that can '{capability}'; a {self.name} offers: {offers}")


MODEL_KINDS: dict[str, ModelSpec] = {}


def register_model_kind(
    name: str,
    *,
    config: type,
    build: Callable[..., nn.Module],
    modalities: Callable[[Any], list[str]],
    capabilities: Sequence[str],
    evaluator: str | Callable[..., Any] | None = None,
    targets: Callable[[nn.Module], Any] | None = None,
    processors: Callable[[Any], dict[str, Any]] | None = None,
    train_log: Callable[[nn.Module], dict[str, float]] | None = None,
    **extras: Any,
) -> Callable[[M], M]:
    """Class decorator: register the decorated model class as the kind `name`.

    `build(model_class, config, processor, samples)` receives the decorated class first, so a
    kind's `build.py` never imports its `model.py` (which imports it); the spec binds the class,
    and callers call `spec.build(config, processor, samples)`. The decorator also sets
    `model_type = name` on the class, which is what its artifacts record.
    """
    unknown = sorted(set(capabilities) - CAPABILITIES)
    if unknown:
        raise ValueError(
            f"model kind '{name}': unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}"
        )

    def decorate(cls: M) -> M:
        if name in MODEL_KINDS and MODEL_KINDS[name].model_class is not cls:
            raise ValueError(f"model kind '{name}' is already registered by {MODEL_KINDS[name].model_class}")
        cls.model_type = name
        MODEL_KINDS[name] = ModelSpec(
            name=name,
            config_class=config,
            model_class=cls,
            build=partial(build, cls),
            modalities=modalities,
            capabilities=frozenset(capabilities),
            evaluator=evaluator,
            targets=targets,
            processors=processors,
            train_log=train_log,
            extras=dict(extras),
        )
        return cls

    return decorate


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered kind; a clear error naming the known kinds otherwise."""
    if name not in MODEL_KINDS:
        raise ValueError(
            f"unknown model_type '{name}'; registered model kinds: {', '.join(sorted(MODEL_KINDS)) or 'none'}"
        )
    return MODEL_KINDS[name]


def find_spec(model: nn.Module) -> ModelSpec | None:
    """The spec of a built model (unwrapped from DDP/compile wrappers first); None when its
    class is no registered kind (a plain module handed to the training loop, say)."""
    inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None) or model
    return MODEL_KINDS.get(getattr(type(inner), "model_type", None))


def spec_of(model: nn.Module) -> ModelSpec:
    """The spec of a built model (unwrapped from DDP/compile wrappers first)."""
    spec = find_spec(model)
    if spec is None:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None) or model
        kind = getattr(type(inner), "model_type", None)
        if kind is not None:
            return get_spec(kind)  # names the unknown kind and the known ones
        raise ValueError(f"{type(inner).__name__} is not a registered omnifuse model kind")
    return spec


def model_configs() -> dict[str, type]:
    """`model.type` -> its config class, for recipe validation (the union of the kinds' configs)."""
    return {name: spec.config_class for name, spec in sorted(MODEL_KINDS.items())}
