"""Datamodules: embedded default, ``.npz`` images, CIFAR-10/100."""

from nasframe.data.base import ImageArrayDataset, NASDataModule
from nasframe.data.datasets import CIFARDataModule, DigitsDataModule, NpzDataModule

__all__ = ["CIFARDataModule", "DigitsDataModule", "ImageArrayDataset", "NASDataModule", "NpzDataModule"]
