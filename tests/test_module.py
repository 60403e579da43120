import math

import pytest
import torch
from torch import nn

from helpers import CountConvolutions, tiny_data, tiny_space, tiny_trainer
from nasframe import CheckpointError, ExportError, NASFrameError, NASModule, load_model
from nasframe.export import TorchExportExporter, SafetensorsExporter
from nasframe.spaces.nb201 import OPERATIONS
from nasframe.strategies import DifferentiableStrategy, RandomSearch, RegularizedEvolution, SinglePathStrategy


def test_single_path_search_exports_a_model_equal_to_the_supernet_path(tmp_path):
    nas = NASModule(tiny_space(), SinglePathStrategy(seed=1), exporters=[SafetensorsExporter(), TorchExportExporter()],
                    export_dir=str(tmp_path / "export"))
    tiny_trainer(tmp_path).fit(nas, datamodule=tiny_data())
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["architecture.json", "model.pt2", "model.safetensors", "nasframe-export.json"]
    loaded = load_model(tmp_path / "export")
    x = torch.randn(5, 1, 8, 8)
    nas.supernet.eval()
    assert not any(isinstance(m, nn.ModuleDict) for m in loaded.modules()), "the loaded model has no supernet parts"
    torch.testing.assert_close(loaded(x), nas.supernet(x, nas.final_architecture), rtol=0, atol=0)
    program = torch.export.load(str(tmp_path / "export" / "model.pt2"))
    torch.testing.assert_close(program.module()(x), loaded(x))


def test_every_loss_term_is_logged_by_name(tmp_path):
    nas = NASModule(tiny_space(), SinglePathStrategy(), export_dir=str(tmp_path / "e"))
    trainer = tiny_trainer(tmp_path, val_check_interval=3)
    trainer.fit(nas, datamodule=tiny_data())
    assert {"train/cross_entropy_epoch", "train/loss_epoch", "val/cross_entropy", "val/accuracy"} <= set(trainer.callback_metrics)


def test_sample_based_search_stops_at_budget_and_returns_best(tmp_path):
    strategy = RandomSearch(CountConvolutions(), budget=12, candidates_per_step=5, seed=3)
    nas = NASModule(tiny_space(), strategy, export_dir=str(tmp_path / "e"))
    tiny_trainer(tmp_path, max_steps=100).fit(nas)
    assert len(strategy.history) == 12 and len(set(a for a, _ in strategy.history)) == 12
    assert strategy.evaluator.queries == 12
    best = max(s for _, s in strategy.history)
    assert nas.final_architecture.choices.count("nor_conv_3x3") == best
    assert nas.supernet is None and load_model(tmp_path / "e") is not None


def test_regularized_evolution_improves_on_its_random_start(tmp_path):
    strategy = RegularizedEvolution(CountConvolutions(), budget=60, population_size=10, sample_size=3, seed=0)
    nas = NASModule(tiny_space(), strategy, export_dir=str(tmp_path / "e"))
    tiny_trainer(tmp_path, max_steps=200).fit(nas)
    first, rest = [s for _, s in strategy.history[:10]], [s for _, s in strategy.history[10:]]
    assert max(rest) > max(first) and max(rest) >= 5


class Mixture(DifferentiableStrategy):
    """DARTS-style softmax mixture over NB201's edges, enough to exercise the bi-level loop."""

    def __init__(self):
        super().__init__(architecture_every=2, architecture_lr=0.1)
        self.alpha = nn.Parameter(torch.zeros(6, len(OPERATIONS)))

    def architecture_parameters(self):
        return [self.alpha]

    def relaxation(self, nas, stage):
        return self.alpha.softmax(-1)

    def current_architecture(self, nas):
        return nas.search_space.validate(type(nas.final_architecture or nas.search_space.sample(torch.Generator()))(
            "nb201", tuple(OPERATIONS[i] for i in self.alpha.argmax(-1).tolist())))


def test_differentiable_search_updates_architecture_parameters_on_their_own_split(tmp_path):
    strategy = Mixture()
    nas = NASModule(tiny_space(), strategy, export_dir=str(tmp_path / "e"))
    tiny_trainer(tmp_path, max_steps=4 * 2).fit(nas, datamodule=tiny_data(architecture_split=0.5))
    # Lightning counts every optimizer step in max_steps: 5 weight steps + 3 architecture steps = 8
    assert strategy.step_count == 5 and not torch.equal(strategy.alpha.detach(), torch.zeros(6, 5))
    assert (tmp_path / "e" / "model.safetensors").is_file()


def test_nan_loss_fails_with_a_clear_message(tmp_path):
    class Poison(SinglePathStrategy):
        def before_loss(self, nas, step):
            step.term_weights["cross_entropy"] = math.nan

    nas = NASModule(tiny_space(), Poison(), export_dir=str(tmp_path / "e"))
    with pytest.raises(NASFrameError, match="loss is not finite"):
        tiny_trainer(tmp_path).fit(nas, datamodule=tiny_data())
    assert not (tmp_path / "e").exists()


def test_batches_without_labels_pass_but_an_epoch_without_labels_fails(tmp_path):
    # 5% labels in batches of 4: most batches hold no label and teach cross-entropy nothing
    nas = NASModule(tiny_space(), SinglePathStrategy(seed=0), export_dir=str(tmp_path / "e"))
    before = {k: v.clone() for k, v in nas.supernet.state_dict().items()}
    tiny_trainer(tmp_path, max_steps=-1, max_epochs=1).fit(nas, datamodule=tiny_data(batch_size=4, limit_train=64, label_fraction=0.05))
    assert nas._unlabelled_train_batches > 0 and nas._train_batches_with_loss > 0
    assert any(not torch.equal(before[k], v) for k, v in nas.supernet.state_dict().items())

    nas = NASModule(tiny_space(), SinglePathStrategy(seed=0), export_dir=str(tmp_path / "e2"))
    # 0.5% of 64 images rounds to no label at all (label_fraction 0 fails on the first batch: test_objectives)
    with pytest.raises(NASFrameError, match=r"no training batch of epoch 0 held a labelled image.*\['CrossEntropy'\].*label_fraction"):
        tiny_trainer(tmp_path, max_steps=-1, max_epochs=1).fit(nas, datamodule=tiny_data(batch_size=4, limit_train=64, label_fraction=0.005))
    assert not (tmp_path / "e2").exists()


def test_existing_export_dir_fails_before_any_work(tmp_path):
    (tmp_path / "e").mkdir()
    nas = NASModule(tiny_space(), SinglePathStrategy(), export_dir=str(tmp_path / "e"))
    with pytest.raises(ExportError, match="already exists"):
        tiny_trainer(tmp_path).fit(nas, datamodule=tiny_data())
    assert nas.strategy.last_architecture is None


def test_damaged_exports_fail_clearly(tmp_path):
    nas = NASModule(tiny_space(), RandomSearch(CountConvolutions(), budget=3), export_dir=str(tmp_path / "e"))
    tiny_trainer(tmp_path, max_steps=10).fit(nas)
    weights = tmp_path / "e" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "e")
    (tmp_path / "e" / "architecture.json").write_text("{not json")
    with pytest.raises(ExportError, match="not valid JSON"):
        load_model(tmp_path / "e")
    with pytest.raises(ExportError, match="does not exist"):
        load_model(tmp_path / "missing")


def test_search_state_survives_a_checkpoint(tmp_path):
    def run(max_steps, ckpt_path=None):
        strategy = RegularizedEvolution(CountConvolutions(), budget=30, population_size=8, sample_size=3, seed=5)
        nas = NASModule(tiny_space(), strategy, export_dir=str(tmp_path / f"e{max_steps}{bool(ckpt_path)}"))
        trainer = tiny_trainer(tmp_path, max_steps=max_steps, enable_checkpointing=True, max_epochs=-1)
        trainer.fit(nas, ckpt_path=ckpt_path)
        return strategy, trainer

    full, _ = run(30)
    partial, trainer = run(12)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    checkpoint = torch.load(tmp_path / "mid.ckpt", weights_only=True)  # weights-only loadable
    assert "strategy.RegularizedEvolution" in checkpoint["nasframe"]["state"]
    resumed, _ = run(30, ckpt_path=str(tmp_path / "mid.ckpt"))
    assert resumed.history == full.history and resumed.population == full.population


def test_weight_sharing_evaluator_scores_paths_with_a_trained_supernet(tmp_path):
    trained = NASModule(tiny_space(), SinglePathStrategy(), export_dir=str(tmp_path / "e1"))
    trainer = tiny_trainer(tmp_path, max_steps=8)
    trainer.fit(trained, datamodule=tiny_data())
    trainer.save_checkpoint(tmp_path / "supernet.ckpt")

    from nasframe.evaluators import WeightSharingEvaluator

    strategy = RandomSearch(WeightSharingEvaluator(checkpoint=str(tmp_path / "supernet.ckpt")), budget=6, candidates_per_step=3)
    search = NASModule(tiny_space(), strategy, export_dir=str(tmp_path / "e2"))
    assert search.supernet is not None, "a weight-sharing evaluator makes the module build the supernet"
    search_trainer = tiny_trainer(tmp_path, max_steps=10)
    search_trainer.fit(search, datamodule=tiny_data())
    assert search_trainer.global_step == 2, "each search step counts once, with no weight optimizer"
    for name, value in trained.supernet.state_dict().items():
        torch.testing.assert_close(search.supernet.state_dict()[name], value)
    scores = [s for _, s in strategy.history]
    assert len(scores) == 6 and all(0.0 <= s <= 100.0 for s in scores)
    # the export carries the supernet's weights for the chosen path (weight preserving)
    torch.testing.assert_close(load_model(tmp_path / "e2")(torch.ones(2, 1, 8, 8)),
                               search.final_network(search.final_architecture)(torch.ones(2, 1, 8, 8)))


def test_recalibrated_scores_do_not_depend_on_order_and_leave_the_supernet_alone():
    from nasframe.evaluators import WeightSharingEvaluator

    space = tiny_space(bn_track_running_stats=True)
    nas = NASModule(space, RandomSearch(WeightSharingEvaluator(recalibrate_bn=True)))
    generator = torch.Generator().manual_seed(0)
    architectures = [space.sample(generator) for _ in range(4)]
    x, y = torch.randn(16, 1, 8, 8, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    before = {k: v.clone() for k, v in nas.supernet.state_dict().items()}
    evaluator = WeightSharingEvaluator(recalibrate_bn=True)
    forward = evaluator.score(nas, architectures, (x, y))
    backward = evaluator.score(nas, architectures[::-1], (x, y)).flip(0)
    torch.testing.assert_close(forward, backward)
    for name, value in nas.supernet.state_dict().items():
        torch.testing.assert_close(value, before[name])
