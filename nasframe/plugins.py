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
from collections.abc import Iterable
from typing import Any

import pluggy

from nasframe import hookspecs
from nasframe.errors import PluginError

ENTRY_POINT_GROUP = "nasframe"
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
