import pytest

from nasframe import NASModule, Plugin, PluginError, hookimpl
from nasframe.plugins import NASPluginManager
from nasframe.spaces.nb201 import NB201Space
from nasframe.strategies import SinglePathStrategy


def tiny_space():
    return NB201Space(channels=4, cells_per_stage=1, in_channels=1, image_size=8)


class Misspelt(Plugin):
    def nasframe_sampel_architecture(self, generator):  # typo of nasframe_sample_architecture
        return None


def test_misspelt_hook_fails_at_load_naming_the_real_one():
    with pytest.raises(PluginError, match="nasframe_sample_architecture"):
        NASModule(tiny_space(), SinglePathStrategy(), plugins=[Misspelt()])


def test_unknown_plugin_name_lists_the_installed_ones():
    with pytest.raises(PluginError, match=r"unknown plugin 'no-such-plugin'; available plugins: "):
        NASModule(tiny_space(), SinglePathStrategy(), plugins=["no-such-plugin"])


def test_overriding_method_inherits_hook_options():
    class FirstOps(NB201Space):
        def sample(self, generator):  # no marker: inherits the base's hookimpl(specname=...)
            return self.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")

    manager = NASPluginManager()
    manager.register(FirstOps())
    assert manager.hook.nasframe_sample_architecture(generator=None).choices == ("none",) * 6


def test_tryfirst_plugin_overrides_a_builtin_hook():
    class AlwaysConv(Plugin):
        @hookimpl(tryfirst=True)
        def nasframe_sample_architecture(self, generator):
            return tiny_space().parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")

    nas = NASModule(tiny_space(), SinglePathStrategy(), plugins=[AlwaysConv()])
    assert set(nas.strategy.propose(nas).choices) == {"nor_conv_3x3"}


def test_autoload_can_be_disabled(monkeypatch):
    monkeypatch.setenv("NASFRAME_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = NASPluginManager()
    assert manager.load_entry_point_plugins() == []


def test_observer_plugin_sees_events():
    seen = []

    class Observer(Plugin):
        def nasframe_setup(self, nas):
            seen.append(type(nas.strategy).__name__)

    NASModule(tiny_space(), SinglePathStrategy(), plugins=[Observer()])
    assert seen == ["SinglePathStrategy"]
