"""Input selectors: how a step's input is taken from the execution context (FEATURES A4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from flowmonkey.model.base import FrozenModel


class KeySelector(FrozenModel):
    """``context[key]``."""

    type: Literal["key"] = "key"
    key: str = Field(min_length=1)


class KeysSelector(FrozenModel):
    """``{k: context[k] for k in keys}``."""

    type: Literal["keys"] = "keys"
    keys: list[str]


class PathSelector(FrozenModel):
    """A dot path into the context, e.g. ``user.profile.email``."""

    type: Literal["path"] = "path"
    path: str = Field(min_length=1)


class TemplateSelector(FrozenModel):
    """``${a.b}`` interpolation in strings, applied through nested dicts and lists."""

    type: Literal["template"] = "template"
    template: Any


class FullSelector(FrozenModel):
    """The whole context."""

    type: Literal["full"] = "full"


class StaticSelector(FrozenModel):
    """A constant value."""

    type: Literal["static"] = "static"
    value: Any = None


InputSelector = Annotated[
    KeySelector | KeysSelector | PathSelector | TemplateSelector | FullSelector | StaticSelector,
    Field(discriminator="type"),
]
