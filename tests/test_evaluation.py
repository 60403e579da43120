"""The label-free quality signal of an export (nasframe.evaluation): kNN accuracy of its features,
the same at initialisation, and its own head's accuracy, reported at the end of every search on
labelled validation images."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import TensorDataset

from helpers import CountConvolutions, tiny_data, tiny_space, tiny_trainer
from nasframe import NASModule
from nasframe.evaluation import evaluate_network, knn_accuracy, validation_images
from nasframe.strategies import RandomSearch, SinglePathStrategy


class LabelFeatures(nn.Module):
    """Reads the label off the image (its mean): features are the one-hot label, the head passes them on."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x.mean((1, 2, 3)).round().long(), 10).float()

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return features


def labelled_images(n: int = 60) -> TensorDataset:
    labels = torch.arange(n) % 10
    return TensorDataset(labels.float().view(-1, 1, 1, 1).expand(n, 1, 8, 8).clone(), labels)


def test_one_hot_label_features_classify_perfectly():
    labels = torch.arange(50) % 5
    assert knn_accuracy(F.one_hot(labels).float(), labels) == 100.0
    assert evaluate_network(LabelFeatures(), labelled_images()) == {"knn/accuracy": 100.0, "export/val_accuracy": 100.0}


def test_uninformative_features_score_near_chance_and_wrong_heads_score_zero():
    labels = torch.arange(200) % 10
    noise = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    assert knn_accuracy(noise, labels) < 25.0
    shifted = LabelFeatures()
    shifted.forward_head = lambda features: features.roll(1, dims=1)  # always predicts the next class
    assert evaluate_network(shifted, labelled_images())["export/val_accuracy"] == 0.0


def test_a_random_network_on_digits_gets_a_deterministic_figure_in_range():
    torch.manual_seed(0)
    network = tiny_space().build(tiny_space().sample(torch.Generator().manual_seed(2)))
    images = validation_images(tiny_data())
    assert len(images) == 360
    first, second = evaluate_network(network, images), evaluate_network(network, images)
    assert first == second
    assert all(0.0 <= value <= 100.0 for value in first.values())
    assert first["knn/accuracy"] > 30.0, "even random convolutional features separate digits far above chance"
    assert network.training, "the network's own mode is restored"


def test_every_search_on_labelled_images_reports_the_figures(tmp_path):
    nas = NASModule(tiny_space(), SinglePathStrategy(seed=1), export_dir=str(tmp_path / "export"))
    trainer = tiny_trainer(tmp_path, logger=CSVLogger(str(tmp_path), name="log"))
    trainer.fit(nas, datamodule=tiny_data())
    assert set(nas.evaluation) == {"knn/accuracy", "knn/accuracy_at_init", "export/val_accuracy"}
    assert all(0.0 <= value <= 100.0 for value in nas.evaluation.values())
    summary = nas.summary(nas.final_architecture, None)
    knn, at_init = nas.evaluation["knn/accuracy"], nas.evaluation["knn/accuracy_at_init"]
    assert f"  knn/accuracy: {knn:.1f} (at init {at_init:.1f}" in summary
    assert f"  export/val_accuracy: {nas.evaluation['export/val_accuracy']:.1f}" in summary
    with open(tmp_path / "log" / "version_0" / "metrics.csv") as file:
        logged = [row for row in csv.DictReader(file) if row.get("knn/accuracy")]
    assert len(logged) == 1 and float(logged[0]["knn/accuracy"]) == pytest.approx(knn)
    assert int(logged[0]["step"]) == trainer.global_step


def test_searches_without_data_report_no_figures(tmp_path):
    nas = NASModule(tiny_space(), RandomSearch(CountConvolutions(), budget=4, candidates_per_step=2), export_dir=str(tmp_path / "e"))
    tiny_trainer(tmp_path, max_steps=10).fit(nas)
    assert nas.evaluation == {} and "knn/" not in nas.summary(nas.final_architecture, None)


def test_an_untrained_head_reports_no_classifier_accuracy(tmp_path):
    """A label-free search never trains the head: its accuracy would be chance, read as the method's."""
    search = NASModule(tiny_space(), RandomSearch(CountConvolutions(), budget=4, candidates_per_step=2), export_dir=str(tmp_path / "e"))
    tiny_trainer(tmp_path, max_steps=4).fit(search, datamodule=tiny_data())
    assert set(search.evaluation) == {"knn/accuracy", "knn/accuracy_at_init"}, "fresh weights: no trained head"
    assert "export/val_accuracy" not in search.summary(search.final_architecture, None)
