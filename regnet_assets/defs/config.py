"""Dagster run config that takes its names and defaults from the science dataclasses.

Each ``dg.Config`` that feeds a science dataclass declares its fields with :func:`science_field`
(the default is read from the dataclass, so the two cannot drift) and builds the dataclass with
:func:`to_science`. ``config_drift`` lists any field whose name or default disagrees; a test
runs it over every pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dagster as dg
from pydantic import Field


def _science_default(science_cls, name: str) -> Any:
    field = {f.name: f for f in dataclasses.fields(science_cls)}[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{science_cls.__name__}.{name} has no default")


def science_field(science_cls, name: str, description: str, **kwargs) -> Any:
    """A pydantic ``Field`` whose default is ``science_cls``'s default for ``name``."""
    return Field(default=_science_default(science_cls, name), description=description, **kwargs)


def to_science(config: dg.Config, science_cls, **overrides):
    """``science_cls`` built from the config fields it shares with ``config``, plus ``overrides``."""
    names = {f.name for f in dataclasses.fields(science_cls)}
    values = {k: v for k, v in config.model_dump().items() if k in names}
    return science_cls(**{**values, **overrides})


def config_drift(config_cls: type[dg.Config], science_cls, dagster_only: set[str] = frozenset()) -> list[str]:
    """Fields of ``config_cls`` that are not in ``science_cls`` (bar ``dagster_only``) or whose
    default differs from the science default; empty when the two are in step."""
    science = {f.name for f in dataclasses.fields(science_cls)}
    problems = []
    for name, info in config_cls.model_fields.items():
        if name in dagster_only:
            continue
        if name not in science:
            problems.append(f"{config_cls.__name__}.{name} is not a field of {science_cls.__name__}")
            continue
        default = _science_default(science_cls, name)
        if info.default != default:
            problems.append(
                f"{config_cls.__name__}.{name} defaults to {info.default!r}, "
                f"{science_cls.__name__}.{name} to {default!r}"
            )
    return problems
