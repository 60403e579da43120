import numpy as np
import pytest
import torch

from conftest import shared_path
from nasframe import DataError
from nasframe.data import DigitsDataModule, NpzDataModule


def test_digits_splits_and_label_fraction():
    data = DigitsDataModule(batch_size=16, label_fraction=0.1, architecture_split=0.5)
    data.setup()
    train, arch, val = data._splits["train"], data._splits["architecture"], data._splits["val"]
    assert len(train) + len(arch) == 1437 and len(val) == 360
    labelled = (train.labels >= 0).float().mean().item()
    assert 0.05 < labelled < 0.15, "about 10% of training images keep their label"
    assert (val.labels >= 0).all(), "validation is always labelled"
    batch, _, _ = next(iter(data.train_dataloader()))  # CombinedLoader yields (batch, index, loader index)
    assert set(batch) == {"weights", "architecture"} and batch["weights"][0].shape == (16, 1, 8, 8)


def test_training_transform_receives_pil_images_and_may_return_views():
    two_views = lambda image: [torch.zeros(1, 8, 8), torch.ones(1, 8, 8)]  # noqa: E731
    data = DigitsDataModule(batch_size=4, train_transform=two_views)
    views, targets = next(iter(data.train_dataloader()))
    assert len(views) == 2 and views[1].shape == (4, 1, 8, 8) and targets.shape == (4,)


def test_npz_round_trip_and_errors(tmp_path):
    path = tmp_path / "images.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8), y_train=rng.integers(0, 10, 40),
             x_test=rng.integers(0, 255, (10, 8, 8, 3), dtype=np.uint8), y_test=rng.integers(0, 10, 10))
    data = NpzDataModule(str(path), batch_size=8)
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 3, 8, 8), "NHWC arrays are accepted and transposed"
    with pytest.raises(DataError, match="does not exist"):
        NpzDataModule(str(tmp_path / "missing.npz")).setup()
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((4, 3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="lacks arrays"):
        NpzDataModule(str(tmp_path / "partial.npz")).setup()
    np.savez(tmp_path / "empty.npz", x_train=np.zeros((0, 3, 8, 8), np.uint8), y_train=np.zeros(0), x_test=np.zeros((0, 3, 8, 8), np.uint8), y_test=np.zeros(0))
    with pytest.raises(DataError, match="empty"):
        NpzDataModule(str(tmp_path / "empty.npz")).setup()


def test_shared_cifar10_partial_loads():
    data = NpzDataModule(str(shared_path("cifar10/cifar10_partial.npz")), batch_size=256, shuffle=False)
    data.setup()
    assert len(data._splits["train"]) == 4660 and len(data._splits["val"]) == 932
    x, _ = next(iter(data.train_dataloader()))
    assert abs(x.mean().item()) < 0.2 and 0.8 < x.std().item() < 1.2, "normalised with CIFAR-10 statistics"
