"""Name-to-builder registries for models, backbones and losses.

Each entry pairs a builder with its config dataclass, so a YAML block becomes typed settings
before anything is built (STYLE section 3, "One registry"). A name registered twice is an error;
an unknown name lists the known ones. The registries import the modules that fill them on first
lookup, so ``import tfcovid.registry`` stays cheap (no TensorFlow).

Example:

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class WidgetConfig:
...     size: int = 3
>>> WIDGETS = Registry("widget", key="widget.name")
>>> @WIDGETS.register("square", config=WidgetConfig)
... def build_square(cfg):
...     return cfg.size**2
>>> WIDGETS.build("square", size=4), WIDGETS.build("square", WidgetConfig(size=5))
(16, 25)
>>> WIDGETS.build("circle")
Traceback (most recent call last):
    ...
tfcovid.errors.ConfigError: widget.name: unknown widget 'circle'; known: square
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from tfcovid.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered builder.

    Attributes:
        builder: callable. Called as ``builder(cfg)`` when ``config`` is set, else
            ``builder(**kwargs)``.
        config: frozen dataclass type of the builder's settings, or None for builders that
            take keyword arguments directly (backbones, built from a model's settings).
    """

    builder: Callable[..., Any]
    config: type | None


class Registry:
    """A name-to-builder table for one kind of component.

    Args:
        kind: str. What the entries build, used in messages ("model", "backbone", "loss").
        key: str. The dotted config key that names an entry, used in messages ("model.name").
        modules: tuple of str. Modules imported on first lookup; importing them registers the
            entries. Defaults to none.
    """

    def __init__(self, kind: str, key: str, modules: tuple[str, ...] = ()):
        self.kind, self.key, self.modules = kind, key, tuple(modules)
        self._entries: dict[str, Entry] = {}
        self._imported = not self.modules

    def register(self, name: str, config: type | None = None) -> Callable:
        """Decorator registering ``builder`` under ``name``.

        Args:
            name: str. Registry name, e.g. "infnet".
            config: frozen dataclass type taken by the builder, or None when the builder takes
                keyword arguments.

        Raises:
            ValueError: ``name`` is already registered, or ``config`` is not a dataclass.
        """
        if config is not None and not dataclasses.is_dataclass(config):
            raise ValueError(f"config must be a dataclass type. Received: config={config!r}")

        def decorator(builder: Callable) -> Callable:
            if name in self._entries:
                previous = self._entries[name].builder
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by "
                    f"{previous.__module__}.{previous.__qualname__}. Received: name={name!r}")
            self._entries[name] = Entry(builder, config)
            return builder

        return decorator

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        self._import_modules()
        return tuple(sorted(self._entries))

    def entry(self, name: str) -> Entry:
        """The entry registered as ``name``.

        Raises:
            ConfigError: ``name`` is not registered; the message lists the known names.
        """
        self._import_modules()
        if name not in self._entries:
            raise ConfigError(f"{self.key}: unknown {self.kind} {name!r}; "
                              f"known: {', '.join(self.names())}")
        return self._entries[name]

    def config(self, name: str) -> type | None:
        """The config dataclass of ``name`` (None for keyword-argument builders)."""
        return self.entry(name).config

    def build(self, name: str, cfg: Any = None, /, **kwargs) -> Any:
        """Builds ``name`` from a config instance, a mapping, keyword arguments, or a mix.

        Args:
            name: str. Registered name.
            cfg: an instance of the entry's config dataclass, a mapping of its fields, or None
                (the dataclass defaults).
            **kwargs: fields overriding those of ``cfg``; for builders without a config
                dataclass, the builder's keyword arguments.

        Returns:
            What the builder returns.

        Raises:
            ConfigError: unknown ``name``, or an option the entry's config does not have.
            TypeError: ``cfg`` is neither a mapping nor the entry's config dataclass.
        """
        entry = self.entry(name)
        if entry.config is None:
            if cfg is not None and not isinstance(cfg, Mapping):
                raise TypeError(f"cfg of {self.kind} {name!r} must be a mapping of keyword "
                                f"arguments. Received: cfg={cfg!r}")
            return entry.builder(**{**(cfg or {}), **kwargs})
        if isinstance(cfg, entry.config):
            kwargs = {**dataclasses.asdict(cfg), **kwargs}
        elif isinstance(cfg, Mapping):
            kwargs = {**cfg, **kwargs}
        elif cfg is not None:
            raise TypeError(f"cfg of {self.kind} {name!r} must be a {entry.config.__name__} or a "
                            f"mapping. Received: cfg={cfg!r}")
        fields = [field.name for field in dataclasses.fields(entry.config)]
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise ConfigError(f"{self.kind} {name!r}: unknown option {unknown[0]!r}; "
                              f"known: {', '.join(fields)}")
        return entry.builder(entry.config(**kwargs))

    def _import_modules(self) -> None:
        if not self._imported:
            for module in self.modules:
                importlib.import_module(module)
            self._imported = True


MODELS = Registry("model", key="model.name", modules=("tfcovid.models",))
BACKBONES = Registry("backbone", key="model.backbone", modules=("tfcovid.models.backbones",))
LOSSES = Registry("loss", key="loss.name", modules=("tfcovid.losses",))
