"""What a served model can do, from its kind's spec in `omnifuse.models.registry`.

The server never compares `model_type` strings: a router names the capability it needs
(`requires=("embed",)`), and the app answers 400 naming what the model offers when it has none.
"""

from __future__ import annotations

from collections.abc import Iterable


def capabilities_of(model_type: str) -> frozenset[str]:
    """The capabilities of the registered kind `model_type` (a ValueError naming the known kinds)."""
    import omnifuse.models  # noqa: F401  (importing the package registers every kind)
    from omnifuse.models.registry import MODEL_KINDS, get_spec

    if model_type not in MODEL_KINDS and model_type in _NOT_YET_REGISTERED:
        return _NOT_YET_REGISTERED[model_type]
    return get_spec(model_type).capabilities


# TRANSITIONAL: the built-in kinds are being moved onto `register_model_kind`; until they are,
# their capabilities are listed here (this table goes when they register).
_NOT_YET_REGISTERED = {
    "dual_encoder": frozenset({"embed", "zero_shot"}),
    "fusion_classifier": frozenset({"classify", "label_tokens"}),
    "multitask": frozenset({"classify"}),
}


def kinds_that_can(capability: str) -> list[str]:
    """The registered kinds offering `capability`, as words ("dual encoder")."""
    import omnifuse.models  # noqa: F401
    from omnifuse.models.registry import MODEL_KINDS

    kinds = {**_NOT_YET_REGISTERED, **{name: spec.capabilities for name, spec in MODEL_KINDS.items()}}
    return [name.replace("_", " ") for name, caps in sorted(kinds.items()) if capability in caps]


def missing_capability_message(
    endpoint: str, any_of: Iterable[str], model_type: str, offers: Iterable[str]
) -> str:
    needs = " or ".join(f"'{c}'" for c in any_of)
    kinds = sorted({k for c in any_of for k in kinds_that_can(c)})
    example = f" (a {' or a '.join(kinds)})" if kinds else ""
    offered = ", ".join(sorted(offers)) or "nothing"
    return f"{endpoint} needs a model that can {needs}{example}; this model is a {model_type}, which offers: {offered}"
