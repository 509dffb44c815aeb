"""``neuraltab train``'s flags, made from :class:`~neuraltab.config.TrainConfig`'s fields: each option's name, type,
help, choices and default are written once, in config.py, so the flags, the estimators' parameters and ``fit``'s
keywords cannot drift apart."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, List, Optional

import typer

from ..config import COLUMN_FIELDS, TrainConfig

__all__ = ["config_parameters", "with_parameters", "config_values"]

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _python_type(field: dataclasses.Field) -> type:
    """The scalar type of a field from its annotation ("int | None" is int; "tuple[str, ...]" is str)."""
    annotation = str(field.type).replace("tuple[", "").replace("| None", "")
    return next(t for name, t in _TYPES.items() if annotation.strip().startswith(name))


def _shown(field: dataclasses.Field) -> str:
    if field.default is None:
        return field.metadata["chosen"]
    if isinstance(field.default, tuple):
        return ",".join(map(str, field.default)) if field.default else "none"
    return str(field.default)


def config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field, as typer reads them, with the field's default (None where the
    value is chosen from the data, which the help then describes)."""
    params = []
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        meta, kind = field.metadata, _python_type(field)
        metavar = "[" + "|".join(meta["choices"]) + "]" if meta["choices"] else None
        if isinstance(field.default, bool):
            info = typer.Option(field.default, f"{flag}/--no-{flag[2:]}", help=meta["help"])
            annotation: Any = bool
        elif kind is bool:  # chosen from the data unless either flag is given
            info = typer.Option(None, f"{flag}/--no-{flag[2:]}", help=meta["help"], show_default=_shown(field))
            annotation = Optional[bool]
        elif isinstance(field.default, tuple):
            info = typer.Option(None, flag, help=meta["help"] + " Comma-separated, or the flag given more than once.",
                                show_default=_shown(field), metavar="WIDTHS" if kind is int else "COLUMNS")
            annotation = Optional[List[str]]
        elif field.default is None:
            info = typer.Option(None, flag, help=meta["help"], show_default=_shown(field), metavar=metavar)
            annotation = Optional[kind]
        else:
            info = typer.Option(field.default, flag, help=meta["help"], metavar=metavar)
            annotation = kind
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                        annotation=annotation))
    return params


def config_values(values: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig options of a command's arguments (None: chosen from the data); list flags given more than
    once are joined, and each value is split on commas."""
    options = {}
    for field in dataclasses.fields(TrainConfig):
        value = values.get(field.name)
        if value is None:
            continue
        if field.name in COLUMN_FIELDS:  # a name may hold a comma ("Amount, EUR"): split against the table's columns
            value = [item.strip() for item in value if item.strip()]
        elif isinstance(field.default, tuple):
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
        options[field.name] = value
    return options


def with_parameters(before: list[inspect.Parameter], after: list[inspect.Parameter]) -> Callable[[Callable], Callable]:
    """Give a command ``before`` + the config's parameters + ``after`` as its signature, for typer to read; the
    command receives them all as keyword arguments."""
    def decorate(fn: Callable) -> Callable:
        params = [*before, *config_parameters(), *after]
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn

    return decorate


def parameter(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """A command's own (non-config) parameter, for :func:`with_parameters`."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
