"""`--data package.module:factory`: a user's arrays or torch Datasets as a lossart dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossart.data import eval_subset, load_dataset, parse_data_spec, train_loader
from lossart.errors import LossartError


def test_factory_names_parse_and_other_names_stay_as_they_were(tmp_path):
    spec = parse_data_spec("user_models:arrays")
    assert spec.name == "user_models:arrays" and spec.kind == "factory"
    assert parse_data_spec(f"npz:{tmp_path}/x.npz").kind == "npz"
    assert parse_data_spec("CIFAR-10").name == "cifar10"
    with pytest.raises(LossartError, match="unknown dataset; known: .*package.module:factory"):
        parse_data_spec("user models:arrays")


def test_arrays_are_used_as_given_without_mean_and_std():
    import user_models

    ds = load_dataset("user_models:arrays")
    raw = user_models.arrays()
    assert ds.task == "classification" and ds.num_classes == 3 and ds.classes == ("r", "g", "b")
    assert ds.input_shape == (3, 8, 8) and ds.x_train.dtype == torch.uint8
    assert torch.equal(ds.x_train, torch.from_numpy(raw["x_train"].transpose(0, 3, 1, 2)))
    assert ds.augment == "crop-flip" and ds.is_image
    x, y = eval_subset(ds, "test")
    torch.testing.assert_close(x, ds.x_test.float() / 255.0)
    assert torch.equal(y, torch.from_numpy(raw["y_test"]))
    xb, _ = next(train_loader(ds, 16, seed=0, epoch=0))
    assert xb.shape == (16, 3, 8, 8)


def test_mean_and_std_normalize_per_channel():
    ds = load_dataset("user_models:arrays_normalized")
    x, _ = eval_subset(ds, "train")
    torch.testing.assert_close(x, (ds.x_train.float() / 255.0 - 0.5) / 0.25)


def test_torch_datasets_materialize_exactly():
    a = load_dataset("user_models:arrays")
    d = load_dataset("user_models:datasets")  # ToTensor-style floats on the 1/255 grid
    assert d.x_train.dtype == torch.uint8
    assert torch.equal(d.x_train, a.x_train) and torch.equal(d.y_test, a.y_test)


def test_float_images_off_the_pixel_grid_stay_float_and_normalize_per_channel(monkeypatch):
    import user_models

    def shifted():
        tr, te = user_models.datasets()
        tr.x = tr.x.astype(np.float32) * 1.5  # beyond [0, 1]: kept as float32 images
        te.x = te.x.astype(np.float32) * 1.5
        return {"train": tr, "test": te, "mean": [1, 2, 3], "std": [2, 2, 2]}

    monkeypatch.setattr(user_models, "shifted", shifted, raising=False)
    ds = load_dataset("user_models:shifted")
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape == (60, 3, 8, 8)
    assert ds.augment == "none"
    x, _ = eval_subset(ds, "train")
    mean = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (ds.x_train - mean) / 2.0)


def test_regression_features_from_a_tuple_of_tensors():
    ds = load_dataset("user_models:features")
    assert ds.task == "regression" and ds.num_classes == 0 and ds.input_shape == (3,)
    assert ds.y_train.shape == (40,) and ds.y_train.dtype == torch.float32


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("user_models:not_data", "factory returned str; expected"),
        ("user_models:broken", "factory raised RuntimeError: disk on fire"),
        ("user_models:nothing_here", "has no attribute 'nothing_here'"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ],
)
def test_bad_factories_are_one_line(name, message):
    with pytest.raises(LossartError, match=message) as info:
        load_dataset(name)
    assert "\n" not in str(info.value)


def test_datasets_too_big_for_memory_are_refused(monkeypatch):
    from lossart.data import user_factory

    monkeypatch.setattr(user_factory, "MAX_BYTES", 1000)
    with pytest.raises(LossartError, match=r"train set would take .* GiB in memory \(60 items"):
        load_dataset("user_models:datasets")
