"""Concrete datamodules: the embedded digits default, an ``.npz`` of images, CIFAR through torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasframe.data.base import NASDataModule
from nasframe.errors import DataError


class DigitsDataModule(NASDataModule):
    """scikit-learn's 1,797 handwritten digits (1x8x8, 10 classes): ships with the package, no download.

    The embedded default for the quickstart and tests. A fixed 80/20 split (seeded) gives 1,437
    training and 360 validation images. ``size`` upsamples the images (nearest) for spaces with
    more downsampling.
    """

    mean = (0.3,)
    std = (0.38,)

    def __init__(self, size: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = size

    def load_arrays(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)[:, None]
        if self.size != 8:
            if self.size % 8:
                raise DataError(f"DigitsDataModule size must be a multiple of 8, got {self.size}")
            images = images.repeat(self.size // 8, axis=2).repeat(self.size // 8, axis=3)
        order = np.random.default_rng(1234).permutation(len(images))
        cut = int(len(images) * 0.8)
        train, val = order[:cut], order[cut:]
        return images[train], digits.target[train], images[val], digits.target[val]


class NpzDataModule(NASDataModule):
    """Images from an ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (uint8 NCHW or NHWC).

    E.g. ``../shared/data/cifar10/cifar10_partial.npz`` (4,660 train / 932 test CIFAR-10 images).
    ``mean``/``std`` default to CIFAR-10's per-channel statistics.
    """

    def __init__(self, path: str, mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465),
                 std: tuple[float, ...] = (0.2470, 0.2435, 0.2616), **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.mean, self.std = tuple(mean), tuple(std)
        self._arrays = None

    def load_arrays(self):
        if self._arrays is None:
            if not self.path.is_file():
                raise DataError(f"data file {str(self.path)!r} does not exist; expected an .npz with x_train, y_train, x_test, y_test")
            try:
                with np.load(self.path) as data:
                    missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
                    if missing:
                        raise DataError(f"{str(self.path)!r} lacks arrays {sorted(missing)}; it has {sorted(data.files)}")
                    arrays = [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read {str(self.path)!r} as .npz: {exc}") from None
            for i in (0, 2):
                if arrays[i].ndim != 4:
                    raise DataError(f"{str(self.path)!r}: images must be 4-D (N, C, H, W), got shape {arrays[i].shape}")
                if arrays[i].shape[-1] in (1, 3) and arrays[i].shape[1] not in (1, 3):
                    arrays[i] = arrays[i].transpose(0, 3, 1, 2)
                arrays[i] = arrays[i].astype(np.uint8)
            self._arrays = tuple(arrays)
        return self._arrays


class CIFARDataModule(NASDataModule):
    """CIFAR-10 or CIFAR-100 through torchvision from a local ``root`` (``download: true`` fetches it)."""

    def __init__(self, root: str, dataset: str = "cifar10", download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if dataset not in ("cifar10", "cifar100"):
            raise DataError(f"unknown dataset {dataset!r}; accepted: 'cifar10', 'cifar100'")
        self.root, self.dataset, self.download = root, dataset, download
        self.mean, self.std = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)) if dataset == "cifar10" else \
            ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
        self._arrays = None

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
