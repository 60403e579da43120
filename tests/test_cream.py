"""Cream of the Crop: board entry rules, teacher and stored outputs, meta update, checkpoint state, YAML run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer

from conftest import ROOT, shared_path
from nasframe import NASModule, load_model
from nasframe.cli import main
from nasframe.data import DigitsDataModule
from nasframe.objectives import CrossEntropy, Distillation
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.mbconv import MBConvSpace
from nasframe_cream import BoardEntry, CreamStrategy, PrioritizedBoard


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CPU: one intra-op thread avoids OpenMP spinning against other processes
    yield
    torch.set_num_threads(threads)


def tiny_space() -> MBConvSpace:
    return MBConvSpace(stage_channels=(8, 16), stage_layers=(1, 2), stage_strides=(2, 2), stem_channels=8, stem_stride=1,
                       first_channels=8, head_channels=16, final_channels=32, image_size=8, in_channels=1, allow_skip=True)


def entry(name: str, accuracy: float, flops: float) -> BoardEntry:
    return BoardEntry(Architecture("t", (name,)), accuracy, flops, torch.zeros(2, 1), torch.zeros(2, 10))


def names(board: PrioritizedBoard) -> list[str]:
    return [e.architecture.choices[0] for e in board.entries]


def test_board_entry_rules():
    board = PrioritizedBoard(size=3, margin=2.0)
    assert board.consider(entry("a", 50.0, 100)) == "not_full"
    assert board.consider(entry("b", 40.0, 100)) == "not_full"
    assert board.consider(entry("c", 30.0, 100)) == "not_full"
    assert names(board) == ["a", "b", "c"]
    # full: within the margin and not cheaper stays out, whatever its FLOPs tie
    assert board.consider(entry("d", 31.0, 100)) is None
    assert board.consider(entry("d", 30.0, 10)) is None  # cheaper but not more accurate
    assert board.consider(entry("d", 32.0, 500)) is None  # exactly the margin is not more than it
    # beats the worst by more than the margin: enters, the worst leaves
    assert board.consider(entry("e", 33.0, 500)) == "margin"
    assert names(board) == ["a", "b", "e"]
    # beats the worst (by less than the margin) with fewer FLOPs: enters
    assert board.consider(entry("f", 34.0, 400)) == "fewer_flops"
    assert names(board) == ["a", "b", "f"]
    assert board.consider(entry("g", 35.0, 401)) is None  # same gain, more FLOPs
    # a path already on the board is refreshed in place
    assert board.consider(entry("a", 20.0, 100)) == "refresh"
    assert names(board) == ["b", "f", "a"] and len(board) == 3
    assert board.best().architecture.choices == ("b",)
    assert board.best(flops_range=(300, 450)).architecture.choices == ("f",)


def test_board_ties_prefer_fewer_flops_and_state_round_trip():
    board = PrioritizedBoard(size=2, margin=0.0)
    board.consider(entry("x", 50.0, 200))
    board.consider(entry("y", 50.0, 100))
    assert names(board) == ["y", "x"]
    state = board.state()
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    restored = PrioritizedBoard(size=2)
    restored.load_state(torch.load(buffer, weights_only=True))
    assert names(restored) == ["y", "x"] and [e.flops for e in restored.entries] == [100.0, 200.0]


def make_nas(**strategy_args) -> NASModule:
    torch.manual_seed(0)
    strategy = CreamStrategy(**{"seed": 0, "board_size": 3, "warmup_steps": 0, "matching_images": 4, **strategy_args})
    return NASModule(tiny_space(), strategy, objectives=[CrossEntropy(), Distillation()])


def test_teacher_from_board_and_new_path_outputs_stored():
    nas = make_nas()
    strategy, space = nas.strategy, nas.search_space
    x, y = torch.randn(8, 1, 8, 8), torch.randint(10, (8,))
    first = space.parse("k3_e4-k3_e4-k3_e4")
    step = nas.new_step((x, y), first)
    strategy.before_loss(nas, step)
    assert "teacher_logits" not in step.extras and not step.term_weights  # empty board: plain CE
    strategy.after_step(nas, step, torch.tensor(0.0))
    stored = strategy.board.entries[0]
    assert stored.architecture == first
    torch.testing.assert_close(stored.probs, F.softmax(step.logits(0)[:4].detach(), dim=1))
    torch.testing.assert_close(stored.inputs, x[:4])

    student = space.parse("k7_e6-k5_e6-skip")
    step = nas.new_step((x, y), student)
    strategy.before_loss(nas, step)
    assert step.extras["teacher_architecture"] == first
    with torch.no_grad():
        torch.testing.assert_close(step.extras["teacher_logits"], nas.supernet(x, first))
    # zero-initialised matching network: rho = sigmoid(0) = 0.5 -> [0.5 KD + 1.5 CE] / 2
    assert step.term_weights == {"distillation": 0.25, "cross_entropy": 0.75}
    loss = nas.compute_loss(step)
    kd = -(F.softmax(step.extras["teacher_logits"], 1) * F.log_softmax(step.logits(0), 1)).sum(1).mean()
    torch.testing.assert_close(loss, (0.5 * kd + 1.5 * F.cross_entropy(step.logits(0), y)) / 2)
    strategy.after_step(nas, step, loss.detach())
    new = next(e for e in strategy.board.entries if e.architecture == student)
    # the board keeps the *new* path's outputs, not its teacher's
    torch.testing.assert_close(new.probs, F.softmax(step.logits(0)[:4].detach(), dim=1))
    assert not torch.allclose(new.probs, F.softmax(step.extras["teacher_logits"][:4], dim=1))


def test_teacher_is_the_board_path_with_the_highest_matching_score():
    nas = make_nas()
    strategy, space, supernet = nas.strategy, nas.search_space, nas.supernet
    torch.manual_seed(5)
    images = torch.randn(4, 1, 8, 8)
    paths = [space.parse(p) for p in ("k3_e4-k3_e4-k3_e4", "k7_e6-k5_e6-skip", "k5_e4-k3_e6-k7_e4")]
    # stored outputs made by hand: the board's best path (by accuracy) predicts uniformly, the second
    # never class 1, the third always class 1
    stored = [torch.full((4, 10), 0.1), F.one_hot(torch.zeros(4, dtype=torch.long), 10).float(),
              F.one_hot(torch.ones(4, dtype=torch.long), 10).float()]
    for path, accuracy, probs in zip(paths, (60.0, 50.0, 40.0), stored):
        strategy.board.consider(BoardEntry(path, accuracy, space.flops(path), images, probs))
    # score = sum over the images of (student - path) probability of class 1: highest for the second path
    with torch.no_grad():
        strategy.matching.linear.weight.copy_(F.one_hot(torch.ones(4, dtype=torch.long), 10).float().flatten()[None])
        strategy.matching.linear.bias.fill_(-0.5)
        student_probs = F.softmax(supernet(images, space.parse("k5_e6-k7_e4-k3_e6")), dim=1)
    scores = [float((student_probs[:, 1] - probs[:, 1]).sum()) - 0.5 for probs in stored]
    assert max(range(3), key=scores.__getitem__) == 1  # not the board's best path

    x, y = torch.randn(8, 1, 8, 8), torch.randint(10, (8,))
    step = nas.new_step((x, y), space.parse("k5_e6-k7_e4-k3_e6"))
    strategy.before_loss(nas, step)
    assert step.extras["teacher_architecture"] == paths[1]
    with torch.no_grad():
        torch.testing.assert_close(step.extras["teacher_logits"], supernet(x, paths[1]))
    rho = torch.sigmoid(torch.tensor(scores[1])).item()
    assert step.term_weights == pytest.approx({"distillation": rho / 2, "cross_entropy": (2 - rho) / 2})


def test_warmup_keeps_the_board_empty():
    nas = make_nas(warmup_steps=2)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(10, (8,))
    for i in range(3):
        step = nas.new_step((x, y), nas.search_space.parse("k3_e4-k3_e4-k3_e4"))
        nas.strategy.after_step(nas, step, torch.tensor(0.0))
        assert len(nas.strategy.board) == (1 if i == 2 else 0)


def test_board_rescore_replaces_stale_accuracies():
    board = PrioritizedBoard(size=3, margin=0.0)
    for name, accuracy in (("a", 60.0), ("b", 50.0), ("c", 40.0)):
        board.consider(entry(name, accuracy, 100))
    board.rescore(lambda architecture: {"a": 10.0, "b": 30.0, "c": 20.0}[architecture.choices[0]])
    assert names(board) == ["b", "c", "a"] and [e.accuracy for e in board.entries] == [30.0, 20.0, 10.0]


def test_fixed_scoring_set_measures_every_path_on_the_same_images():
    nas = make_nas(warmup_steps=1, board_scoring="fixed", score_images=12)
    strategy, space, supernet = nas.strategy, nas.search_space, nas.supernet
    torch.manual_seed(1)
    batches = [(torch.randn(8, 1, 8, 8), torch.randint(10, (8,))) for _ in range(3)]
    paths = [space.parse(p) for p in ("k3_e4-k3_e4-k3_e4", "k7_e6-k5_e6-skip", "k5_e4-k3_e6-k7_e4")]
    step = nas.new_step(batches[0], paths[0])
    strategy.after_step(nas, step, torch.tensor(0.0))  # warm-up: collects images, no board entry
    assert len(strategy.board) == 0 and not strategy.score_set_ready and len(strategy.score_inputs) == 8
    step = nas.new_step(batches[1], paths[1])
    strategy.after_step(nas, step, torch.tensor(0.0))
    # the set is the first 12 labelled training images, in order
    torch.testing.assert_close(strategy.score_inputs, torch.cat([batches[0][0], batches[1][0][:4]]))
    torch.testing.assert_close(strategy.score_targets, torch.cat([batches[0][1], batches[1][1][:4]]))
    running = [b.clone() for b in supernet.buffers()]
    with torch.no_grad():
        supernet.train()
        expected = float((supernet(strategy.score_inputs, paths[1]).argmax(1) == strategy.score_targets).float().mean() * 100)
    for b, saved in zip(supernet.buffers(), running):
        b.copy_(saved)
    assert strategy.board.entries[0].accuracy == pytest.approx(expected)
    assert strategy.score(nas, paths[1]) == pytest.approx(expected)
    for b, saved in zip(supernet.buffers(), running):  # scoring leaves the BatchNorm statistics alone
        torch.testing.assert_close(b, saved)
    # the batch rule would have stored the batch accuracy; the fixed rule stores the set's
    batch_rule = make_nas(warmup_steps=1)
    for batch, path in zip(batches[:2], paths[:2]):
        batch_step = batch_rule.new_step(batch, path)
        batch_rule.strategy.after_step(batch_rule, batch_step, torch.tensor(0.0))
    assert batch_rule.strategy.board.entries[0].accuracy == pytest.approx(batch_rule.batch_accuracy(batch_step))
    assert batch_rule.strategy.score_inputs is None  # no set is collected when nothing needs it

    # the scoring set is checkpoint state, loadable with weights_only=True
    buffer = __import__("io").BytesIO()
    torch.save(strategy.search_state(), buffer)
    buffer.seek(0)
    restored = make_nas(board_scoring="fixed", score_images=12).strategy
    restored.load_search_state(torch.load(buffer, weights_only=True))
    assert restored.score_set_ready
    torch.testing.assert_close(restored.score_inputs, strategy.score_inputs)


def test_final_rescore_picks_the_best_path_on_the_scoring_set():
    nas = make_nas(warmup_steps=0, final_rescore=True, score_images=8)
    strategy, space = nas.strategy, nas.search_space
    torch.manual_seed(2)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(10, (8,))
    paths = [space.parse(p) for p in ("k3_e4-k3_e4-k3_e4", "k7_e6-k5_e6-skip", "k5_e4-k3_e6-k7_e4")]
    for path in paths:
        strategy.after_step(nas, nas.new_step((x, y), path), torch.tensor(0.0))
    assert strategy.score_set_ready and len(strategy.board) == 3
    scores = {path: strategy.score(nas, path) for path in paths}
    assert len(set(scores.values())) == 3  # distinct, so that picking the wrong path would show
    worst = min(paths, key=lambda p: (scores[p], -space.flops(p)))
    for e in strategy.board.entries:  # stale batch scores that favour the worst path on the set
        e.accuracy = 100.0 if e.architecture == worst else 0.0
    strategy.board._sort()
    assert strategy.current_architecture(nas) == worst
    best = max(scores.values())
    final = strategy.final_architecture(nas)
    assert scores[final] == best
    assert sorted(e.accuracy for e in strategy.board.entries) == pytest.approx(sorted(scores.values()))


def test_final_scoring_set_is_larger_and_measured_in_chunks():
    nas = make_nas(warmup_steps=0, final_rescore=True, score_images=4, final_score_images=8)
    strategy, space, supernet = nas.strategy, nas.search_space, nas.supernet
    torch.manual_seed(3)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(10, (6,))
    path = space.parse("k5_e6-k3_e4-k7_e6")
    strategy.after_step(nas, nas.new_step((x, y), path), torch.tensor(0.0))
    assert strategy.score_set_ready and len(strategy.score_inputs) == 6  # enough for a step's measure
    strategy.after_step(nas, nas.new_step((x, y), path), torch.tensor(0.0))
    assert len(strategy.score_inputs) == 8  # the final set, collected no further
    strategy.after_step(nas, nas.new_step((x, y), path), torch.tensor(0.0))
    assert len(strategy.score_inputs) == 8
    with torch.no_grad():
        supernet.train()
        hits = [(supernet(strategy.score_inputs[i:i + 4], path).argmax(1) == strategy.score_targets[i:i + 4]).sum()
                for i in (0, 4)]
    assert strategy.score(nas, path, 8) == pytest.approx(float(sum(hits)) / 8 * 100)
    assert strategy.score(nas, path) == pytest.approx(float(hits[0]) / 4 * 100)


def test_invalid_board_scoring_is_refused():
    with pytest.raises(Exception, match="board_scoring"):
        CreamStrategy(board_scoring="median")


def meta_problem(inner_lr: float = 0.5):
    """A student step with a teacher chosen from two board paths, and a non-zero matching network."""
    nas = make_nas(inner_lr=inner_lr)
    strategy, space, supernet = nas.strategy, nas.search_space, nas.supernet
    torch.manual_seed(6)
    for k, path in enumerate(space.parse(p) for p in ("k3_e4-k3_e4-k3_e4", "k7_e6-k5_e6-skip")):
        images = torch.randn(4, 1, 8, 8)
        with torch.no_grad():
            probs = F.softmax(supernet(images, path), dim=1)
        strategy.board.consider(BoardEntry(path, 50.0 - k, space.flops(path), images, probs))
    with torch.no_grad():
        strategy.matching.linear.weight.normal_(0.0, 2.0)
        strategy.matching.linear.bias.fill_(0.3)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(10, (8,))
    step = nas.new_step((x, y), space.parse("k5_e6-k7_e4-k3_e6"))
    strategy.before_loss(nas, step)
    # the matching optimizer, with no trainer: lr 0 leaves the computed gradients to inspect
    nas.optimizer = lambda name: torch.optim.SGD(strategy.matching.parameters(), lr=0.0)
    return nas, step


def cream_loss(student_logits, teacher_logits, targets, rho):
    """[rho KD + (2 - rho) CE] / 2 at temperature 1, written out."""
    kd = -(F.softmax(teacher_logits, dim=1) * F.log_softmax(student_logits, dim=1)).sum(1).mean()
    return (rho * kd + (2 - rho) * F.cross_entropy(student_logits, targets)) / 2


def test_meta_gradient_is_the_second_order_gradient_through_a_simulated_sgd_step():
    nas, step = meta_problem()
    strategy = nas.strategy
    teacher, student, lr = step.extras["teacher_architecture"], step.architecture, strategy.inner_lr
    t = [e.architecture for e in strategy.board.entries].index(teacher)
    # the reference computations run in float64 on a copy, independently of the strategy's code
    supernet = __import__("copy").deepcopy(nas.supernet).double()
    x, y, half = step.views[0].double(), step.targets, 4
    with torch.no_grad():  # what the matching network compares: the student on every board path's images (one batch)
        board_images = torch.cat([e.inputs for e in strategy.board.entries]).double()
        student_probs = F.softmax(supernet(board_images, student), dim=1).view(len(strategy.board), 4, 10)
        teacher_logits = supernet(x[:half], teacher)
    differences = (student_probs - torch.stack([e.probs.double() for e in strategy.board.entries]))[t].flatten()
    weight = strategy.matching.linear.weight.detach()[0].double()
    bias = strategy.matching.linear.bias.detach()[0].double()
    buffers = {name: b.clone() for name, b in supernet.named_buffers()}

    outer = strategy.meta_update(nas, step)
    implemented = [p.grad[0].double() for p in strategy.matching.parameters()]  # weight (m*C,), bias ()

    # 1. autograd through an explicit simulated SGD step of the student, written out here
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    rho = torch.sigmoid(differences @ w + b)
    params = dict(supernet.named_parameters())
    run = lambda tensors, inputs: torch.func.functional_call(supernet, {**tensors, **buffers}, (inputs, student))  # noqa: E731
    inner = cream_loss(run(params, x[:half]), teacher_logits, y[:half], rho)
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, allow_unused=True)
    updated = {n: p if g is None else p - lr * g for (n, p), g in zip(params.items(), grads)}
    explicit_outer = F.cross_entropy(run(updated, x[half:]), y[half:])
    grad_w, grad_b = torch.autograd.grad(explicit_outer, [w, b])
    assert outer == pytest.approx(float(explicit_outer), rel=1e-5)
    assert float(grad_b.abs()) > 1e-3  # the matching network does steer the student step
    torch.testing.assert_close(implemented[0], grad_w, rtol=1e-3, atol=1e-3 * float(grad_w.abs().max()))
    assert float(implemented[1]) == pytest.approx(float(grad_b), rel=1e-3)

    # 2. finite differences of the outer loss after a *real* SGD step of a copy of the student
    def outer_after_sgd_step(w_: torch.Tensor, b_: torch.Tensor) -> float:
        copy = __import__("copy").deepcopy(supernet)
        optimizer = torch.optim.SGD(copy.parameters(), lr=lr)
        cream_loss(copy(x[:half], student), teacher_logits, y[:half], torch.sigmoid(differences @ w_ + b_)).backward()
        optimizer.step()
        with torch.no_grad():
            return float(F.cross_entropy(copy(x[half:], student), y[half:]))

    eps = 1e-5
    slope_b = (outer_after_sgd_step(weight, bias + eps) - outer_after_sgd_step(weight, bias - eps)) / (2 * eps)
    assert float(implemented[1]) == pytest.approx(slope_b, rel=1e-3)
    direction = differences / differences.norm()  # the weight's gradient is along the probability differences
    slope_w = (outer_after_sgd_step(weight + eps * direction, bias) - outer_after_sgd_step(weight - eps * direction, bias)) / (2 * eps)
    assert float(implemented[0] @ direction) == pytest.approx(slope_w, rel=1e-3)


def test_search_meta_update_flops_range_and_checkpoint(tmp_path):
    space = tiny_space()
    flops = sorted(space.flops(space.sample(torch.Generator().manual_seed(i))) for i in range(50))
    flops_range = (0, flops[len(flops) // 2])
    nas = make_nas(warmup_steps=2, meta_every=2, flops_range=flops_range)
    trainer = Trainer(max_steps=8, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(tmp_path), limit_val_batches=1, num_sanity_val_steps=0, val_check_interval=4,
                      callbacks=[__import__("lightning").pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt")])
    nas.export_dir = str(tmp_path / "export")
    trainer.fit(nas, datamodule=DigitsDataModule(batch_size=16, limit_train=128))
    strategy = nas.strategy
    assert int(strategy.steps) == 8 and trainer.global_step == 8  # meta steps do not count as search steps
    assert strategy.matching.linear.weight.abs().sum() > 0  # the second-order meta update reached the matching net
    assert len(strategy.board) == 3 and all(e.flops <= flops_range[1] for e in strategy.board.entries)
    final = nas.final_architecture
    assert final == strategy.board.best(flops_range).architecture and space.flops(final) <= flops_range[1]
    model = load_model(tmp_path / "export")
    assert sum(p.numel() for p in model.parameters()) > 0

    checkpoint = torch.load(next((tmp_path / "ckpt").glob("*.ckpt")), weights_only=True)
    assert "strategy.matching.linear.weight" in checkpoint["state_dict"]
    board_state = checkpoint["nasframe"]["state"]["strategy.CreamStrategy"]["board"]
    assert board_state["architectures"] == [e.architecture.to_dict() for e in strategy.board.entries]


@pytest.mark.parametrize("weight_sharing", ["independent", "nested"])
def test_yaml_end_to_end(tmp_path, weight_sharing):
    export = tmp_path / "export"
    main(["fit", "--config", str(ROOT / "examples" / "cream_mbconv_digits.yaml"), "--trainer.max_steps", "10",
          "--model.init_args.search_space.init_args.weight_sharing", weight_sharing,
          "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
          "--trainer.limit_val_batches", "1", "--model.init_args.strategy.init_args.warmup_steps", "3",
          "--model.init_args.strategy.init_args.meta_every", "4", "--model.init_args.export_dir", str(export)])
    chosen = json.loads((export / "architecture.json").read_text())
    assert chosen["architecture"]["space"] == "mbconv"
    assert load_model(export)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_cifar10_config_runs_a_few_steps(tmp_path):
    shared_path("cifar10/cifar10_partial.npz")
    main(["fit", "--config", str(ROOT / "examples" / "cream_cifar10.yaml"), "--trainer.max_steps", "2",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
          "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
          "--data.init_args.path", str(ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_partial.npz"),
          "--model.init_args.export_dir", str(tmp_path / "export")])
    assert (tmp_path / "export" / "model.safetensors").is_file()


def _cream_benchmark():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cream_benchmark", ROOT / "benchmarks" / "cream_cifar10.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_reuses_spos_arms_only_when_they_measured_the_same(tmp_path):
    """``cream_cifar10.py --spos-from`` stands in an earlier run's SPOS arms for a Cream-only change,
    and refuses a run whose SPOS settings, paths or seeds differ (a silent reuse would pair unlike arms)."""
    bench = _cream_benchmark()
    args = bench.parse_args(["--seeds", "0", "1", "--kd-temperature", "4", "--no-final-standalone",
                             "--spos-from", str(tmp_path / "earlier.json")])
    paths = {0: ["a", "b"], 1: ["c", "d"]}
    earlier_config = {**vars(bench.parse_args(["--seeds", "0", "1"]))}  # Cream settings differ, SPOS's agree
    earlier = {"config": earlier_config, "hold_out_seed": bench.HOLD_OUT_SEED, "random_paths": {"0": ["a", "b"], "1": ["c", "d"]},
               "per_seed": {"0": {"spos": {"inherited": [1.0, 2.0]}}, "1": {"spos": {"inherited": [3.0, 4.0]}}}}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    assert bench.reused_spos_arms(args, paths) == {0: {"inherited": [1.0, 2.0]}, 1: {"inherited": [3.0, 4.0]}}

    for change, named in [({"config": {**earlier_config, "epochs": 3}}, "epochs"),
                          ({"random_paths": {"0": ["a", "x"], "1": ["c", "d"]}}, "seed 0's random paths"),
                          ({"per_seed": {"0": earlier["per_seed"]["0"]}}, "no SPOS arm for seeds [1]"),
                          ({"hold_out_seed": 1}, "held-out images")]:
        (tmp_path / "earlier.json").write_text(json.dumps({**earlier, **change}))
        with pytest.raises(SystemExit, match="measured something else") as refused:
            bench.reused_spos_arms(args, paths)
        assert named in str(refused.value)
    (tmp_path / "earlier.json").write_text("{not json")
    with pytest.raises(SystemExit, match="not a cream_cifar10.py result"):
        bench.reused_spos_arms(args, paths)
