"""The plugin manager: hook specs, entry-point plugins and plugin objects in one registry.

Built-in paper plugins and third-party packages are found the same way: through the ``nasframe``
entry-point group (``[project.entry-points.nasframe]`` in a ``pyproject.toml``). Setting the
environment variable ``NASFRAME_DISABLE_PLUGIN_AUTOLOAD`` turns autoloading off; plugins named in a
config's ``plugins:`` list are then still loaded (as ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` does).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pluggy

from nasframe import builtin, hookspecs
from nasframe.errors import PluginError

ENTRY_POINT_GROUP = "nasframe"
BUILTIN_PLUGIN = "nasframe"  # the name nasframe.builtin is registered under
# the kinds of nasframe_components (a plugin may add others; `nasframe list` shows them all)
COMPONENT_KINDS = ("spaces", "strategies", "evaluators", "objectives", "exporters", "datamodules", "benchmarks")
DISABLE_AUTOLOAD_ENV = "NASFRAME_DISABLE_PLUGIN_AUTOLOAD"
_HOOK_PREFIX = "nasframe_"
_DEFAULT_OPTS = dict(wrapper=False, hookwrapper=False, optionalhook=False, tryfirst=False, trylast=False, specname=None)


def available_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed entry-point plugins by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


class NASPluginManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager`` for the ``nasframe`` hooks.

    Like pytest, every callable attribute named ``nasframe_*`` is a hook implementation, marked or
    not, so that a misspelt name is caught by :meth:`check_pending` instead of being silently
    ignored. A method overriding a marked hook method inherits the base class's hook options.
    """

    def __init__(self) -> None:
        super().__init__("nasframe")
        self.add_hookspecs(hookspecs)
        self.register(builtin, name=BUILTIN_PLUGIN)  # the core's own plugin, before any installed one

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None:
            return opts
        if not (inspect.isclass(plugin) or inspect.ismodule(plugin)):
            for klass in type(plugin).__mro__:
                marked = getattr(klass.__dict__.get(name), "nasframe_impl", None)
                if marked is not None:
                    return {**_DEFAULT_OPTS, **marked}
        if name.startswith(_HOOK_PREFIX) and callable(getattr(plugin, name, None)):
            return dict(_DEFAULT_OPTS)
        return None

    def check_pending(self) -> None:
        """Fail if a plugin implements a hook that does not exist, naming the closest real hook."""
        known = [name for name in dir(hookspecs) if name.startswith(_HOOK_PREFIX)]
        for name in dir(self.hook):
            if not name.startswith(_HOOK_PREFIX) or name in known:
                continue
            for impl in getattr(self.hook, name).get_hookimpls():
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise PluginError(
                    f"plugin {self.get_name(impl.plugin)!r} implements unknown hook {name!r}.{hint} "
                    f"Known hooks: {', '.join(known)}."
                )
        super().check_pending()

    def load_entry_point_plugins(self, required: Iterable[str] = ()) -> list[str]:
        """Register entry-point plugins: all of them unless autoloading is disabled, and always the
        ``required`` names. Returns the names loaded. An unknown name fails listing the known ones."""
        found = available_plugins()
        required = list(required)
        unknown = [name for name in required if name not in found]
        if unknown:
            choices = ", ".join(sorted(found)) or "(none installed)"
            raise PluginError(f"unknown plugin {unknown[0]!r}; available plugins: {choices}.")
        names = required if os.environ.get(DISABLE_AUTOLOAD_ENV) else sorted(found)
        for name in names:
            if self.has_plugin(name) or self.is_blocked(name):
                continue
            try:
                plugin = found[name].load()
            except Exception as exc:  # a broken third-party package must not look like our bug
                raise PluginError(f"plugin {name!r} ({found[name].value}) failed to import: {exc!r}") from exc
            self.register(plugin, name=name)
        return names

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str | None, Any]]:
        """Call a collecting hook and return ``(plugin name, result)`` for every implementation, in
        pluggy's order (``None`` results included), so that a clash can name the plugins involved.

        Plain implementations are called one by one as pluggy would call them. A hook with a wrapper
        implementation goes through pluggy itself (the wrapper may change the results as a whole);
        its results then carry no plugin name."""
        caller = getattr(self.hook, hook_name)
        impls = caller.get_hookimpls()
        if any(impl.hookwrapper or impl.wrapper for impl in impls):
            return [(None, result) for result in caller(**kwargs)]
        results = []
        for impl in reversed(impls):
            missing = [name for name in impl.argnames if name not in kwargs]
            if missing:
                raise pluggy.HookCallError(f"hook call must provide argument {missing[0]!r}")
            results.append((impl.plugin_name, impl.function(*(kwargs[name] for name in impl.argnames))))
        return results

    def collect(self, hook_name: str, **kwargs: Any) -> dict[str, Any]:
        """Call a collecting hook whose implementations return ``{key: value}`` (or ``None``) and
        merge the dicts; a key returned by two plugins fails naming both (see ``merge_results``)."""
        return merge_results(hook_name, self.call_each(hook_name, **kwargs))


# What the keys of each merged collecting hook are, for error messages.
_KEY_KINDS = {
    "nasframe_loss_terms": "loss term",
    "nasframe_configure_optimizers": "optimizer name",
    "nasframe_state_dict": "search-state key",
    "nasframe_search_report": "report figure",
}


def merge_results(hook_name: str, results: Iterable[tuple[str | None, Mapping[str, Any] | None]]) -> dict[str, Any]:
    """Merge the ``{key: value}`` results of a collecting hook, given as ``(plugin name, result)``
    in call order (``NASPluginManager.call_each``). ``None`` and ``{}`` add nothing; a key returned
    twice fails with a ``PluginError`` naming both plugins; a result that is not a dict fails
    naming its plugin."""
    kind = _KEY_KINDS.get(hook_name, "key")
    merged: dict[str, Any] = {}
    owners: dict[str, str | None] = {}
    for plugin, result in results:
        if result is None:
            continue
        if not isinstance(result, Mapping):
            raise PluginError(f"{hook_name} of plugin {plugin or '(unknown)'!r} returned a {type(result).__name__}; "
                              "it must return a dict (or None)")
        for key, value in result.items():
            if key in merged:
                names = " and ".join(repr(p) if p else "(a plugin behind a hook wrapper)" for p in (owners[key], plugin))
                raise PluginError(f"plugins {names} both return the {kind} {key!r} from {hook_name}; "
                                  f"{kind}s must be unique across plugins: rename one of them or leave one plugin out")
            merged[key] = value
            owners[key] = plugin
    return merged


def plugin_name(component: Any) -> str:
    """The name a component object is registered under: its class name and identity."""
    return f"{type(component).__name__}-{id(component)}"


def make_plugin_manager(components: Iterable[Any], plugins: Sequence[Any] = ()) -> NASPluginManager:
    """A plugin manager holding the entry-point plugins (all of them, or only the names in
    ``plugins`` when autoloading is off; an unknown name fails listing the installed ones), the
    ``components`` (space, strategy, objectives, exporters...) and the plugin objects in
    ``plugins``, checked for misspelt hooks. Shared by ``NASModule``, ``SearchRunner`` and
    ``load_model``, so that every host registers plugins the same way."""
    manager = NASPluginManager()
    manager.load_entry_point_plugins([p for p in plugins if isinstance(p, str)])
    for component in [*components, *(p for p in plugins if not isinstance(p, str))]:
        if not manager.is_registered(component):
            manager.register(component, name=plugin_name(component))
    manager.check_pending()
    return manager


def search_components(search_space: Any, strategy: Any, objectives: Iterable[Any] = (), exporters: Iterable[Any] = ()) -> list[Any]:
    """The objects a search registers as plugins, in registration order: the space, the strategy
    and its sub-plugins (``strategy.subplugins()``, e.g. an evaluator with hooks), the objectives
    and the exporters."""
    return [search_space, strategy, *getattr(strategy, "subplugins", lambda: [])(), *objectives, *exporters]


# --------------------------------------------------------------------------------------------
# What is installed: the component hook, per plugin (``nasframe list``)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginComponents:
    """One plugin and what it adds. ``name`` is its entry-point name (``"nasframe"`` for the core's
    built-ins), ``package``/``version`` the distribution that installed it (``None`` where unknown),
    ``components`` its ``nasframe_components()`` by kind (empty where it declares none), ``error``
    why it could not be imported or asked (``None`` where it could)."""

    name: str
    package: str | None
    version: str | None
    components: dict[str, list[Any]] = field(default_factory=dict)
    error: str | None = None
    builtin: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: each component as its dotted path."""
        return {"name": self.name, "package": self.package, "version": self.version, "builtin": self.builtin,
                "components": {kind: [dotted_path(c) for c in items] for kind, items in self.components.items()},
                "error": self.error}


def dotted_path(component: Any) -> str:
    """``module.QualifiedName`` of a class or function (what a config's ``class_path`` takes)."""
    return f"{component.__module__}.{component.__qualname__}"


def installed_components() -> list[PluginComponents]:
    """The core's built-ins, then every installed entry-point plugin by name, each with the
    components its ``nasframe_components`` hook declares. Autoloading settings do not matter here:
    this lists what is installed. A plugin that fails to import, or whose hook fails or returns
    something other than ``{kind: [classes]}``, is listed with its error instead of raising."""
    core = _distribution_of(builtin.__name__)
    listing = [_ask(builtin, PluginComponents(BUILTIN_PLUGIN, *core, builtin=True))]
    for name, entry_point in sorted(available_plugins().items()):
        dist = entry_point.dist
        info = PluginComponents(name, dist.metadata["Name"] if dist else None, dist.version if dist else None)
        try:
            plugin = entry_point.load()
        except Exception as exc:  # any failure of third-party code is reported, not raised
            listing.append(replace(info, error=f"failed to import {entry_point.value!r}: {type(exc).__name__}: {exc}"))
            continue
        listing.append(_ask(plugin, info))
    return listing


def _ask(plugin: Any, info: PluginComponents) -> PluginComponents:
    """``info`` with the components ``plugin`` declares through its own ``nasframe_components``."""
    manager = NASPluginManager()  # its rules for what counts as a hook implementation
    try:
        if not manager.is_registered(plugin):
            manager.register(plugin, name=info.name)
        declared = [impl.function() for impl in manager.hook.nasframe_components.get_hookimpls() if impl.plugin is plugin]
    except Exception as exc:
        return replace(info, error=f"nasframe_components failed: {type(exc).__name__}: {exc}")
    components: dict[str, list[Any]] = {}
    for result in declared:
        if result is None:
            continue
        if not isinstance(result, dict) or not all(
                isinstance(kind, str) and isinstance(items, (list, tuple))
                and all(hasattr(c, "__module__") and hasattr(c, "__qualname__") for c in items)
                for kind, items in result.items()):
            return replace(info, error=f"nasframe_components returned {result!r}; expected {{kind: [classes]}}, "
                                       f"kinds such as {', '.join(COMPONENT_KINDS)}")
        for kind, items in result.items():
            components.setdefault(kind, []).extend(items)
    return replace(info, components=components)


def _distribution_of(module_name: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the installed distribution providing ``module_name``'s top package."""
    top = module_name.partition(".")[0]
    for dist_name in importlib.metadata.packages_distributions().get(top, []):
        try:
            return dist_name, importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None
