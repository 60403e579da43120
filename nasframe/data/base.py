"""The datamodule base: image arrays -> labelled/unlabelled training, architecture and validation splits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from nasframe.errors import DataError


class ImageArrayDataset(Dataset):
    """Images as a uint8 ``(N, C, H, W)`` array with integer labels (``-1``: unlabelled).

    Without ``transform`` an item is the image scaled to [0, 1] and normalised with ``mean``/``std``;
    with one, the image is handed to it as a PIL image, so torchvision and Lightly transforms
    (which may return a list of views) apply unchanged.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...],
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        image = self.images[index]
        if self.transform is None:
            return (image.float() / 255.0 - self.mean) / self.std, self.labels[index]
        array = image.permute(1, 2, 0).numpy()
        pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        return self.transform(pil), self.labels[index]


class EpochSeededSampler(Sampler[int]):
    """A random permutation that depends only on ``seed`` and the epoch (Lightning calls
    ``set_epoch``), so a run resumed from a checkpoint sees the same order as an uninterrupted one."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.size


class NASDataModule(LightningDataModule, ABC):
    """Training / architecture / validation loaders over an image classification dataset.

    Args:
        batch_size: images per batch in every loader.
        label_fraction: fraction of training images that keep their label; the others are
            marked unlabelled (label -1), as in few-label fine-tuning and self-supervised search.
        architecture_split: fraction of the training images held out for the architecture steps
            of bi-level searches; when > 0 training batches are ``{"weights": b, "architecture": b}``.
        train_transform: applied to each training image (PIL); e.g. ``lightly.transforms.SimCLRTransform``.
        eval_transform: applied to each validation image; default: normalise only.
        limit_train: keep only the first N training images (after the seeded shuffle); 0 keeps all.
        shuffle: shuffle the training loaders (seeded by ``seed``).
        drop_unlabelled: keep only the labelled training images (few-label fine-tuning trains on
            those alone, in full batches); the unlabelled ones are still drawn as above.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __init__(self, batch_size: int = 64, label_fraction: float = 1.0, architecture_split: float = 0.0,
                 train_transform: Callable | None = None, eval_transform: Callable | None = None, limit_train: int = 0,
                 shuffle: bool = True, num_workers: int = 0, seed: int = 0,
                 drop_unlabelled: bool = False) -> None:
        super().__init__()
        if not 0.0 <= label_fraction <= 1.0:
            raise DataError(f"label_fraction must be in [0, 1], got {label_fraction}")
        if not 0.0 <= architecture_split < 1.0:
            raise DataError(f"architecture_split must be in [0, 1), got {architecture_split}")
        self.batch_size = batch_size
        self.label_fraction = label_fraction
        self.architecture_split = architecture_split
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.limit_train = limit_train
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.seed = seed
        self.drop_unlabelled = drop_unlabelled
        self._splits: dict[str, ImageArrayDataset] | None = None

    @abstractmethod
    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_val, y_val)``: uint8 ``(N, C, H, W)`` images and integer labels."""

    @property
    def num_classes(self) -> int:
        return int(self.load_arrays()[1].max()) + 1

    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        x_train, y_train, x_val, y_val = self.load_arrays()
        if len(x_train) == 0:
            raise DataError(f"{type(self).__name__}: the training set is empty")
        order = np.random.default_rng(self.seed).permutation(len(x_train))
        if self.limit_train:
            order = order[: self.limit_train]
        x_train, y_train = x_train[order], np.array(y_train[order], dtype=np.int64)
        unlabelled = np.random.default_rng(self.seed + 1).permutation(len(y_train))[: round(len(y_train) * (1 - self.label_fraction))]
        y_train[unlabelled] = -1
        if self.drop_unlabelled:
            x_train, y_train = x_train[y_train >= 0], y_train[y_train >= 0]
        n_arch = int(round(len(x_train) * self.architecture_split))
        make = lambda x, y, t: ImageArrayDataset(x, y, self.mean, self.std, t)  # noqa: E731
        self._splits = {"train": make(x_train[n_arch:], y_train[n_arch:], self.train_transform),
                        "val": make(x_val, y_val, self.eval_transform)}
        if n_arch:
            self._splits["architecture"] = make(x_train[:n_arch], y_train[:n_arch], self.train_transform)
        for name, split in self._splits.items():
            if len(split) < (self.batch_size if name != "val" else 1):
                raise DataError(f"{type(self).__name__}: the {name} split has {len(split)} images, fewer than one batch of {self.batch_size}")

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self._splits[split]
        sampler = EpochSeededSampler(len(dataset), self.seed + (7 if split == "architecture" else 0)) if train and self.shuffle else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> Any:
        self.setup()
        if "architecture" not in self._splits:
            return self._loader("train", True)
        loaders = {"weights": self._loader("train", True), "architecture": self._loader("architecture", True)}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
