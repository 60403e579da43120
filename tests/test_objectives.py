import pytest
import torch
from lightly.transforms import SimCLRTransform

from helpers import tiny_data, tiny_space, tiny_trainer
from nasframe import NASFrameError, NASModule
from nasframe.objectives import BYOL, CrossEntropy, Distillation, SimCLR
from nasframe.step import SearchStep
from nasframe.strategies import SinglePathStrategy


def two_views():
    return SimCLRTransform(input_size=8, gaussian_blur=0.0, normalize={"mean": [0.3], "std": [0.38]}, random_gray_scale=0.0, cj_prob=0.0)


@pytest.mark.parametrize("objective", [SimCLR, BYOL])
def test_self_supervised_search_uses_no_labels(tmp_path, objective):
    nas = NASModule(tiny_space(), SinglePathStrategy(), objectives=[objective()], export_dir=str(tmp_path / "e"))
    data = tiny_data(train_transform=two_views(), label_fraction=0.0)
    trainer = tiny_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(nas, datamodule=data)
    assert set(data._splits["train"].labels.tolist()) == {-1}
    assert any(key.startswith(f"train/{'ntxent' if objective is SimCLR else 'byol'}") for key in trainer.callback_metrics)


def test_supervised_objective_on_unlabelled_views_fails_clearly(tmp_path):
    nas = NASModule(tiny_space(), SinglePathStrategy(), objectives=[CrossEntropy()], export_dir=str(tmp_path / "e"))
    with pytest.raises(NASFrameError, match="no objective produced a loss"):
        tiny_trainer(tmp_path).fit(nas, datamodule=tiny_data(label_fraction=0.0))


def test_distillation_matches_soft_cross_entropy_and_is_weighted():
    space = tiny_space()
    network = space.build(space.sample(torch.Generator().manual_seed(0)))
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    step = SearchStep((x, y), None, network)
    assert Distillation().loss_terms(step) == {}, "no teacher, no term"
    teacher = torch.randn(4, 10)
    step.extras["teacher_logits"] = teacher
    expected = -(teacher.softmax(1) * step.logits().log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(Distillation().loss_terms(step)["distillation"], expected)
    assert set(CrossEntropy().loss_terms(step)) == {"cross_entropy"}
