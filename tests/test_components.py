"""The component hook: what the core and each installed plugin declare, and `nasframe list`."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import sys

import pytest

import nasframe.data
import nasframe.evaluators
import nasframe.objectives
import nasframe.strategies
import nasframe.tabular
from conftest import ROOT
from nasframe import builtin, export, plugins
from nasframe.cli import main
from nasframe.plugins import BUILTIN_PLUGIN, NASPluginManager, installed_components

PAPER_PLUGINS = {
    "cream": {"strategies": ["nasframe_cream.strategy.CreamStrategy"]},
    "epsinas": {"evaluators": ["nasframe_epsinas.evaluator.EpsinasEvaluator"],
                "strategies": ["nasframe_epsinas.strategy.ZeroCostSearch"]},
    "seminas": {"strategies": ["nasframe_seminas.strategy.SemiNAS"]},
    "sswp": {"strategies": ["nasframe_sswp.strategy.SSWPStrategy"]},
}


def test_installed_components_lists_the_builtins_and_the_four_paper_plugins():
    listing = {plugin.name: plugin.to_dict() for plugin in installed_components()}
    core = listing[BUILTIN_PLUGIN]
    assert core["builtin"] and core["package"] == "nasframe" and core["version"] and core["error"] is None
    assert "nasframe.spaces.nb201.NB201Space" in core["components"]["spaces"]
    assert "nasframe.spaces.mbconv.MBConvSpace" in core["components"]["spaces"]
    for name, components in PAPER_PLUGINS.items():
        plugin = listing[name]
        assert (plugin["package"], plugin["error"], plugin["builtin"]) == ("nasframe", None, False)
        assert plugin["components"] == components


def test_builtin_plugin_declares_every_concrete_builtin_class():
    declared = {c for items in builtin.nasframe_components().values() for c in items}
    for package in (nasframe.strategies, nasframe.evaluators, nasframe.objectives, nasframe.data, nasframe.tabular):
        for name in package.__all__:
            klass = getattr(package, name)
            base_or_helper = name in ("Objective", "ImageArrayDataset")  # not abstract, but not for configs either
            if inspect.isclass(klass) and not inspect.isabstract(klass) and not base_or_helper:
                assert klass in declared, f"{package.__name__}.{name} is missing from nasframe.builtin"
    for name in ("SafetensorsExporter", "TorchExportExporter", "OnnxExporter"):
        assert getattr(export, name) in declared


def test_every_plugin_manager_registers_the_core_plugin_first():
    manager = NASPluginManager()
    assert manager.get_plugin(BUILTIN_PLUGIN) is builtin
    assert manager.hook.nasframe_components() == [builtin.nasframe_components()]


def test_list_json_parses_and_matches_installed_components(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "--json"])
    assert exit_info.value.code == 0
    listed = json.loads(capsys.readouterr().out)["plugins"]
    assert listed == [plugin.to_dict() for plugin in installed_components()]
    assert [p["name"] for p in listed][:1] == [BUILTIN_PLUGIN] and {"cream", "epsinas", "seminas", "sswp"} <= {p["name"] for p in listed}


def test_list_text_shows_each_plugin_and_its_components(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["list"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "nasframe (built in, package nasframe " in out
    assert "cream (package nasframe " in out and "strategies  nasframe_cream.strategy.CreamStrategy" in out


def broken_and_silent(monkeypatch):
    """One plugin that fails to import and one that declares nothing (today's third-party packages)."""
    entry_points = {
        "broken": importlib.metadata.EntryPoint("broken", "no_such_module_for_nasframe_tests", "nasframe"),
        "silent": importlib.metadata.EntryPoint("silent", "json", "nasframe"),  # a module without the hook
    }
    monkeypatch.setattr(plugins, "available_plugins", lambda: entry_points)


def test_a_plugin_that_fails_to_import_is_listed_with_its_error(monkeypatch, capsys):
    broken_and_silent(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        main(["list"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "broken (package (unknown))\n  error: failed to import 'no_such_module_for_nasframe_tests': ModuleNotFoundError" in out
    assert "Traceback" not in out
    assert "silent (package (unknown))\n  (declares no components" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "--strict", "--json"])
    assert exit_info.value.code == 1
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert listed["broken"]["error"].startswith("failed to import") and listed["silent"]["components"] == {}


def test_a_malformed_declaration_is_an_error_of_that_plugin(monkeypatch):
    bad = type(sys)("bad_components_plugin")
    bad.nasframe_components = lambda: {"spaces": "NB201Space"}  # a string, not a list of classes
    monkeypatch.setitem(sys.modules, "bad_components_plugin", bad)
    monkeypatch.setattr(plugins, "available_plugins",
                        lambda: {"bad": importlib.metadata.EntryPoint("bad", "bad_components_plugin", "nasframe")})
    listing = {p.name: p for p in installed_components()}
    assert "expected {kind: [classes]}" in listing["bad"].error and listing[BUILTIN_PLUGIN].error is None


def test_the_example_plugin_package_declares_its_space(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "plugin_package"))
    monkeypatch.setattr(plugins, "available_plugins",
                        lambda: {"example": importlib.metadata.EntryPoint("example", "nasframe_example", "nasframe")})
    try:
        listing = {p.name: p.to_dict() for p in installed_components()}
    finally:  # tests/test_cli.py checks that the package is not importable when it is not installed
        for name in [m for m in sys.modules if m.partition(".")[0] == "nasframe_example"]:
            del sys.modules[name]
    assert listing["example"]["components"] == {"spaces": ["nasframe_example.space.KernelChainSpace"]}
