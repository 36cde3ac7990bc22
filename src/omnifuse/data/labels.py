"""Checks on the label keys a user names: naming a key that no sample has is an error, never
a metric that silently goes missing.

A manifest row holds labels in a `labels` object (`{"labels": {"digit": 3}}`), in a `label`
column, or in any column read as a label (`label_columns=[...]`, `--label-column` on the
command line); every other top-level column goes to `Sample.meta`. `require_label_key` says
which of these the data has when the key is not among the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from omnifuse.data.sample import DataError, Sample


def label_keys(samples: Sequence[Sample]) -> list[str]:
    """Every label key some sample has, sorted."""
    return sorted({k for s in samples for k in s.labels})


def require_label_key(
    samples: Sequence[Sample], key: str, data: str = "the data", column_option: str | None = "--label-column"
) -> list[Sample]:
    """The samples that have `labels[key]`; a `DataError` when none has it, naming the key, the
    label keys that exist and how to supply it: a `labels` object per row, or reading a column
    as a label with `column_option` (`--label-column` on the command line, `label_columns=[...]`
    in Python; None where the caller cannot read columns as labels)."""
    kept = [s for s in samples if key in s.labels]
    if kept:
        return kept
    found = label_keys(samples)
    columns = sorted({k for s in samples for k in s.meta if k != "source"})
    labels_object = f'a labels object in each row ({{"labels": {{"{key}": ...}}}})'
    if key in columns:
        how = f"'{key}' is a top-level column of the rows, not a label: " + (
            f"read it as one with {column_option} {key}, or move it into {labels_object}"
            if column_option
            else f"move it into {labels_object}"
        )
    else:
        how = f"give {labels_object}" + (
            f" or read a column as this label with {column_option} COLUMN" if column_option else ""
        )
    other = f"; other columns: {', '.join(columns)}" if columns and key not in columns else ""
    raise DataError(
        f"{data}: no sample has a '{key}' label (label keys found: {', '.join(found) or 'none'}{other}); {how}"
    )


def require_field(samples: Sequence[Sample], key: str, data: str = "the data", what: str = "field") -> None:
    """A `DataError` when no sample has `key` as a label or a column (e.g. a `--group-key`)."""
    if any(key in s.labels or key in s.meta for s in samples):
        return
    found = sorted({k for s in samples for k in (*s.labels, *s.meta) if k != "source"})
    raise DataError(
        f"{data}: no sample has a '{key}' {what}; label keys and columns found: {', '.join(found) or 'none'}"
    )
