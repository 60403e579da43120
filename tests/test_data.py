import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import shared_path
from nasframe import DataError
from nasframe.data import DigitsDataModule, NASDataModule, NpzDataModule


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


def test_limit_val_keeps_the_first_validation_images_for_validation_and_the_evaluation():
    from nasframe.evaluation import validation_images

    full, limited = DigitsDataModule(), DigitsDataModule(limit_val=40)
    full.setup()
    limited.setup()
    assert len(limited._splits["val"]) == 40 and len(validation_images(limited)) == 40
    torch.testing.assert_close(limited._splits["val"][7][0], full._splits["val"][7][0])
    assert len(limited._splits["train"]) == len(full._splits["train"]), "training images are untouched"
    assert len(DigitsDataModule(limit_val=10_000).validation_arrays()[0]) == 360


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


# ---- hostile input: every problem fails before training, naming the array or argument ----------------
def valid_arrays(channels=3, size=8, n_train=16, n_test=8, classes=4):
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n_train, channels, size, size), dtype=np.uint8),
            "y_train": np.arange(n_train) % classes,
            "x_test": rng.integers(0, 256, (n_test, channels, size, size), dtype=np.uint8),
            "y_test": np.arange(n_test) % classes}


def with_value(name, index, value, dtype=None):
    def change(arrays):
        array = arrays[name].astype(dtype or arrays[name].dtype)
        if name.startswith("x") and array.dtype.kind == "f":
            array /= 255  # valid floating images: only the value set below is out of range
        array[index] = value
        arrays[name] = array
    return change


def replace(name, array):
    def change(arrays):
        arrays[name] = array
    return change


@pytest.mark.parametrize("change, message", [
    (with_value("x_train", (2, 0, 1, 1), 255.0, np.float32), r"'x_train' in '.*bad.npz' has value 255.0 at index \[2, 0, 1, 1\]: floating images must be in \[0, 1\]"),
    (with_value("x_train", (3, 1, 0, 0), np.nan, np.float64), r"'x_train' in .* non-finite value nan at index \[3, 1, 0, 0\]"),
    (with_value("x_test", (1, 0, 0, 0), np.inf, np.float32), r"'x_test' in .* non-finite value inf at index \[1, 0, 0, 0\]"),
    (with_value("x_train", (0, 0, 0, 0), 300, np.int16), r"'x_train' in .* value 300 at index \[0, 0, 0, 0\].*integers in 0\.\.255"),
    (with_value("x_test", (0, 0, 0, 0), -1, np.int64), r"'x_test' in .* value -1 at index"),
    (replace("x_train", np.ones((16, 3, 8, 8), bool)), r"'x_train' in .* has dtype bool; accepted: uint8"),
    (replace("x_train", np.zeros((16, 3, 8), np.uint8)), r"'x_train' in .*: images must be a 4-D \(N, C, H, W\) array, got shape \(16, 3, 8\)"),
    (replace("x_test", np.zeros((8, 1, 8, 8), np.uint8)), r"'x_train' in .* has 3-channel images but 'x_test' has 1-channel"),
    (replace("x_train", np.zeros((256, 3, 8, 8), np.uint8)), r"'x_train' has 256 images but 'y_train' has 16 labels in '.*bad.npz'"),
    (replace("y_test", np.zeros(5, np.int64)), r"'x_test' has 8 images but 'y_test' has 5 labels"),
    (with_value("y_train", 3, 1.5, np.float64), r"'y_train' in .* has label value 1.5 at index \[3\]; labels must be integer"),
    (with_value("y_train", 5, np.nan, np.float32), r"'y_train' in .* has label value nan at index \[5\]"),
    (with_value("y_train", 4, -5), r"'y_train' in .* has label value -5 at index \[4\]; accepted: \[0, 4\) or -1 \(unlabelled\)"),
    (with_value("y_test", 6, -1), r"'y_test' in .* has label value -1 at index \[6\]; accepted: \[0, 4\)$"),
    (replace("y_train", np.zeros((16, 1), np.int64)), r"'y_train' in .*: labels must be a 1-D array .* got shape \(16, 1\)"),
    (replace("y_train", np.array(["cat"] * 16)), r"'y_train' in .* has dtype <U3; labels must be integers"),
    (replace("y_test", np.array([None] * 8, dtype=object)), r"'y_test' in .* is an object \(pickled\) array"),
])
def test_bad_npz_arrays_fail_before_training_naming_the_array(tmp_path, change, message):
    arrays = valid_arrays()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    data = NpzDataModule(str(tmp_path / "bad.npz"), batch_size=4)
    with pytest.raises(DataError, match=message):
        data.setup()


def test_labels_must_be_below_the_given_num_classes(tmp_path):
    np.savez(tmp_path / "data.npz", **valid_arrays(classes=4))
    with pytest.raises(DataError, match=r"'y_train' in .* label value 3 at index \[3\]; accepted: \[0, 3\) or -1"):
        NpzDataModule(str(tmp_path / "data.npz"), num_classes=3, batch_size=4).setup()
    data = NpzDataModule(str(tmp_path / "data.npz"), num_classes=6, batch_size=4)
    data.setup()
    assert data.num_classes == 6


def test_float_images_in_unit_range_are_scaled_to_uint8_and_unlabelled_marker_passes(tmp_path):
    arrays = valid_arrays()
    original = arrays["x_train"].copy()
    arrays["x_train"] = original.astype(np.float32) / 255  # rounding must give the bytes back exactly
    arrays["x_test"] = arrays["x_test"].astype(np.int32)
    arrays["y_train"] = arrays["y_train"].astype(np.float64)
    arrays["y_train"][:3] = -1
    np.savez(tmp_path / "float.npz", **arrays)
    data = NpzDataModule(str(tmp_path / "float.npz"), batch_size=4)
    x_train, y_train, _, _ = data.checked_arrays()
    assert x_train.dtype == np.uint8 and np.array_equal(x_train, original)
    assert y_train.dtype == np.int64 and list(y_train[:4]) == [-1, -1, -1, 3] and data.num_classes == 4


def test_a_file_that_is_not_an_npz_archive_fails_clearly(tmp_path):
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="holds a single array, not an .npz"):
        NpzDataModule(str(tmp_path / "single.npy")).setup()
    with pytest.raises(DataError, match=r"cannot read '.*junk.npz' as .npz"):
        NpzDataModule(str(tmp_path / "junk.npz")).setup()


@pytest.mark.parametrize("make, message", [
    (lambda: DigitsDataModule(batch_size=0), r"batch_size must be a positive integer, got 0"),
    (lambda: DigitsDataModule(batch_size=-3), r"batch_size must be a positive integer, got -3"),
    (lambda: DigitsDataModule(batch_size=2.5), r"batch_size must be a positive integer, got 2.5"),
    (lambda: DigitsDataModule(batch_size=True), r"batch_size must be a positive integer, got True"),
    (lambda: DigitsDataModule(num_workers=-1), r"num_workers must be an integer >= 0, got -1"),
    (lambda: DigitsDataModule(limit_train=-8), r"limit_train must be an integer >= 0, got -8"),
    (lambda: DigitsDataModule(limit_val=-1), r"limit_val must be an integer >= 0, got -1"),
    (lambda: DigitsDataModule(size=12), r"size must be a positive multiple of 8, got 12"),
    (lambda: DigitsDataModule(size=0), r"size must be a positive integer, got 0"),
    (lambda: NpzDataModule("x.npz", num_classes=0), r"num_classes must be a positive integer, got 0"),
])
def test_bad_constructor_arguments_fail_at_once(make, message):
    with pytest.raises(DataError, match=message):
        make()


def test_a_mean_that_does_not_match_the_channels_fails(tmp_path):
    np.savez(tmp_path / "grey.npz", **valid_arrays(channels=1))
    with pytest.raises(DataError, match=r"mean has 3 values but 'x_train' in '.*grey.npz' has 1 channel"):
        NpzDataModule(str(tmp_path / "grey.npz"), batch_size=4).setup()  # default: CIFAR-10's 3-channel mean
    NpzDataModule(str(tmp_path / "grey.npz"), batch_size=4, mean=(0.5,), std=(0.5,)).setup()


class ThirdPartyData(NASDataModule):
    """A subclass outside nasframe: its arrays get the same checks."""

    def __init__(self, labels, **kwargs):
        super().__init__(**kwargs)
        self.labels = labels

    def load_arrays(self):
        images = np.zeros((len(self.labels), 1, 8, 8), np.uint8)
        return images, self.labels, images[:4], np.zeros(4, np.int64)


def test_third_party_datamodules_get_the_same_checks():
    with pytest.raises(DataError, match=r"'y_train' in ThirdPartyData has label value -2 at index \[1\]"):
        ThirdPartyData(np.array([0, -2, 1, 1]), batch_size=2).setup()
    ThirdPartyData(np.array([0, -1, 1, 1]), batch_size=2).setup()


def space(**attributes):
    return SimpleNamespace(**attributes)


@pytest.mark.parametrize("make_data, attributes, message", [
    (lambda: DigitsDataModule(batch_size=8), dict(in_channels=3), r"'x_train' in DigitsDataModule gives 1-channel images, but the search space SimpleNamespace has in_channels=3"),
    (lambda: DigitsDataModule(batch_size=8, size=16), dict(in_channels=1, image_size=8), r"'x_val' in DigitsDataModule gives 16x16 images, but .* image_size=8"),
    (lambda: DigitsDataModule(batch_size=8), dict(num_classes=5), r"DigitsDataModule declares num_classes=10, but the search space SimpleNamespace has num_classes=5"),
    (lambda: DigitsDataModule(batch_size=8, eval_transform=lambda image: torch.zeros(1, 4, 4)), dict(image_size=8),
     r"'x_val' in DigitsDataModule gives 4x4 images after eval_transform, but"),
    (lambda: DigitsDataModule(batch_size=8, train_transform=lambda image: [torch.zeros(1, 8, 8), torch.zeros(3, 8, 8)]), dict(in_channels=1),
     r"'x_train' in DigitsDataModule gives 3-channel images after train_transform"),
])
def test_data_that_does_not_fit_the_space_fails(make_data, attributes, message):
    with pytest.raises(DataError, match=message):
        make_data().check_fits(space(**attributes))


def test_check_fits_passes_matching_data_and_skips_what_the_space_does_not_declare(tmp_path):
    DigitsDataModule(batch_size=8, size=16).check_fits(space(in_channels=1, image_size=16, num_classes=10))
    DigitsDataModule(batch_size=8).check_fits(space(image_size=None))
    # a training crop to another size is fine: the size the space declares is the evaluated one
    DigitsDataModule(batch_size=8, train_transform=lambda image: torch.zeros(1, 4, 4)).check_fits(space(image_size=8))
    np.savez(tmp_path / "data.npz", **valid_arrays(classes=4))
    data = NpzDataModule(str(tmp_path / "data.npz"), batch_size=4)
    data.check_fits(space(num_classes=4, in_channels=3, image_size=8))
    with pytest.raises(DataError, match=r"'y_train' in '.*data.npz' has label 3, but the search space SimpleNamespace has "
                                        r"num_classes=3 .*at least 4"):
        data.check_fits(space(num_classes=3))


def test_looking_at_the_transformed_images_leaves_the_random_state_alone():
    draws = lambda image: torch.rand(1, 8, 8) + np.random.rand() + random.random()  # noqa: E731
    data = DigitsDataModule(batch_size=8, train_transform=draws)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    data.check_fits(space(in_channels=1))
    assert torch.equal(torch.get_rng_state(), states[0]) and np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]


def test_cli_rejects_data_that_does_not_fit_the_space_before_training(tmp_path, capsys):
    from nasframe.cli import main
    from test_cli import tiny_args

    np.savez(tmp_path / "colour.npz", **valid_arrays(channels=3, n_train=160, n_test=40, classes=10))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(tmp_path), "--data", "nasframe.data.NpzDataModule", "--data.init_args.path", str(tmp_path / "colour.npz")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "nasframe: error: 'x_train' in '" in err and "colour.npz' gives 3-channel images" in err and "in_channels=1" in err
    assert not (tmp_path / "export").exists()
