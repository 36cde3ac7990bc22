"""What a served model can do, from its kind's spec in `omnifuse.models.registry`.

The server never compares `model_type` strings: a router names the capability it needs
(`requires=("embed",)`), and the app answers 400 naming what the model offers when it has none.
"""

from __future__ import annotations

from collections.abc import Iterable


def capabilities_of(model_type: str) -> frozenset[str]:
    """The capabilities of the registered kind `model_type` (a ValueError naming the known kinds)."""
    import omnifuse.models  # noqa: F401  (importing the package registers every kind)
    from omnifuse.models.registry import get_spec

    return get_spec(model_type).capabilities


def kinds_that_can(capability: str) -> list[str]:
    """The registered kinds offering `capability`, as words ("dual encoder")."""
    import omnifuse.models  # noqa: F401
    from omnifuse.models.registry import MODEL_KINDS

    return [
        name.replace("_", " ")
        for name, spec in sorted(MODEL_KINDS.items())
        if capability in spec.capabilities
    ]


def missing_capability_message(
    endpoint: str, any_of: Iterable[str], model_type: str, offers: Iterable[str]
) -> str:
    needs = " or ".join(f"'{c}'" for c in any_of)
    kinds = sorted({k for c in any_of for k in kinds_that_can(c)})
    example = f" (a {' or a '.join(kinds)})" if kinds else ""
    offered = ", ".join(sorted(offers)) or "nothing"
    return f"{endpoint} needs a model that can {needs}{example}; this model is a {model_type}, which offers: {offered}"
