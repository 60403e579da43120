"""Re-estimating the BatchNorm statistics of an extracted path (``NASModule(bn_recalibration_batches=...)``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasframe import NASFrameError, NASModule
from nasframe.buffers import recalibrate_batchnorm
from nasframe.data import DigitsDataModule
from nasframe.spaces.mbconv import MBConvSpace
from nasframe.strategies import SinglePathStrategy


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_statistics_are_the_plain_average_over_the_batches():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4, momentum=0.3))
    norm = network[2]
    norm.running_mean.fill_(5.0)
    network.train()
    batches = [torch.randn(6, 3) * (i + 1) for i in range(3)]
    assert recalibrate_batchnorm(network, iter(batches)) == 3
    with torch.no_grad():  # dropout stays off: the statistics are those of the plain linear outputs
        outputs = [network[0](x) for x in batches]
    torch.testing.assert_close(norm.running_mean, torch.stack([o.mean(0) for o in outputs]).mean(0))
    torch.testing.assert_close(norm.running_var, torch.stack([o.var(0) for o in outputs]).mean(0))
    assert norm.momentum == 0.3 and network.training and network[1].training  # restored


def test_no_batch_is_an_error():
    with pytest.raises(NASFrameError, match="no batch"):
        recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), iter([]))


def tiny_space() -> MBConvSpace:
    return MBConvSpace(stage_channels=(8,), stage_layers=(2,), stage_strides=(2,), stem_channels=8, stem_stride=1,
                       first_channels=8, head_channels=16, final_channels=16, image_size=8, in_channels=1,
                       allow_skip=True, weight_sharing="nested")


def test_final_network_is_recalibrated_on_training_images_without_augmentation():
    torch.manual_seed(0)
    nas = NASModule(tiny_space(), SinglePathStrategy(seed=0), bn_recalibration_batches=2)
    architecture = nas.search_space.parse("k3_e4-k5_e6")
    data = DigitsDataModule(batch_size=16, limit_train=64, train_transform=lambda image: torch.zeros(1, 8, 8))
    supernet_buffers = [b.clone() for b in nas.supernet.buffers()]

    network = nas.final_network(architecture, datamodule=data)

    # the calibration batches are the first training images through the evaluation transform (none:
    # normalised), not the training transform
    calibration = next(iter(data.calibration_dataloader()))[0]
    train = data._splits["train"]
    expected = torch.stack([(train.images[i].float() / 255 - data.mean[0]) / data.std[0] for i in range(16)])
    torch.testing.assert_close(calibration, expected)
    # the stem's statistics: the mean over 2 batches of its convolution's per-channel batch means
    loader = iter(data.calibration_dataloader())
    with torch.no_grad():
        means = [network.stem[0](next(loader)[0]).mean((0, 2, 3)) for _ in range(2)]
    torch.testing.assert_close(network.stem[1].running_mean, torch.stack(means).mean(0))
    assert not network.training
    for buffer, saved in zip(nas.supernet.buffers(), supernet_buffers):  # the supernet keeps its own
        torch.testing.assert_close(buffer, saved)
    # without the option the extracted path keeps the supernet's statistics (fresh: zero means)
    plain = NASModule(tiny_space(), SinglePathStrategy(seed=0)).final_network(architecture)
    assert float(plain.stem[1].running_mean.abs().sum()) == 0.0


def test_recalibration_needs_data_and_a_valid_count():
    nas = NASModule(tiny_space(), SinglePathStrategy(seed=0), bn_recalibration_batches=1)
    with pytest.raises(NASFrameError, match="bn_recalibration_batches needs the training data"):
        nas.final_network(nas.search_space.parse("k3_e4-k5_e6"))
    with pytest.raises(NASFrameError, match="bn_recalibration_batches"):
        NASModule(tiny_space(), SinglePathStrategy(seed=0), bn_recalibration_batches=-1)
