"""SSWP-NAS plugin: binary gates, rescaling, schedule, memory, and a label-free search from YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasframe import load_model
from nasframe.cli import main
from nasframe.spaces.darts import DARTSSpace
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
