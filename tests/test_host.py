"""The plugin author's contract: the ``SearchHost`` protocol under both hosts, the trainer-free runner,
per-architecture generators, the unspent-budget check, the merge of collecting hooks and
``load_model`` through the build hook."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from torch import nn

from helpers import CountConvolutions, tiny_data, tiny_space, tiny_trainer
from nasframe import NASModule, NASTrainer, Plugin, SearchHost, hookimpl, load_model, unpack_batch
from nasframe.errors import DataError, NASFrameError, PluginError
from nasframe.export import SafetensorsExporter, export_model
from nasframe.objectives import Objective
from nasframe.plugins import make_plugin_manager, merge_results
from nasframe.runner import SearchRunner, run_search
from nasframe.spaces.nb201 import NB201Space
from nasframe.strategies import RandomSearch
from nasframe.strategies.base import SearchStrategy

pytestmark = pytest.mark.usefixtures("one_thread")

# what the protocol declares: methods, properties and attributes
PROTOCOL_MEMBERS = sorted({name for name in vars(SearchHost) if not name.startswith("_")} | set(SearchHost.__annotations__))


class ProtocolOnly:
    """The host seen through the protocol: using anything else fails the test."""

    def __init__(self, nas: object) -> None:
        object.__setattr__(self, "_nas", nas)

    def __getattr__(self, name: str):
        if name not in PROTOCOL_MEMBERS:
            raise AssertionError(f"the plugin used nas.{name}, which SearchHost does not declare")
        return getattr(self._nas, name)


class ProtocolStrategy(SearchStrategy):
    """A single-path strategy that touches the host only through ``SearchHost`` (every member once)."""

    needs_supernet = True

    def __init__(self, steps: int = 3, seed: int = 0) -> None:
        super().__init__(seed)
        self.steps = steps
        self.extra = nn.Parameter(torch.zeros(2))
        self.seen: list[dict] = []

    def configure_optimizers(self, nas):
        return {"extra": torch.optim.SGD([self.extra], lr=0.1)}

    def search_step(self, nas, batch, batch_idx):
        nas = ProtocolOnly(nas)
        assert nas.search_space is not None and nas.supernet is not None and nas.strategy is self
        architecture = nas.hook.nasframe_sample_architecture(generator=self.generator)
        step = nas.new_step(batch, architecture)
        weights = nas.optimizer("weights")
        weights.zero_grad()
        loss = nas.compute_loss(step)
        nas.manual_backward(loss)
        weights.step()
        before = nas.global_step
        raw = nas.raw_optimizer("extra")
        assert isinstance(raw, torch.optim.Optimizer)
        raw.zero_grad()
        nas.manual_backward((self.extra - 1).pow(2).sum())
        raw.step()
        assert nas.global_step == before, "a raw optimizer's step is not a counted step"
        nas.count_step("extra")
        views, targets = unpack_batch(batch, nas.device)
        self.seen.append({
            "architecture": architecture, "global_step": nas.global_step, "epoch": nas.current_epoch,
            "accuracy": nas.batch_accuracy(step), "mean": float(nas.all_ranks_mean(loss.detach())),
            "shared": nas.broadcast(len(self.seen)), "world": nas.world_size, "zero": nas.is_global_zero,
            "scores": nas.map_across_ranks([1, 2], lambda items: torch.tensor(items, dtype=torch.float)).tolist(),
            "noise": torch.rand(2, generator=nas.generator_for(architecture)).tolist(),
            "limits": nas.search_limits(), "datamodule": nas.datamodule, "on_device": views[0].device == nas.device,
        })
        nas.log_metrics({"protocol/loss": float(loss.detach())})
        if len(self.seen) >= self.steps:
            nas.stop_search()
        return loss.detach()

    def current_architecture(self, nas):
        return self.seen[-1]["architecture"] if self.seen else None


def first_batch():
    data = tiny_data()
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def test_both_hosts_implement_every_protocol_member():
    assert {"hook", "search_space", "supernet", "strategy", "device", "new_step", "compute_loss", "manual_backward",
            "optimizer", "raw_optimizer", "count_step", "batch_accuracy", "all_ranks_mean", "broadcast",
            "map_across_ranks", "log_metrics", "stop_search", "global_step", "current_epoch", "is_global_zero",
            "world_size", "datamodule", "generator_for"} <= set(PROTOCOL_MEMBERS)
    hosts = [NASModule(tiny_space(), ProtocolStrategy()), SearchRunner(tiny_space(), ProtocolStrategy())]
    for host in hosts:
        assert isinstance(host, SearchHost)
        for name in PROTOCOL_MEMBERS:
            assert hasattr(host, name), f"{type(host).__name__} lacks {name}"
            declared = inspect.getattr_static(SearchHost, name, None)
            if inspect.isfunction(declared):  # the implementation accepts every parameter the protocol names
                wanted = list(inspect.signature(declared).parameters)[1:]
                offered = inspect.signature(getattr(host, name)).parameters
                assert all(p in offered for p in wanted), f"{type(host).__name__}.{name} lacks parameters of {wanted}"
    assert not isinstance(object(), SearchHost)


def test_a_plugin_using_only_the_protocol_runs_under_both_hosts(tmp_path):
    under_trainer = ProtocolStrategy()
    nas = NASModule(tiny_space(), under_trainer, export_dir=str(tmp_path / "export"))
    tiny_trainer(tmp_path, max_steps=50).fit(nas, datamodule=tiny_data())
    runner_strategy = ProtocolStrategy()
    runner = SearchRunner(tiny_space(), runner_strategy)
    final = runner.run(first_batch())

    for seen in (under_trainer.seen, runner_strategy.seen):
        assert [s["global_step"] for s in seen] == [2, 4, 6]  # the weights step and the counted "extra" step
        assert all(s["world"] == 1 and s["zero"] and s["scores"] == [1.0, 2.0] and s["on_device"] for s in seen)
        assert [s["shared"] for s in seen] == [0, 1, 2] and all(s["accuracy"] is not None for s in seen)
    assert [s["architecture"] for s in under_trainer.seen] == [s["architecture"] for s in runner_strategy.seen]
    assert [s["noise"] for s in under_trainer.seen] == [s["noise"] for s in runner_strategy.seen]
    assert under_trainer.seen[0]["datamodule"] is not None and runner_strategy.seen[0]["datamodule"] is None
    assert under_trainer.seen[0]["limits"].max_steps == 50 and runner_strategy.seen[0]["limits"].max_epochs == 1
    assert final == runner_strategy.seen[-1]["architecture"] and runner.metrics["protocol/loss"] > 0
    assert torch.allclose(runner_strategy.extra, torch.full((2,), 1 - 0.8**3))  # three raw SGD steps did run
    assert (tmp_path / "export" / "model.safetensors").is_file()


class NoisyEvaluator(CountConvolutions):
    """Convolutions plus noise from the host's per-architecture generator."""

    def score(self, nas, architectures, batch):
        noise = [float(torch.rand((), generator=nas.generator_for(a))) for a in architectures]
        return super().score(nas, architectures, batch) + torch.tensor(noise)


def test_generator_for_depends_only_on_seed_and_architecture():
    space = NB201Space()
    architectures = [space.sample(torch.Generator().manual_seed(i)) for i in range(6)]
    runner = SearchRunner(space, RandomSearch(NoisyEvaluator(), budget=6, seed=3))
    forward = runner.strategy.evaluator.score(runner, architectures, None)
    backward = runner.strategy.evaluator.score(runner, architectures[::-1], None)
    alone = torch.cat([runner.strategy.evaluator.score(runner, [a], None) for a in architectures])
    assert torch.equal(forward, backward.flip(0)) and torch.equal(forward, alone)
    # the same under the other host, and another draw for another strategy seed or salt
    module = NASModule(space, RandomSearch(NoisyEvaluator(), budget=6, seed=3))
    assert torch.equal(module.generator_for(architectures[0]).get_state(), runner.generator_for(architectures[0]).get_state())
    other = NASModule(space, RandomSearch(NoisyEvaluator(), budget=6, seed=4))
    assert not torch.equal(other.generator_for(architectures[0]).get_state(), runner.generator_for(architectures[0]).get_state())
    assert not torch.equal(runner.generator_for(architectures[0], salt="x").get_state(),
                           runner.generator_for(architectures[0]).get_state())
    # whole searches: the scores of each architecture do not depend on how candidates are grouped
    one, five = (RandomSearch(NoisyEvaluator(), budget=10, candidates_per_step=k, seed=1) for k in (1, 5))
    run_search(space, one), run_search(space, five)
    assert dict(one.history) == dict(five.history)


@pytest.mark.parametrize("host", ["module", "runner"])
def test_a_search_that_ends_before_its_budget_warns_or_fails(tmp_path, host):
    def search(**args):
        strategy = RandomSearch(CountConvolutions(), budget=50, candidates_per_step=5, **args)
        if host == "runner":
            return run_search(NB201Space(), strategy, max_steps=2)
        nas = NASModule(NB201Space(), strategy, export_dir=str(tmp_path / f"export{len(list(tmp_path.iterdir()))}"))
        tiny_trainer(tmp_path, max_steps=2).fit(nas)
        return nas.final_architecture

    with pytest.warns(UserWarning, match=r"RandomSearch evaluated 10 of its budget of 50 architectures.*max_epochs"):
        assert search() is not None
    with pytest.raises(NASFrameError, match="evaluated 10 of its budget of 50"):
        search(on_budget_unspent="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a spent budget says nothing
        strategy = RandomSearch(CountConvolutions(), budget=10, candidates_per_step=5)
        run_search(NB201Space(), strategy, max_steps=2)
    with pytest.raises(NASFrameError, match="on_budget_unspent must be one of"):
        RandomSearch(CountConvolutions(), on_budget_unspent="ignore")


def test_an_exhausted_space_ends_the_search_without_a_warning():
    class FewCandidates(RandomSearch):
        def ask(self, nas):
            return super().ask(nas) if not self.history else []  # as if the space held 5 architectures

    strategy = FewCandidates(CountConvolutions(), budget=50, candidates_per_step=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_search(NB201Space(), strategy)
    assert len(strategy.history) == 5 and strategy.exhausted
    assert strategy.search_state()["exhausted"] is True


class Named(Objective):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.term = name

    def loss_terms(self, step):
        return {self.term: step.logits(0).sum() * 0.0}


def test_a_key_returned_by_two_plugins_fails_naming_both():
    with pytest.raises(PluginError, match=r"plugins 'a' and 'b' both return the loss term 'x' from nasframe_loss_terms"):
        merge_results("nasframe_loss_terms", [("a", {"x": 1}), ("c", None), ("b", {"y": 2, "x": 3})])
    with pytest.raises(PluginError, match=r"nasframe_state_dict of plugin 'a' returned a list"):
        merge_results("nasframe_state_dict", [("a", [1])])
    runner = SearchRunner(tiny_space(), ProtocolStrategy(), objectives=[Named("shared"), Named("shared")])
    step = runner.new_step(first_batch(), runner.search_space.sample(torch.Generator().manual_seed(0)))
    with pytest.raises(PluginError, match=r"plugins 'Named-\d+' and 'Named-\d+' both return the loss term 'shared'"):
        runner.compute_loss(step)

    class SameKey(Plugin):
        def nasframe_state_dict(self, nas):
            return {"strategy.RandomSearch": 1}

    nas = NASModule(NB201Space(), RandomSearch(CountConvolutions()), plugins=[SameKey()])
    with pytest.raises(PluginError, match=r"'SameKey-\d+' and 'RandomSearch-\d+' both return the search-state key"):
        nas.on_save_checkpoint({})
    with pytest.raises(PluginError, match="optimizer name 'extra'"):
        SearchRunner(tiny_space(), ProtocolStrategy(), plugins=[type("Extra", (Plugin,), {
            "nasframe_configure_optimizers": lambda self, nas: {"extra": torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1)}})()])


def test_load_model_builds_through_the_hook(tmp_path):
    space = tiny_space()
    architecture = space.sample(torch.Generator().manual_seed(0))
    manager = make_plugin_manager([space, SafetensorsExporter()])
    export_model(manager.hook, space, architecture, space.build(architecture).eval(), None, tmp_path / "export")

    class Override(Plugin):
        calls: list = []

        @hookimpl(tryfirst=True)
        def nasframe_build_network(self, architecture):
            network = space.build(architecture)
            network.built_by_override = True
            self.calls.append(architecture)
            return network

    override = Override()
    loaded = load_model(tmp_path / "export", plugins=[override])
    assert override.calls == [architecture] and getattr(loaded, "built_by_override", False)
    assert not hasattr(load_model(tmp_path / "export"), "built_by_override")  # the space's own build by default


def test_unpack_batch_formats_and_device():
    images, targets = torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, -1, 2])
    for batch in ((images, targets), {"weights": (images, targets), "architecture": (images, targets)}):
        views, got = unpack_batch(batch, "cpu")
        assert len(views) == 1 and views[0] is images and got is targets
    views, got = unpack_batch(([images, images + 1], targets))
    assert len(views) == 2 and got is targets
    assert unpack_batch(images)[1] is None
    with pytest.raises(DataError, match="holds no image tensors"):
        unpack_batch(7)


def test_the_seminas_runner_names_are_deprecated_aliases():
    import nasframe_seminas.loop as loop

    loop._warned.clear()
    strategy = RandomSearch(CountConvolutions(), budget=4, candidates_per_step=4)
    with pytest.warns(DeprecationWarning, match="nasframe.runner.run_search"):
        loop.run_search(NB201Space(), strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # once only
        loop.run_search(NB201Space(), RandomSearch(CountConvolutions(), budget=4, candidates_per_step=4))
    assert len(strategy.history) == 4


def test_nas_trainer_asks_ddp_to_find_unused_parameters(tmp_path):
    args = dict(accelerator="cpu", devices=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                default_root_dir=str(tmp_path))
    for strategy in ("ddp", "auto"):
        trainer = NASTrainer(strategy=strategy, **args)
        assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True  # test-only look inside
    from lightning.pytorch.strategies import DDPStrategy

    given = DDPStrategy(find_unused_parameters=False)
    assert NASTrainer(strategy=given, **args).strategy is given  # an object is used as given
