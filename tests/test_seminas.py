"""SemiNAS plugin: token round trips, constrained decoding, the joint loss, checkpoint state, and
tiny deterministic searches (trainer-free and from YAML)."""

from __future__ import annotations

import io
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, shared_path
from helpers import CountConvolutions
from nasframe.cli import main
from nasframe.errors import ArchitectureError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.darts import DARTSSpace
from nasframe.spaces.nb201 import NB201Space
from nasframe.runner import SearchRunner, run_search
from nasframe_seminas import SemiNAS, SemiNASModel, train_steps

TINY = dict(initial=6, per_iteration=3, unlabelled=32, top_k=6, steps=4, pseudo_steps=4, batch_size=16, hidden_size=16,
            mlp_layers=(16,), fill_pool=32)

pytestmark = pytest.mark.usefixtures('one_thread')


def test_every_nb201_architecture_round_trips_through_tokens():
    space = NB201Space()
    architectures = space.all_architectures()
    assert len(architectures) == 15625
    tokens = [space.encode(a, kind="tokens") for a in architectures]
    assert len({tuple(t) for t in tokens}) == 15625
    for architecture, sequence in zip(architectures, tokens):
        assert all(token in space.token_range(i) for i, token in enumerate(sequence))
        assert space.from_tokens(sequence) == architecture


def test_autoencoder_reconstructs_what_it_was_trained_on():
    torch.manual_seed(0)
    space = NB201Space()
    model = SemiNASModel.for_space(space, hidden_size=32, trade_off=0.0)  # reconstruction only
    architectures = space.all_architectures()[::500]
    tokens = torch.tensor([space.encode(a, kind="tokens") for a in architectures])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_steps(model, optimizer, tokens, torch.zeros(len(tokens)), 100, 32, torch.Generator().manual_seed(0))
    memory, embedding = model.encoder(tokens)
    decoded = model.decoder.decode(memory, embedding)
    assert [space.from_tokens(t.tolist()) for t in decoded] == architectures


@pytest.mark.parametrize("space", [NB201Space(), DARTSSpace(cells=3)], ids=["nb201", "darts"])
def test_decoding_is_constrained_to_each_positions_valid_tokens(space):
    torch.manual_seed(1)
    model = SemiNASModel.for_space(space, hidden_size=16)
    length = len(space.token_choices())
    # wild embeddings (far from anything trained) must still decode to valid tokens everywhere
    memory = F.normalize(torch.randn(64, length, 16), dim=-1) * torch.logspace(-2, 3, 64).view(-1, 1, 1)
    decoded = model.decoder.decode(memory, memory.mean(1))
    for row in decoded.tolist():
        assert all(token in space.token_range(i) for i, token in enumerate(row))
    tokens = torch.tensor([space.encode(space.sample(torch.Generator().manual_seed(s)), kind="tokens") for s in range(4)])
    log_probs = model(tokens)[1]
    mask = model.decoder.mask
    assert torch.all(log_probs[:, ~mask] == float("-inf"))
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(4, length))


def test_invalid_token_sequences_are_rejected_by_the_space():
    space = NB201Space()
    with pytest.raises(ArchitectureError, match="not valid at position 0"):
        space.from_tokens([7, 5, 10, 15, 20, 25])


def test_joint_loss_is_point_eight_mse_plus_point_two_nll():
    space = NB201Space()
    model = SemiNASModel.for_space(space, hidden_size=16)
    tokens = torch.tensor([space.encode(a, kind="tokens") for a in space.all_architectures()[:8]])
    targets = torch.randn(8)
    total, mse, nll = model.loss(tokens, targets)
    predictions, log_probs = model(tokens)
    assert torch.isclose(mse, F.mse_loss(predictions, targets))
    assert torch.isclose(nll, -log_probs.gather(-1, tokens.unsqueeze(-1)).mean())
    assert torch.isclose(total, 0.8 * mse + 0.2 * nll)


def test_moved_embeddings_decode_new_valid_architectures():
    space = NB201Space()
    strategy = SemiNAS(CountConvolutions(), budget=15, seed=3, **TINY)
    final = run_search(space, strategy)
    assert len(strategy.history) == 15 and len({a for a, _ in strategy.history}) == 15
    assert final == strategy.best() and all(space.validate(a) for a, _ in strategy.history)
    assert strategy.counts["iterations"] == 3 and strategy.counts["moved"] + strategy.counts["filled"] == 9
    assert strategy.counts["moved"] > 0


def test_a_search_is_a_prefix_of_a_longer_one_with_the_same_seed():
    space = NB201Space()
    short, long = (SemiNAS(CountConvolutions(), budget=b, seed=5, **TINY) for b in (13, 21))
    assert run_search(space, short) == long.best(run_search(space, long) and long.history[:13])
    assert [a for a, _ in short.history] == [a for a, _ in long.history[:13]]


def test_any_token_space_works_darts():
    space = DARTSSpace(cells=3)

    class CountSeparable(CountConvolutions):
        def score(self, nas, architectures, batch):
            return torch.tensor([float(json.dumps(a.to_dict()).count("sep_conv")) for a in architectures])

    strategy = SemiNAS(CountSeparable(), budget=9, seed=0, **TINY)
    run_search(space, strategy)
    assert len({a for a, _ in strategy.history}) == 9


def test_search_state_loads_weights_only_and_resumes_identically():
    space = NB201Space()
    first = SemiNAS(CountConvolutions(), budget=9, seed=2, **TINY)
    run_search(space, first)
    buffer = io.BytesIO()
    torch.save({"state": first._state_dict_hook(None), "model": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert any(k.startswith("model.predictor.") for k in saved["model"]) and any(k.startswith("model.decoder.") for k in saved["model"])
    second = SemiNAS(CountConvolutions(), budget=9, seed=2, **TINY)
    second.setup(type("Nas", (), {"search_space": space})())
    second.load_state_dict(saved["model"])
    second._load_state_dict_hook(None, saved["state"])
    assert second.history == first.history and second.pseudo_labels == first.pseudo_labels
    assert torch.equal(second.generator.get_state(), first.generator.get_state())
    assert isinstance(second.history[0][0], Architecture)


def test_tiny_search_from_yaml_is_deterministic(tmp_path):
    chosen = []
    for run in ("a", "b"):
        export = tmp_path / run / "export"
        main(["fit", "--config", str(ROOT / "examples" / "seminas_digits.yaml"), "--trainer.default_root_dir", str(tmp_path / run),
              "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--model.init_args.export_dir", str(export),
              "--model.init_args.strategy.init_args.budget", "12", "--model.init_args.strategy.init_args.unlabelled", "16"])
        chosen.append(json.loads((export / "architecture.json").read_text())["architecture"])
    assert chosen[0] == chosen[1]


def test_nb201_yaml_runs_on_the_table(tmp_path):
    table = shared_path("nb201/nb201_test_accuracy.csv")
    export = tmp_path / "export"
    main(["fit", "--config", str(ROOT / "examples" / "seminas_nb201.yaml"), "--trainer.default_root_dir", str(tmp_path),
          "--trainer.logger", "false", "--model.init_args.export_dir", str(export),
          "--model.init_args.strategy.init_args.evaluator.init_args.benchmark.init_args.path", str(table),
          "--model.init_args.strategy.init_args.budget", "20", "--model.init_args.strategy.init_args.steps", "3",
          "--model.init_args.strategy.init_args.pseudo_steps", "3", "--model.init_args.strategy.init_args.unlabelled", "50"])
    assert (export / "model.safetensors").is_file()


def test_move_seeds_are_the_best_of_evaluated_and_pseudo_labelled_together():
    archs = NB201Space().all_architectures()[:6]
    labelled, pool = archs[:3], archs[3:]
    strategy = SemiNAS(CountConvolutions(), seed=0, **{**TINY, "top_k": 3})
    # pool[0] has the best pseudo-label; at the tie (0.5) the evaluated architecture comes first
    assert strategy.move_seeds(labelled, [0.5, -1.0, 1.0], pool, [2.0, 0.2, 0.5]) == [pool[0], labelled[2], labelled[0]]
    strategy.move_pseudo = False
    assert strategy.move_seeds(labelled, [0.5, -1.0, 1.0], pool, [2.0, 0.2, 0.5]) == [labelled[2], labelled[0], labelled[1]]


def test_pseudo_phase_up_samples_the_labelled_architectures(monkeypatch):
    import nasframe_seminas.model as seminas_model

    calls = []
    monkeypatch.setattr(seminas_model, "train_steps", lambda model, opt, tokens, targets, *rest: calls.append((tokens, targets)))
    space = NB201Space()
    model = SemiNASModel.for_space(space, hidden_size=8, mlp_layers=(8,))
    tokens = torch.tensor([space.encode(a, kind="tokens") for a in space.all_architectures()[:7]])
    labelled, unlabelled, targets = tokens[:3], tokens[3:], torch.tensor([1.0, 2.0, 3.0])
    pseudo = seminas_model.semi_supervised_fit(model, None, labelled, targets, unlabelled, 1, 1, 4, torch.Generator(), up_sample=10)
    (first, first_targets), (both, both_targets) = calls
    assert torch.equal(first, labelled) and len(both) == 3 * 10 + 4
    assert torch.equal(both[:30], labelled.repeat(10, 1)) and torch.equal(both[30:], unlabelled)
    assert torch.equal(both_targets[:30], targets.repeat(10)) and torch.equal(both_targets[30:], pseudo)
    with pytest.raises(ValueError, match="up_sample"):
        seminas_model.semi_supervised_fit(model, None, labelled, targets, unlabelled, 1, 1, 4, torch.Generator(), up_sample=0)


def test_every_seed_keeps_moving_until_enough_new_architectures():
    space = NB201Space()
    strategy = SemiNAS(CountConvolutions(), budget=12, seed=4, **TINY)
    run_search(space, strategy)
    nas = SearchRunner(space, strategy)
    seeds = [a for a, _ in sorted(strategy.history, key=lambda t: -t[1])[:2]]
    first_only = strategy._move(nas, seeds, 0)
    several = strategy._move(nas, seeds, 5)
    assert len(first_only) <= 2 < len(several)
    assert len(set(several)) == len(several) and not set(several) & strategy.seen


def test_rank_targets_are_an_opt_in_and_keep_the_prefix_property():
    with pytest.raises(ValueError, match="targets"):
        SemiNAS(CountConvolutions(), targets="minmax")
    assert SemiNAS(CountConvolutions()).targets == "zscore"  # the paper's
    space = NB201Space()
    short, long = (SemiNAS(CountConvolutions(), budget=b, seed=6, targets="rank", **TINY) for b in (11, 17))
    run_search(space, short), run_search(space, long)
    assert [a for a, _ in short.history] == [a for a, _ in long.history[:11]]


# ---- the cheaper computation: the same proposals ---------------------------------------------------------
def test_greedy_decode_equals_the_decoders_own_step_by_step_decode():
    from nasframe_seminas.encoder import SequenceEncoder
    from nasframe_seminas.model import greedy_decode

    torch.manual_seed(2)
    space = NB201Space()
    model = SemiNASModel.for_space(space, hidden_size=16).eval()
    tokens = torch.tensor([space.encode(space.sample(torch.Generator().manual_seed(s)), kind="tokens") for s in range(32)])
    memory, gradient = model.gradients(tokens)
    for eta in (0.0, 1.0, 30.0):
        moved = memory + eta * gradient
        assert torch.equal(greedy_decode(model.decoder, moved, SequenceEncoder.pool(moved)),
                           model.decoder.decode(moved, SequenceEncoder.pool(moved)))
    # several step sizes in one batch decode as each alone
    etas = torch.tensor([0.5, 4.0])
    both = model.decode_moved(memory.repeat(2, 1, 1), gradient.repeat(2, 1, 1), etas.repeat_interleave(len(tokens)))
    assert torch.equal(both, torch.cat([model.decode_moved(memory, gradient, float(eta)) for eta in etas]))


def test_move_in_batches_of_step_sizes_finds_what_one_step_size_at_a_time_finds(monkeypatch):
    import nasframe_seminas.strategy as module

    space = NB201Space()
    strategy = SemiNAS(CountConvolutions(), budget=12, seed=4, **TINY)
    run_search(space, strategy)
    nas = SearchRunner(space, strategy)
    seeds = [a for a, _ in sorted(strategy.history, key=lambda t: -t[1])[:4]]
    batched = [strategy._move(nas, seeds, want) for want in (0, 6)]
    monkeypatch.setattr(module, "MOVE_CHUNK", 1)
    assert [strategy._move(nas, seeds, want) for want in (0, 6)] == batched


def test_the_model_works_on_one_cpu_thread_and_restores_the_count():
    space = NB201Space()
    model = SemiNASModel.for_space(space, hidden_size=16)
    seen = []
    original = model.predictor.forward
    model.predictor.forward = lambda embedding: (seen.append(torch.get_num_threads()), original(embedding))[1]
    tokens = torch.tensor([space.encode(space.sample(torch.Generator().manual_seed(s)), kind="tokens") for s in range(8)])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.predict(tokens)
        train_steps(model, torch.optim.Adam(model.parameters()), tokens, torch.zeros(8), 2, 4, torch.Generator().manual_seed(0))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
