"""Errors a person sees, and the notices (one-line remarks that are not errors) that go the same way.

Every problem caused by the user's input (a file, a column, an option) is raised as a :class:`UserError`
subclass whose message is one line: what must hold, what was found, and how to fix it. The CLI prints the
message and exits with status 2; anything else escaping is a bug in neuraltab. Errors about values (a table, a
column, an option) are also ``ValueError``s, as Python code and scikit-learn expect of bad input.
"""

from __future__ import annotations

import difflib
from typing import Callable

__all__ = [
    "Notify",
    "no_notice",
    "UserError",
    "DataError",
    "SchemaError",
    "ConfigError",
    "ArtifactError",
    "closest_names",
]

# a notice sink: called with one line (a dropped column, an unseen category, ...); the CLI prints them
Notify = Callable[[str], None]


def no_notice(_: str) -> None:
    """The notice sink that says nothing."""


class UserError(Exception):
    """A problem with the user's input. The message is a single line meant for a person."""

    def __init__(self, message: str) -> None:
        # One line, always: the CLI prints it as-is after "error: ".
        super().__init__(" ".join(str(message).split()))


class DataError(UserError, ValueError):
    """A table cannot be read: missing file, bad encoding, ragged rows, no rows, ..."""


class SchemaError(UserError, ValueError):
    """A table can be read but its columns do not fit: missing target, missing feature, wrong type, ..."""


class ConfigError(UserError, ValueError):
    """An option has an invalid value or an unknown name."""


class ArtifactError(UserError):
    """A model file cannot be read: not found, truncated, corrupted, foreign or from a newer version."""


def closest_names(name: str, candidates: list[str], n: int = 3, *, what: str = "columns") -> str:
    """Render ``did you mean ...?`` hints, or the list of available ``what`` when none is close.

    >>> closest_names("lef", ["left", "salary", "sales"])
    "did you mean 'left'?"
    >>> closest_names("xyz", ["lr", "k"], what="parameters")
    "available parameters: 'lr', 'k'"
    """
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(repr(c) for c in candidates[:8])
    more = f" (and {len(candidates) - 8} more)" if len(candidates) > 8 else ""
    return f"available {what}: {shown}{more}"
