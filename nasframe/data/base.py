"""The datamodule base: image arrays -> labelled/unlabelled training, architecture and validation splits."""

from __future__ import annotations

import copy
import numbers
import random
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
from nasframe.spaces.capabilities import provided

UNLABELLED = -1  # the label of a training image without one


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

    Whatever ``load_arrays`` returns is checked before any loader exists (``checked_arrays``), so
    malformed data fails with a ``DataError`` naming the array instead of training on garbage.

    Args:
        batch_size: images per batch in every loader (a positive integer).
        label_fraction: fraction of training images that keep their label; the others are
            marked unlabelled (label -1), as in few-label fine-tuning and self-supervised search.
        architecture_split: fraction of the training images held out for the architecture steps
            of bi-level searches; when > 0 training batches are ``{"weights": b, "architecture": b}``.
        train_transform: applied to each training image (PIL); e.g. ``lightly.transforms.SimCLRTransform``.
        eval_transform: applied to each validation image; default: normalise only.
        limit_train: keep only the first N training images (after the seeded shuffle); 0 keeps all.
        limit_val: keep only the first N validation images (in their stored order) for validation
            and for the end-of-search evaluation of the export; 0 keeps all.
        shuffle: shuffle the training loaders (seeded by ``seed``).
        num_workers: loader worker processes (0: load in the main process).
        drop_unlabelled: keep only the labelled training images (few-label fine-tuning trains on
            those alone, in full batches); the unlabelled ones are still drawn as above.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    #: the names ``load_arrays``' four arrays go by in error messages
    array_names: tuple[str, str, str, str] = ("x_train", "y_train", "x_val", "y_val")
    #: the number of classes when the dataset defines it (labels must be below it); None: largest label + 1
    declared_num_classes: int | None = None

    def __init__(self, batch_size: int = 64, label_fraction: float = 1.0, architecture_split: float = 0.0,
                 train_transform: Callable | None = None, eval_transform: Callable | None = None, limit_train: int = 0,
                 shuffle: bool = True, num_workers: int = 0, seed: int = 0,
                 drop_unlabelled: bool = False, limit_val: int = 0) -> None:
        super().__init__()
        if not 0.0 <= label_fraction <= 1.0:
            raise DataError(f"label_fraction must be in [0, 1], got {label_fraction}")
        if not 0.0 <= architecture_split < 1.0:
            raise DataError(f"architecture_split must be in [0, 1), got {architecture_split}")
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.label_fraction = label_fraction
        self.architecture_split = architecture_split
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.limit_train = check_int("limit_train", limit_train, minimum=0)
        self.limit_val = check_int("limit_val", limit_val, minimum=0)
        self.shuffle = shuffle
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.seed = seed
        self.drop_unlabelled = drop_unlabelled
        self._splits: dict[str, ImageArrayDataset] | None = None
        self._checked: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], int] | None = None

    @abstractmethod
    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_val, y_val)``: ``(N, C, H, W)`` images and 1-D integer labels.

        Images are uint8 (0-255) or floats in [0, 1] (scaled to uint8 by ``round(x * 255)``);
        training labels may be -1 (unlabelled). ``checked_arrays`` enforces all of it."""

    @property
    def data_source(self) -> str:
        """Where the arrays come from, as error messages name it (e.g. the quoted file path)."""
        return type(self).__name__

    def checked_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``load_arrays()`` checked once and converted to uint8 images and int64 labels."""
        if self._checked is None:
            self._checked = check_arrays(self.load_arrays(), self.array_names, self.data_source, self.declared_num_classes)
        return self._checked[0]

    def validation_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The validation images and labels that validation and the end-of-search evaluation use:
        the first ``limit_val`` (all when 0)."""
        _, _, x_val, y_val = self.checked_arrays()
        if self.limit_val:
            x_val, y_val = x_val[: self.limit_val], y_val[: self.limit_val]
        return x_val, y_val

    @property
    def num_classes(self) -> int:
        """``declared_num_classes``, else the largest label (training or validation) + 1."""
        self.checked_arrays()
        return self._checked[1]

    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        x_train, y_train, _, _ = self.checked_arrays()
        x_val, y_val = self.validation_arrays()
        if self.train_transform is None or self.eval_transform is None:  # mean/std normalise those splits
            self._check_normalisation(x_train.shape[1])
        order = np.random.default_rng(self.seed).permutation(len(x_train))
        if self.limit_train:
            order = order[: self.limit_train]
        x_train, y_train = x_train[order], y_train[order]  # a copy: the labels masked below are our own
        unlabelled = np.random.default_rng(self.seed + 1).permutation(len(y_train))[: round(len(y_train) * (1 - self.label_fraction))]
        y_train[unlabelled] = UNLABELLED
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

    def _check_normalisation(self, channels: int) -> None:
        # a 3-value mean would silently broadcast 1-channel images into 3 channels
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise DataError(f"{type(self).__name__} {name} has {len(values)} values but {self.array_names[0]!r} in "
                                f"{self.data_source} has {channels} channel(s); give 1 or {channels} values")
        if not all(s > 0 for s in self.std):
            raise DataError(f"{type(self).__name__} std must be positive, got {tuple(self.std)}")

    def check_fits(self, search_space: Any) -> None:
        """Fail with a ``DataError`` when this data cannot feed ``search_space``.

        Reads the space's ``in_channels``, ``image_size`` and ``num_classes`` (each skipped when the
        space lacks it or it is None) and compares them with what the loaders yield: the first
        item of each split, so transforms are taken into account. Channels are checked for every
        split. The size is checked on the validation split only: it is what the network is
        evaluated and exported at, while training transforms may crop to other sizes (multi-crop
        views, random resized crops). Every label must be below the space's ``num_classes``.
        """
        self.setup()
        space = type(search_space).__name__
        in_channels = provided(search_space, "in_channels")
        image_size = provided(search_space, "image_size")
        num_classes = provided(search_space, "num_classes")
        if num_classes is not None and self.num_classes > num_classes:
            if self.declared_num_classes is not None:
                needed = f"{type(self).__name__} declares num_classes={self.declared_num_classes}"
            else:
                _, y_train, _, y_val = self.checked_arrays()
                array = self.array_names[1] if len(y_train) and y_train.max() + 1 == self.num_classes else self.array_names[3]
                needed = f"{array!r} in {self.data_source} has label {self.num_classes - 1}"
            raise DataError(f"{needed}, but the search space {space} has num_classes={num_classes} (labels in "
                            f"[0, {num_classes})); set the space's num_classes to at least {self.num_classes}")
        for split_name, dataset in self._splits.items():
            array = self.array_names[2 if split_name == "val" else 0]
            transform = self.eval_transform if split_name == "val" else self.train_transform
            after = f" after {'eval' if split_name == 'val' else 'train'}_transform" if transform is not None else ""
            for shape in _first_item_shapes(dataset):
                if in_channels is not None and shape[0] != in_channels:
                    raise DataError(f"{array!r} in {self.data_source} gives {shape[0]}-channel images{after}, but the search "
                                    f"space {space} has in_channels={in_channels}; the two must match")
                if image_size is not None and split_name == "val":
                    expected = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
                    if tuple(shape[1:]) != expected:
                        raise DataError(f"{array!r} in {self.data_source} gives {shape[1]}x{shape[2]} images{after}, but the "
                                        f"search space {space} has image_size={image_size}; the two must match")

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

    def calibration_dataloader(self) -> DataLoader:
        """The training images through ``eval_transform`` (as validation sees an image: no
        augmentation), in the split's seeded order, full batches: for re-estimating the BatchNorm
        statistics of an extracted network (``NASModule(bn_recalibration_batches=...)``)."""
        self.setup()
        images = copy.copy(self._splits["train"])
        images.transform = self.eval_transform
        return DataLoader(images, batch_size=self.batch_size, shuffle=False, drop_last=True)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


# ---- checks -------------------------------------------------------------------------------------------
def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or a ``DataError`` naming the argument ``name`` when it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        accepted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise DataError(f"{name} must be {accepted}, got {value!r}")
    return int(value)


def check_arrays(arrays: tuple[Any, ...], names: tuple[str, str, str, str], source: str,
                 num_classes: int | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], int]:
    """Check ``(x_train, y_train, x_val, y_val)`` (named ``names``, read from ``source``) and return
    them as uint8 ``(N, C, H, W)`` images and int64 labels, with the number of classes: ``num_classes``,
    or the largest label + 1. Training labels may be -1 (unlabelled); validation labels may not.
    Vectorised: a few passes over each array."""
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
        raise DataError(f"{source}: load_arrays must return (x_train, y_train, x_val, y_val), got {type(arrays).__name__}")
    where = [f"{name!r} in {source}" for name in names]
    x_train, x_val = _images_as_uint8(arrays[0], where[0]), _images_as_uint8(arrays[2], where[2])
    y_train, y_val = _labels_as_int64(arrays[1], where[1]), _labels_as_int64(arrays[3], where[3])
    for (x, xw), (y, yw) in (((x_train, names[0]), (y_train, names[1])), ((x_val, names[2]), (y_val, names[3]))):
        if len(x) != len(y):
            raise DataError(f"{xw!r} has {len(x)} images but {yw!r} has {len(y)} labels in {source}; "
                            f"each image needs one label ({UNLABELLED}: unlabelled, training images only)")
    if len(x_train) == 0:
        raise DataError(f"{where[0]}: the training set is empty")
    if x_val.shape[1] != x_train.shape[1]:
        raise DataError(f"{where[0]} has {x_train.shape[1]}-channel images but {names[2]!r} has {x_val.shape[1]}-channel "
                        "ones; training and validation images must have the same channels")
    if num_classes is None:
        num_classes = max((int(y.max()) + 1 for y in (y_train, y_val) if len(y)), default=0)
    _check_label_range(y_train, where[1], UNLABELLED, num_classes)
    _check_label_range(y_val, where[3], 0, num_classes)
    return (x_train, y_train, x_val, y_val), num_classes


def _first_bad(array: np.ndarray, bad: np.ndarray) -> str:
    """``"value V at index [i, ...]"`` for the first True of the mask ``bad``."""
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return f"value {array[index].item()} at index [{', '.join(str(int(i)) for i in index)}]"


def _images_as_uint8(x: Any, where: str) -> np.ndarray:
    """uint8 images as they are; integers in 0..255 cast; floats in [0, 1] scaled by 255 and rounded."""
    x = np.asarray(x)
    if x.ndim != 4 or min(x.shape[1:], default=0) < 1:
        raise DataError(f"{where}: images must be a 4-D (N, C, H, W) array, got shape {x.shape}")
    accepted = "accepted: uint8 (0-255), other integers in 0..255, or floats in [0, 1]"
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu":
        if x.size and (x.min() < 0 or x.max() > 255):
            bad = (x < 0) | (x > 255)
            raise DataError(f"{where} has {_first_bad(x, bad)}; {accepted}")
        return x.astype(np.uint8)
    if x.dtype.kind == "f":
        low, high = (x.min(), x.max()) if x.size else (0.0, 0.0)  # NaN/inf propagate into these
        if not (np.isfinite(low) and np.isfinite(high)):
            bad = ~np.isfinite(x)
            raise DataError(f"{where} has non-finite {_first_bad(x, bad)}; {accepted}")
        if low < 0 or high > 1:
            bad = (x < 0) | (x > 1)
            raise DataError(f"{where} has {_first_bad(x, bad)}: floating images must be in [0, 1] (they are scaled "
                            f"by 255); {accepted}")
        images = np.empty(x.shape, np.uint8)
        for start in range(0, len(x), 1024):  # in blocks: no full-size float temporary (CIFAR: 0.6 GB)
            block = x[start:start + 1024] * 255
            images[start:start + 1024] = np.rint(block, out=block)
        return images
    raise DataError(f"{where} has dtype {x.dtype}; {accepted}")


def _labels_as_int64(y: Any, where: str) -> np.ndarray:
    """1-D integer labels (floats only when integer-valued) as int64; the range is checked later."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be a 1-D array (one integer per image), got shape {y.shape}")
    if y.dtype.kind in "iu":
        if y.size and y.max() > np.iinfo(np.int64).max:
            raise DataError(f"{where} has label {y.max()}, too large for a class index")
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) > 2**31)  # the last: no int64 overflow below
        if bad.any():
            raise DataError(f"{where} has label {_first_bad(y, bad)}; labels must be integer class indices")
        return y.astype(np.int64)
    raise DataError(f"{where} has dtype {y.dtype}; labels must be integers (or integer-valued floats)")


def _check_label_range(y: np.ndarray, where: str, lowest: int, num_classes: int) -> None:
    if not len(y) or (y.min() >= lowest and y.max() < num_classes):
        return
    bad = (y < lowest) | (y >= num_classes)
    accepted = f"[0, {num_classes})" + (f" or {UNLABELLED} (unlabelled)" if lowest == UNLABELLED else "")
    raise DataError(f"{where} has label {_first_bad(y, bad)}; accepted: {accepted}")


def _first_item_shapes(dataset: Dataset) -> list[tuple[int, ...]]:
    """The ``(C, H, W)`` shapes of the first item's image or views, as a loader yields them. The
    global RNGs are restored afterwards: transforms draw from them, and this look must not change a run."""
    if len(dataset) == 0:
        return []
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            images, _ = dataset[0]
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    views = images if isinstance(images, (list, tuple)) else [images]
    return [tuple(v.shape) for v in views if isinstance(v, torch.Tensor) and v.dim() == 3]
