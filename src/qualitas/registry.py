"""A small, explicit registry with "did you mean" errors and entry-point plug-ins.

Components register themselves with a decorator in the module that defines them;
packages import those modules explicitly (no import magic), either at once or, for modules
with heavy imports, through an explicit ``name -> module`` line (:meth:`Registry.declare`):
the module is imported when that name is first asked for, so that e.g. ``qualitas score
--metric psnr`` of a video pair does not import torch. Third-party packages can
add components through the entry-point group ``qualitas.<registry name>`` whose
value is a module (imported, so its decorators run) or a callable.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from qualitas.errors import ConfigError, UsageError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Name -> component mapping for one kind of component (metrics, models, losses...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._declared: dict[str, str] = {}
        self._plugins_loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` (defaults to ``obj.__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def declare(self, name: str, module: str) -> None:
        """Declare that importing ``module`` registers ``name``; :meth:`get` imports it on first use."""
        self._declared[name] = module

    def declared(self) -> dict[str, str]:
        """``{name: module}`` of the names declared with :meth:`declare`."""
        return dict(self._declared)

    def _resolve(self, name: str) -> None:
        module = self._declared.get(name)
        if module is not None and name not in self._items:
            importlib.import_module(module)
            if name not in self._items:
                raise ValueError(f"{self.kind} '{name}' is declared in {module}, which does not register it")

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=f"qualitas.{self.kind}"):
            loaded = ep.load()
            if callable(loaded) and ep.name not in self._items and ep.name not in self._declared:
                self._items[ep.name] = loaded

    def get(self, name: str) -> T:
        self._load_plugins()
        self._resolve(name)
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; "
                f"available: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(set(self._items) | set(self._declared))

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items or name in self._declared

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def parse_value(text: str) -> int | float | str:
    """A command-line value: an int, else a float, else the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_component(spec: str, what: str) -> tuple[str, dict[str, int | float | str]]:
    """``"name"`` or ``"name:key=value,key=value"`` -> ``(name, kwargs)``; ``what`` names the
    kind in the one-line error (``enhancer``, ``analytics``)."""
    name, _, rest = spec.partition(":")
    kwargs: dict[str, int | float | str] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise UsageError(f"{what} argument '{part}' is not key=value")
        kwargs[key.strip()] = parse_value(value.strip())
    return name, kwargs
