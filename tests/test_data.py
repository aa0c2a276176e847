"""Datasets: spec parsing, built-ins' determinism, .npz and image-folder loaders and their errors,
torchvision's missing-data error (no network), evaluation subsets and training batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lossart.data import (
    DataSpec,
    eval_subset,
    load_dataset,
    normalize,
    num_batches,
    parse_data_spec,
    train_loader,
)
from lossart.data.batches import _crop_flip
from lossart.errors import LossartError


def test_parse_names_and_errors():
    assert parse_data_spec("CIFAR-10").name == "cifar10"
    assert parse_data_spec("fashionmnist").name == "fashion-mnist"
    spec = parse_data_spec("npz:rel/x.npz")
    assert spec.kind == "npz" and Path(spec.name[4:]).is_absolute()
    assert DataSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(LossartError, match="known: shapes, blobs2d, wave1d") as err:
        parse_data_spec("imagenet")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["shapes", "blobs2d", "wave1d"])
def test_builtins_are_deterministic(name):
    a, b = load_dataset(name), load_dataset(name)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert not torch.equal(a.x_train[: len(a.x_test)], a.x_test)  # test is not a copy of train


def test_shapes_is_a_balanced_uint8_image_task():
    ds = load_dataset("shapes")
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == (3, 16, 16)
    assert ds.input_shape == (3, 16, 16) and ds.num_classes == len(ds.classes) == 6
    counts = torch.bincount(ds.y_train, minlength=6)
    assert counts.min() > 0.8 * counts.float().mean()
    assert ds.augment == "crop-flip"


def test_blobs2d_and_wave1d():
    blobs = load_dataset("blobs2d")
    assert blobs.task == "classification" and blobs.input_shape == (2,) and blobs.num_classes == 3
    wave = load_dataset("wave1d")
    assert wave.task == "regression" and wave.num_classes == 0 and wave.input_shape == (1,)
    x = wave.x_train[:, 0]
    assert ((x.abs() > 0.45) & (x.abs() <= 1.0)).all()  # two intervals with a gap between
    assert (x < 0).sum() == (x > 0).sum()


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_images(tmp_path):
    rng = np.random.default_rng(0)
    path = _write_npz(
        tmp_path / "tiny.npz",
        x_train=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(20) % 4,
        x_test=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(6) % 4,
        classes=np.array(["a", "b", "c", "d"]),
    )
    ds = load_dataset(f"npz:{path}")
    assert ds.x_train.shape == (20, 3, 8, 8) and ds.x_train.dtype == torch.uint8
    raw = np.load(path)["x_train"]
    assert torch.equal(ds.x_train[3], torch.from_numpy(raw[3].transpose(2, 0, 1)))
    assert (
        ds.num_classes == 4 and ds.classes == ("a", "b", "c", "d") and ds.task == "classification"
    )
    x, _ = eval_subset(ds, "train")
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)  # normalized per channel


def test_npz_features_regression(tmp_path):
    path = _write_npz(
        tmp_path / "feat.npz",
        x_train=np.random.rand(10, 5), y_train=np.random.rand(10),
        x_test=np.random.rand(4, 5), y_test=np.random.rand(4),
    )  # fmt: skip
    ds = load_dataset(f"npz:{path}")
    assert ds.task == "regression" and ds.input_shape == (5,) and ds.x_train.dtype == torch.float32


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 3))},
         "array y_test missing"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(5, int), "x_test": np.zeros((2, 3)),
          "y_test": np.zeros(2, int)}, "array y_train has shape"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 7)),
          "y_test": np.zeros(2, int)}, "array x_test"),
        ({"x_train": np.zeros((4, 8, 8, 5), np.uint8), "y_train": np.zeros(4, int),
          "x_test": np.zeros((2, 8, 8, 5), np.uint8), "y_test": np.zeros(2, int)},
         "array x_train has shape"),
        ({"x_train": np.zeros(4), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 3)),
          "y_test": np.zeros(2, int)}, "array x_train"),
    ],
)  # fmt: skip
def test_npz_errors_name_file_and_array(tmp_path, arrays, message):
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(LossartError, match=message) as err:
        load_dataset(f"npz:{path}")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_npz_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(LossartError, match="not a readable .npz"):
        load_dataset(f"npz:{path}")
    with pytest.raises(LossartError, match="no such"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")


def test_shared_cifar_subset(cifar_subset_path):
    ds = load_dataset(f"npz:{cifar_subset_path}")
    assert ds.x_train.shape == (10000, 3, 32, 32) and ds.x_test.shape == (2000, 3, 32, 32)
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32) and ds.pad == 4
    x, y = next(train_loader(ds, 64, seed=0, epoch=0))
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (64,)
    xe, ye = eval_subset(ds, "train", 2000, seed=0)
    assert xe.shape == (2000, 3, 32, 32) and ye.dtype == torch.int64
    assert xe.mean((0, 2, 3)).abs().max() < 0.1 and (xe.std((0, 2, 3)) - 1).abs().max() < 0.1


def test_torchvision_missing_data_names_folder_and_flag(tmp_path):
    with pytest.raises(LossartError, match="--download") as err:
        load_dataset(DataSpec("cifar10", root=str(tmp_path / "nothing")))
    assert str(tmp_path / "nothing") in str(err.value) and "\n" not in str(err.value)


def _image_folder(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, classes in layout.items():
        for cls, n in classes.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    root = _image_folder(
        tmp_path / "set", {"train": {"cat": 3, "dog": 2}, "val": {"cat": 1, "dog": 1}}
    )
    ds = load_dataset(parse_data_spec(f"folder:{root}", size=8))
    assert ds.classes == ("cat", "dog") and ds.input_shape == (3, 8, 8)
    assert ds.x_train.shape == (5, 3, 8, 8) and ds.y_train.tolist() == [0, 0, 0, 1, 1]
    assert ds.x_test.shape == (2, 3, 8, 8)
    assert (root / ".lossart-cache-8px.npz").is_file()


def test_image_folder_cache(tmp_path, monkeypatch):
    import lossart.data.folder as folder

    root = _image_folder(tmp_path / "set", {"train": {"a": 2, "b": 2}, "val": {"a": 1}})
    first = load_dataset(parse_data_spec(f"folder:{root}", size=8))

    def no_decoding(path, size):
        raise AssertionError("decoded although the cache is current")

    with monkeypatch.context() as m:
        m.setattr(folder, "_load_image", no_decoding)
        cached = load_dataset(parse_data_spec(f"folder:{root}", size=8))
    assert torch.equal(cached.x_train, first.x_train) and torch.equal(cached.y_test, first.y_test)
    from PIL import Image

    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "train" / "b" / "new.png")
    grown = load_dataset(parse_data_spec(f"folder:{root}", size=8))  # cache invalidated
    assert grown.x_train.shape[0] == 5


def test_image_folder_wrong_layout(tmp_path):
    root = _image_folder(tmp_path / "flat", {"cat": {"x": 1}})
    with pytest.raises(LossartError, match="wrong layout") as err:
        load_dataset(f"folder:{root}")
    assert str(root) in str(err.value)
    root2 = _image_folder(tmp_path / "odd", {"train": {"cat": 1}, "val": {"cow": 1}})
    with pytest.raises(LossartError, match="class not in"):
        load_dataset(f"folder:{root2}")


def test_eval_subset_fixed_seeded_unaugmented():
    ds = load_dataset("shapes")
    x1, y1 = eval_subset(ds, "train", 100, seed=3)
    x2, y2 = eval_subset(ds, "train", 100, seed=3)
    x3, _ = eval_subset(ds, "train", 100, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    # un-augmented: each item is exactly a normalized stored image
    match = (normalize(ds, ds.x_train)[:, None] == x1[None]).flatten(2).all(2).any(0)
    assert match.all()
    xall, _ = eval_subset(ds, "test")
    assert xall.shape[0] == len(ds.x_test)
    xm, _ = eval_subset(ds, "test", 10, device="meta")
    assert xm.device.type == "meta"


def test_train_loader_is_a_function_of_seed_epoch_batch():
    ds = load_dataset("shapes")
    first = list(train_loader(ds, 512, seed=1, epoch=2))
    again = list(train_loader(ds, 512, seed=1, epoch=2))
    later = list(train_loader(ds, 512, seed=1, epoch=2, start_batch=3))
    other = next(train_loader(ds, 512, seed=1, epoch=3))
    assert len(first) == num_batches(ds, 512) == 10
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, again, strict=True)
    )
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first[3:], later, strict=True))
    assert not torch.equal(first[0][0], other[0])
    ys = torch.cat([y for _, y in first])
    assert torch.equal(ys.sort().values, ds.y_train.sort().values)  # every example once


def test_crop_flip_geometry():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    centred = torch.tensor([[2, 2], [2, 2]])
    assert torch.equal(_crop_flip(x, 2, centred, None), x)
    flipped = _crop_flip(x, 2, centred, torch.tensor([True, False]))
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])
    shifted = _crop_flip(x, 2, torch.tensor([[0, 2], [2, 4]]), None)
    assert torch.equal(shifted[0, 0, 2:], x[0, 0, :2]) and (shifted[0, 0, :2] == 0).all()
    assert torch.equal(shifted[1, 0, :, :2], x[1, 0, :, 2:]) and (shifted[1, 0, :, 2:] == 0).all()


def test_augmentation_only_when_asked():
    ds = load_dataset("shapes")
    plain = torch.cat([x for x, _ in train_loader(ds, 1000, 0, 0, augment=False)])
    aug = torch.cat([x for x, _ in train_loader(ds, 1000, 0, 0, augment=True)])
    assert not torch.equal(plain, aug)
    perm = torch.randperm(
        len(ds.x_train), generator=torch.Generator().manual_seed(0 * 1_000_003 + 0)
    )
    assert torch.equal(plain, normalize(ds, ds.x_train[perm]))


class _FakeVision:
    """What torchvision datasets expose: CIFAR (.data NHWC numpy, .targets list), MNIST (.data
    tensor NHW), SVHN (.data NCHW numpy, .labels)."""

    def __init__(self, name: str, n: int):
        rng = np.random.default_rng(n)
        if name == "svhn":
            self.data = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
            self.labels = rng.integers(0, 10, n)
        elif name == "mnist":
            self.data = torch.from_numpy(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            self.targets = torch.from_numpy(rng.integers(0, 10, n))
            self.classes = [str(i) for i in range(10)]
        else:
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = list(rng.integers(0, 10, n))
            self.classes = [f"c{i}" for i in range(10)]


@pytest.mark.parametrize(
    "name, shape, augment",
    [
        ("cifar10", (3, 32, 32), "crop-flip"),
        ("mnist", (1, 28, 28), "crop"),
        ("svhn", (3, 32, 32), "crop"),
    ],
)
def test_torchvision_arrays_become_uint8_nchw(monkeypatch, name, shape, augment):
    import lossart.data.vision as vision

    monkeypatch.setattr(
        vision, "_split", lambda n, root, train, dl: _FakeVision(n, 12 if train else 5)
    )
    ds = load_dataset(name)
    assert ds.x_train.shape == (12, *shape) and ds.x_test.shape == (5, *shape)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.input_shape == shape and ds.num_classes == 10 and ds.augment == augment
    fake = _FakeVision(name, 12)
    first = torch.as_tensor(np.asarray(fake.data[0]))
    if name == "cifar10":
        first = first.permute(2, 0, 1)
    elif name == "mnist":
        first = first[None]
    assert torch.equal(ds.x_train[0], first)
