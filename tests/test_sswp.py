"""SSWP-NAS plugin: binary gates, rescaling, schedule, memory, and a label-free search from YAML."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from nasframe import NASFrameError, load_model
from nasframe.cli import main
from nasframe.spaces.darts import EDGE_INDEX, DARTSSpace
from nasframe_sswp import Schedule, SSWPStrategy, binary_gates, rescale_, single_paths

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures('native_cpu_kernels')


def tiny() -> DARTSSpace:
    return DARTSSpace(cells=3, channels=2, stem_multiplier=2, in_channels=1, image_size=8)


def test_binary_gates_have_two_paths_one_active_and_proxyless_gradients():
    torch.manual_seed(0)
    alpha = torch.randn(3, 14, 7, requires_grad=True)
    paths, sample = binary_gates(alpha, torch.Generator().manual_seed(0))
    assert paths.active.sum(-1).eq(2).all() and paths.detached.sum(-1).eq(1).all()
    assert not (paths.detached & ~paths.active).any()
    assert set(paths.weights.detach().unique().tolist()) == {0.0, 1.0}, "gate values are exactly binary"
    assert paths.weights.detach()[paths.active & ~paths.detached].eq(1).all()
    # with L = sum c * g, dL/dg = c, and ProxylessNAS's estimate is dL/da_i = sum_j c_j p_j (delta_ij - p_i)
    c = torch.randn(3, 14, 7)
    (c * paths.weights).sum().backward()
    expected = torch.zeros_like(alpha)
    p = alpha.detach().gather(-1, sample.indices).softmax(-1)
    cg = c.gather(-1, sample.indices)
    grad = p * cg - p * (p * cg).sum(-1, keepdim=True)
    expected.scatter_(-1, sample.indices, grad)
    torch.testing.assert_close(alpha.grad, expected)


def test_inactive_path_trains_no_weights_and_frees_its_activations():
    space = tiny()
    supernet = space.supernet()
    alpha = torch.zeros(space.parameter_shape, requires_grad=True)
    paths, sample = binary_gates(alpha, torch.Generator().manual_seed(1))
    supernet(torch.randn(4, 1, 8, 8), paths).sum().backward()
    for c, cell in enumerate(supernet.cells):
        for k, edge in enumerate(cell.edges):
            for o, op in enumerate(edge.values()):
                grads = [p.grad for p in op.parameters()]
                if grads and not paths.active[c, k, o] or paths.detached[c, k, o]:
                    assert all(g is None for g in grads), (c, k, o)
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_rescaling_keeps_the_sampled_pair_mass_and_other_probabilities():
    torch.manual_seed(1)
    alpha = torch.randn(2, 14, 7, requires_grad=True)
    before = alpha.detach().softmax(-1)
    _, sample = binary_gates(alpha, torch.Generator().manual_seed(2))
    with torch.no_grad():
        alpha.scatter_add_(-1, sample.indices, torch.randn(sample.indices.shape))  # some optimizer step
    rescale_(alpha, sample)
    after = alpha.detach().softmax(-1)
    unsampled = torch.ones_like(after, dtype=torch.bool).scatter_(-1, sample.indices, False)
    torch.testing.assert_close(after[unsampled], before[unsampled])
    torch.testing.assert_close(after.gather(-1, sample.indices).sum(-1), before.gather(-1, sample.indices).sum(-1))


def test_schedule_phases_and_progressive_pruning():
    schedule = Schedule(warmup=0.2, search=0.4)
    assert [schedule.phase(t, 100) for t in (0, 19, 20, 59, 60, 99)] == ["warmup"] * 2 + ["search"] * 2 + ["prune"] * 2
    frozen = [schedule.frozen_cells(t, 100, 4) for t in range(100)]
    assert frozen[59] == 0 and frozen[60] == 1 and frozen[70] == 2 and frozen[80] == 3 and frozen[90] == 4 and frozen[99] == 4
    assert all(a <= b for a, b in zip(frozen, frozen[1:]))


def saved_bytes(run) -> int:
    """Bytes of the tensors autograd saves for backward (distinct storages)."""
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values())


def test_two_path_step_saves_far_less_than_the_full_mixture():
    space = tiny()
    supernet = space.supernet()
    alpha = torch.zeros(space.parameter_shape, requires_grad=True)
    x = torch.randn(8, 1, 8, 8)
    gates = saved_bytes(lambda: supernet(x, binary_gates(alpha, torch.Generator().manual_seed(0))[0]))
    strategy = SSWPStrategy(relaxation="mixture")
    strategy.alpha = torch.nn.Parameter(alpha.detach().clone())
    strategy._space = space
    mixture = saved_bytes(lambda: supernet(x, strategy.relaxation(None, "architecture")))
    assert gates < 0.5 * mixture, (gates, mixture)


def test_search_state_round_trips(tmp_path):
    strategy = SSWPStrategy(seed=3)
    strategy._space = tiny()
    strategy.alpha = torch.nn.Parameter(torch.randn(tiny().parameter_shape))
    strategy.frozen = {1: strategy._space.derive_cell(strategy.alpha[1])}
    strategy.step_count, strategy._resolved_total = 7, 40
    state = strategy._state_dict_hook(None)
    torch.save(state, tmp_path / "s.pt")
    other = SSWPStrategy(seed=0)
    other._load_state_dict_hook(None, torch.load(tmp_path / "s.pt", weights_only=True))
    assert other.frozen == strategy.frozen and other.step_count == 7 and other._resolved_total == 40
    assert torch.equal(other.generator.get_state(), strategy.generator.get_state())
    paths = single_paths(torch.ones(3, 14, 7), other.generator)
    assert paths.active.sum(-1).eq(1).all()


def cli_search(tmp_path, *extra: str) -> Path:
    export = tmp_path / "export"
    main(["fit", "--config", str(ROOT / "examples" / "sswp_darts_digits.yaml"), "--trainer.max_epochs=1",
          "--trainer.limit_train_batches=5", f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
          "--trainer.enable_checkpointing=false", "--data.init_args.batch_size=8", "--data.init_args.limit_train=192",
          "--model.init_args.search_space.init_args.channels=2", "--model.init_args.strategy.init_args.architecture_every=2",
          f"--model.init_args.export_dir={export}", *extra])
    return export


def test_label_free_search_from_yaml_exports_a_loadable_model(tmp_path):
    export = cli_search(tmp_path)
    description = json.loads((export / "architecture.json").read_text())
    assert description["search_space"]["class_path"] == "nasframe.spaces.darts.DARTSSpace"
    model = load_model(export)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_the_same_search_runs_supervised_by_config_change(tmp_path):
    export = cli_search(tmp_path, '--model.init_args.objectives=[{"class_path": "nasframe.objectives.CrossEntropy"}]',
                        "--data.init_args.train_transform=null", "--data.init_args.label_fraction=1.0")
    assert (export / "model.safetensors").is_file()


def test_a_step_budget_gives_the_longest_schedule_that_fits_it():
    # Lightning's max_steps counts weight and architecture steps; the schedule must fit exactly
    schedule = Schedule(warmup=0.2, search=0.4)
    for cells, every in ((3, 2), (2, 5), (8, 1)):
        for budget in range(1, 90):
            total = schedule.total_within(budget, cells, every)
            fits = [t for t in range(1, budget + 1) if t + schedule.architecture_steps(t, cells, every) <= budget]
            assert total == max(fits, default=1), (cells, every, budget)
    # architecture steps: every 2nd weight step from the search's start until every cell is frozen
    assert schedule.architecture_steps(100, 4, 2) == len(range(20, 90, 2))
    assert schedule.steps_per_phase(100, 100) == {"warmup": 20, "search": 40, "prune": 40}
    assert schedule.steps_per_phase(30, 100) == {"warmup": 20, "search": 10, "prune": 0}


def cli_model(tmp_path, *extra: str):
    """The (shrunk) example config's trainer, module and datamodule, without running them."""
    from nasframe.cli import NASFrameCLI

    args = ["--config", str(ROOT / "examples" / "sswp_darts_digits.yaml"), f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_checkpointing=false", "--data.init_args.batch_size=8", "--data.init_args.limit_train=192",
            "--model.init_args.search_space.init_args.channels=2", "--model.init_args.strategy.init_args.architecture_every=2",
            f"--model.init_args.export_dir={tmp_path / 'export'}", *extra]
    cli = NASFrameCLI(args=args, run=False)
    return cli.trainer, cli.model, cli.datamodule


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    """A complete tiny label-free search, 9 trainer steps (weight + architecture), logged to CSV."""
    tmp_path = tmp_path_factory.mktemp("sswp")
    trainer, nas, data = cli_model(tmp_path, "--trainer.max_steps=9", "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
                                   f"--trainer.logger.init_args.save_dir={tmp_path}")
    trainer.fit(nas, datamodule=data)
    return trainer, nas, tmp_path


@pytest.mark.usefixtures("one_thread")
def test_a_finished_schedule_is_reported_in_the_summary_and_the_log(finished_search):
    trainer, nas, tmp_path = finished_search
    strategy = nas.strategy
    total = strategy.schedule.total_within(9, 3, 2)
    assert strategy.step_count == total and trainer.global_step <= 9 and len(strategy.frozen) == 3
    done = strategy.schedule.steps_per_phase(total, total)
    lines = nas.summary(nas.final_architecture, None).splitlines()
    for phase in ("warmup", "search", "prune"):
        assert f"  schedule/{phase}_steps: {done[phase]}" in lines
    assert "  schedule/frozen_cells: 3" in lines and any(line.startswith("  knn/accuracy: ") for line in lines)
    with open(next(tmp_path.rglob("metrics.csv"))) as file:
        final = [row for row in csv.DictReader(file) if row.get("schedule/prune_steps")]
    assert len(final) == 1 and float(final[0]["schedule/frozen_cells"]) == 3
    assert float(final[0]["schedule/warmup_steps"]) == done["warmup"] and float(final[0]["knn/accuracy"]) >= 0


@pytest.mark.usefixtures("one_thread")
def test_the_training_each_kept_op_got_is_counted(finished_search):
    _, nas, _ = finished_search
    strategy = nas.strategy
    # single-path weight steps: one op per edge every step until the edge's cell is frozen; then only
    # the kept edges run (their kept op), so they count every step and dropped edges fewer
    per_edge = strategy.op_steps.sum(-1)
    kept = torch.zeros_like(per_edge, dtype=torch.bool)
    for cell, genes in enumerate(nas.final_architecture.choices):
        for g, (op, source) in enumerate(genes):
            kept[cell, EDGE_INDEX[(g // 2, source)]] = True
    assert bool((per_edge[kept] == strategy.step_count).all()) and bool((per_edge[~kept] < strategy.step_count).all())
    counts = strategy.chosen_op_steps()
    assert 0 < counts["chosen_op_steps_min"] <= counts["chosen_op_steps_mean"] <= strategy.step_count
    lines = nas.summary(nas.final_architecture, None).splitlines()
    assert any(line.startswith("  schedule/chosen_op_steps_mean: ") for line in lines)


@pytest.mark.parametrize("max_steps, phase", [(3, "warm-up"), (6, "search")])
@pytest.mark.usefixtures("one_thread")
def test_a_cut_schedule_fails_naming_its_phase_and_exports_nothing(tmp_path, max_steps, phase):
    # a schedule of 20 weight steps (4 warm-up, 8 search, 8 pruning) that the trainer stops early
    trainer, nas, data = cli_model(tmp_path, "--model.init_args.strategy.init_args.total_steps=20",
                                   f"--trainer.max_steps={max_steps}", "--trainer.logger=false")
    with pytest.raises(NASFrameError, match=f"cut in its {phase} phase: .* of 20 weight steps"):
        trainer.fit(nas, datamodule=data)
    assert not (tmp_path / "export").exists()


@pytest.mark.usefixtures("one_thread")
def test_the_export_keeps_the_searched_weights_and_outputs(finished_search):
    _, nas, tmp_path = finished_search
    strategy, supernet, architecture = nas.strategy, nas.supernet.eval(), nas.final_architecture
    assert architecture.choices == tuple(strategy.frozen[c] for c in range(3)), "the export is the pruned network"
    exported = load_model(tmp_path / "export").eval()
    shared = supernet.state_dict()
    copied = set()
    for name, value in exported.state_dict().items():
        parts = name.split(".")
        if parts[0] == "cells" and parts[2] == "ops":  # gene g of cell c is one operation of one supernet edge
            cell, gene = int(parts[1]), int(parts[3])
            op, source = architecture.choices[cell][gene]
            parts = [*parts[:2], "edges", str(EDGE_INDEX[(gene // 2, source)]), op, *parts[4:]]
        source_name = ".".join(parts)
        if source_name in shared:
            assert torch.equal(value, shared[source_name]), name
            copied.add(parts[0] if parts[0] != "cells" else parts[2])
        else:  # the supernet's BatchNorms have no affine parameters: the export's start at the identity
            assert parts[-1] in ("weight", "bias") and torch.equal(value, torch.full_like(value, float(parts[-1] == "weight"))), name
    assert copied == {"stem", "preprocess0", "preprocess1", "edges", "classifier"}
    assert not torch.equal(exported.stem[1].running_mean, torch.zeros_like(exported.stem[1].running_mean)), "trained statistics"
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = supernet(x, architecture)
        torch.testing.assert_close(exported(x), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(supernet(x, strategy._frozen_paths()), expected, rtol=0, atol=1e-6)
