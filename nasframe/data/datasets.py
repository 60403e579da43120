"""Concrete datamodules: the embedded digits default, an ``.npz`` of images, CIFAR through torchvision."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from nasframe.data.base import NASDataModule, check_int
from nasframe.errors import DataError


class DigitsDataModule(NASDataModule):
    """scikit-learn's 1,797 handwritten digits (1x8x8, 10 classes): ships with the package, no download.

    The embedded default for the quickstart and tests. A fixed 80/20 split (seeded) gives 1,437
    training and 360 validation images. ``size`` (a positive multiple of 8) upsamples the images
    (nearest) for spaces with more downsampling.
    """

    mean = (0.3,)
    std = (0.38,)
    declared_num_classes = 10

    def __init__(self, size: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        if check_int("size", size, minimum=1) % 8:
            raise DataError(f"DigitsDataModule size must be a positive multiple of 8, got {size}")
        self.size = int(size)

    def load_arrays(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)[:, None]
        if self.size != 8:
            images = images.repeat(self.size // 8, axis=2).repeat(self.size // 8, axis=3)
        order = np.random.default_rng(1234).permutation(len(images))
        cut = int(len(images) * 0.8)
        train, val = order[:cut], order[cut:]
        return images[train], digits.target[train], images[val], digits.target[val]


class NpzDataModule(NASDataModule):
    """Images from an ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``.

    E.g. ``../shared/data/cifar10/cifar10_partial.npz`` (4,660 train / 932 test CIFAR-10 images).

    Images are 4-D, NCHW or NHWC (a last axis of 1 or 3 with a second axis of neither is read as
    NHWC), either uint8 (0-255; other integer dtypes with values in 0..255 are accepted too) or
    floating point in [0, 1], which is scaled to uint8 as ``round(x * 255)``. NaN/inf, values out
    of range, bool and other dtypes are rejected. Labels are 1-D integers (integer-valued floats
    pass) in ``[0, num_classes)``; ``y_train`` may also hold -1 for unlabelled images. Object
    (pickled) arrays are refused: a data file must not run code.

    Args:
        path: the ``.npz`` file.
        num_classes: the number of classes; default: the largest label in ``y_train``/``y_test`` + 1.
        mean, std: per-channel (or single) normalisation statistics; default CIFAR-10's.
    """

    array_names = ("x_train", "y_train", "x_test", "y_test")

    def __init__(self, path: str, num_classes: int | None = None, mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465),
                 std: tuple[float, ...] = (0.2470, 0.2435, 0.2616), **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.declared_num_classes = None if num_classes is None else check_int("num_classes", num_classes, minimum=1)
        self.mean, self.std = tuple(mean), tuple(std)
        self._arrays = None

    @property
    def data_source(self) -> str:
        return repr(str(self.path))

    def load_arrays(self):
        if self._arrays is None:
            self._arrays = self._read()
        return self._arrays

    def _read(self) -> tuple[np.ndarray, ...]:
        source, wanted = self.data_source, ", ".join(self.array_names)
        if not self.path.is_file():
            raise DataError(f"data file {source} does not exist; expected an .npz with {wanted}")
        unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
        with open(self.path, "rb") as file:  # our own handle: np.load leaks its own when the file is no zip
            try:
                data = np.load(file)  # allow_pickle=False
            except unreadable as exc:
                raise DataError(f"cannot read {source} as .npz: {exc}") from None
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DataError(f"{source} holds a single array, not an .npz with {wanted}")
            arrays = []
            with data:
                missing = set(self.array_names) - set(data.files)
                if missing:
                    raise DataError(f"{source} lacks arrays {sorted(missing)}; it has {sorted(data.files)}")
                for name in self.array_names:
                    try:
                        arrays.append(data[name])
                    except unreadable as exc:
                        if "allow_pickle" in str(exc):
                            raise DataError(f"{name!r} in {source} is an object (pickled) array, which nasframe does not load; "
                                            "save numeric arrays: uint8 or [0, 1] float images, integer labels") from None
                        raise DataError(f"cannot read {name!r} in {source}: {exc}") from None
        for i in (0, 2):  # NHWC -> NCHW; other shapes are reported by the checks in NASDataModule
            if arrays[i].ndim == 4 and arrays[i].shape[-1] in (1, 3) and arrays[i].shape[1] not in (1, 3):
                arrays[i] = arrays[i].transpose(0, 3, 1, 2)
        return tuple(arrays)


class CIFARDataModule(NASDataModule):
    """CIFAR-10 or CIFAR-100 through torchvision from a local ``root`` (``download: true`` fetches it)."""

    def __init__(self, root: str, dataset: str = "cifar10", download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if dataset not in ("cifar10", "cifar100"):
            raise DataError(f"unknown dataset {dataset!r}; accepted: 'cifar10', 'cifar100'")
        self.root, self.dataset, self.download = root, dataset, download
        self.declared_num_classes = 10 if dataset == "cifar10" else 100
        self.mean, self.std = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)) if dataset == "cifar10" else \
            ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
        self._arrays = None

    @property
    def data_source(self) -> str:
        return f"{self.dataset} under {self.root!r}"

    def load_arrays(self):
        if self._arrays is None:
            from torchvision import datasets

            klass = datasets.CIFAR10 if self.dataset == "cifar10" else datasets.CIFAR100
            try:
                train = klass(self.root, train=True, download=self.download)
                test = klass(self.root, train=False, download=self.download)
            except RuntimeError as exc:
                raise DataError(f"{self.dataset} not found under {self.root!r} ({exc}); set download: true or point root at it") from None
            self._arrays = (train.data.transpose(0, 3, 1, 2), np.array(train.targets), test.data.transpose(0, 3, 1, 2), np.array(test.targets))
        return self._arrays
