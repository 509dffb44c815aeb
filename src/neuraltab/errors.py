"""Errors a person sees, and the notices (one-line remarks that are not errors) that go the same way.

Every problem caused by the user's input (a file, a column, an option) is raised as a :class:`UserError`
subclass whose message is one line: what must hold, what was found, and how to fix it. Errors about values (a table,
a column, an option) are also ``ValueError``s, as Python code and scikit-learn expect of bad input.

Messages speak of options neutrally: library code writes :func:`option` where it refers to one, and each front door
renders the reference in its caller's words (:func:`render`): ``--task binary`` on the command line,
``task='binary'`` in Python (``str(exc)``), ``"task": "binary"`` over HTTP. An error also carries the option it is
about (``exc.option``), for a server's JSON field or a page's form.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from typing import Any, Callable, Mapping

__all__ = [
    "Message",
    "option",
    "render",
    "cli_words",
    "FLAG_NAMES",
    "Notify",
    "no_notice",
    "UserError",
    "DataError",
    "SchemaError",
    "ConfigError",
    "ArtifactError",
    "closest_names",
]

_UNSET: Any = object()
# an option reference: ⟦name⟧ or ⟦name=JSON⟧; ensure_ascii keeps the closing bracket out of any value
_REFERENCE = re.compile("\u27e6([a-z_][a-z0-9_]*)(?:=([^\u27e7]*))?\u27e7")
STYLES = ("python", "cli", "json")


def option(name: str, value: Any = _UNSET) -> str:
    """A reference to the option ``name`` (set to ``value``, if given) inside a message or a notice.

    >>> text = f"use {option('task', 'multiclass')}"
    >>> render(text, "cli"), render(text, "python"), render(text, "json")
    ('use --task multiclass', "use task='multiclass'", 'use "task": "multiclass"')
    >>> render(f"lower {option('lr')}", "cli"), render(f"lower {option('lr')}", "python")
    ('lower --lr', "lower 'lr'")
    """
    if value is _UNSET:
        return f"\u27e6{name}\u27e7"
    return f"\u27e6{name}={json.dumps(value, ensure_ascii=True)}\u27e7"


# options whose command-line flag is not "--" + the name with dashes
FLAG_NAMES = {"id_column": "--id", "no_dayfirst": "--monthfirst"}


def render(text: str, style: str = "python", *, flags: Mapping[str, str] | None = None) -> str:
    """``text`` with its option references written for a front door: ``"cli"`` (flags, ``flags`` naming those that
    are not ``--`` + the name with dashes), ``"python"`` (keyword arguments) or ``"json"`` (fields)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    text = getattr(text, "template", text)

    def one(match: re.Match[str]) -> str:
        name, raw = match.group(1), match.group(2)
        value = _UNSET if raw is None else json.loads(raw)
        if style == "python":
            return repr(name) if value is _UNSET else f"{name}={value!r}"
        if style == "json":
            return json.dumps(name) if value is _UNSET else f"{json.dumps(name)}: {json.dumps(value)}"
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        if value is _UNSET or value is True:
            return flag
        if value is False:  # a pair of flags not named --x/--no-x is in ``flags`` as "no_<name>"
            return (flags or {}).get(f"no_{name}", "--no-" + flag[2:])
        if isinstance(value, list):  # a list option: one flag per name that holds a comma, else a comma list
            if any("," in str(v) for v in value):
                return " ".join(f"{flag} {shlex.quote(str(v))}" for v in value)
            value = ",".join(str(v) for v in value)
        return f"{flag} {shlex.quote(str(value))}"

    return _REFERENCE.sub(one, text)


class Message(str):
    """A one-line message whose option references each front door renders in its own words; as a ``str`` it reads
    as Python code would write them (``task='binary'``)."""

    template: str

    def __new__(cls, template: str) -> "Message":
        template = getattr(template, "template", template)
        self = super().__new__(cls, render(template, "python"))
        self.template = template
        return self

    def render(self, style: str = "python", **kwargs: Any) -> str:
        return render(self.template, style, **kwargs)


# a notice sink: called with one line (a dropped column, an unseen category, ...); front doors render and show them
Notify = Callable[[str], None]


def no_notice(_: str) -> None:
    """The notice sink that says nothing."""


class UserError(Exception):
    """A problem with the user's input. The message is a single line meant for a person.

    ``option``: the option the error is about (a CLI flag, a keyword argument, a JSON field); by default the first
    option the message refers to.

    >>> exc = UserError(f"target 'y' has 3 classes; use {option('task', 'multiclass')}")
    >>> str(exc), exc.render("cli"), exc.option
    ("target 'y' has 3 classes; use task='multiclass'", "target 'y' has 3 classes; use --task multiclass", 'task')
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        # One line, always: the CLI prints it as-is after "error: ".
        self.template = " ".join(getattr(message, "template", str(message)).split())
        first = _REFERENCE.search(self.template)
        self.option = option if option is not None else first.group(1) if first else None
        super().__init__(render(self.template, "python"))

    def render(self, style: str = "python", **kwargs: Any) -> str:
        """The message for a front door: see :func:`render`."""
        return render(self.template, style, **kwargs)


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


def cli_words(text: str) -> str:
    """A library message or notice with its option references written as the command line's flags."""
    return render(text, "cli", flags=FLAG_NAMES)
