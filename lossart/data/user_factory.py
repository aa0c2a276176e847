"""A user's own dataset: `--data package.module:factory`.

The factory is called with no arguments and returns either
- arrays or tensors: a dict with `x_train`, `y_train`, `x_test`, `y_test` (optionally
  `num_classes`, `mean`, `std`, `classes`, `augment`), or the tuple `(x_train, y_train, x_test,
  y_test)`; or
- two map-style torch `Dataset`s of `(x, y)` items: a dict with `train` and `test` (and the same
  optional keys), or the tuple `(train, test)`. They are materialized to tensors once per load,
  refused in one line if they would take more than `MAX_BYTES` of memory.

Inputs: uint8 images N,C,H,W or N,H,W,C (C in 1, 3, 4) or N,H,W; float images N,C,H,W (torch's
layout; `ToTensor()` output, on a 1/255 grid in [0, 1], is stored as uint8 exactly); or features
[N, D]. Integer labels make a classification task, float labels regression.

Normalization: the inputs are used as given (uint8 images scaled to [0, 1]) unless `mean` and
`std` are returned (per channel on the [0, 1] scale for images, per feature otherwise), so a model
trained on the factory's own output sees the same inputs here. Augmentation follows `.npz` sets
(crop-flip for 3-channel uint8 images, crop for others, none for features) unless `augment` says
otherwise ("crop-flip", "crop" or "none").
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lossart.data.spec import Dataset, DataSpec, is_factory_name  # noqa: F401 (re-export)
from lossart.errors import LossartError
from lossart.progress import progress

MAX_BYTES = 4 * 2**30  # both splits together, as held in memory
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
AUGMENTS = ("crop-flip", "crop", "none")


def _factory(name: str):
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise LossartError(
            f"--data {name!r}: cannot import module {module_name!r} ({exc})"
        ) from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise LossartError(f"--data {name!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise LossartError(f"--data {name!r}: {attr!r} is not callable")
    return fn


def _is_dataset(obj: Any) -> bool:
    return isinstance(obj, torch.utils.data.Dataset) or (
        hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not _is_array(obj)
    )


def _is_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray | torch.Tensor)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if hasattr(x, "mode") and hasattr(x, "size") and not _is_array(x):  # a PIL image: HWC
        a = np.asarray(x)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return np.asarray(x)


def _item_bytes(x: np.ndarray) -> int:
    per = 1 if x.dtype == np.uint8 else 4
    return int(x.size) * per


def _materialize(name: str, split: str, ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stack a map-style dataset's `(x, y)` items into two arrays, after a memory check."""
    try:
        n = len(ds)
    except TypeError:
        raise LossartError(
            f"--data {name!r}: {split} dataset has no len(); expected a map-style torch Dataset"
        ) from None
    if n == 0:
        raise LossartError(f"--data {name!r}: {split} dataset is empty")

    def item(i: int) -> tuple[np.ndarray, np.ndarray]:
        it = ds[i]
        if not isinstance(it, tuple | list) or len(it) < 2:
            raise LossartError(
                f"--data {name!r}: {split} item {i} is a {type(it).__name__}; expected (x, y)"
            )
        return _as_numpy(it[0]), _as_numpy(it[1])

    x0, y0 = item(0)
    need = n * _item_bytes(x0)
    if need > MAX_BYTES:
        raise LossartError(
            f"--data {name!r}: {split} set would take {need / 2**30:.1f} GiB in memory "
            f"({n} items of shape {x0.shape} {x0.dtype}); lossart holds data in memory, "
            f"limit {MAX_BYTES / 2**30:.0f} GiB: use fewer or smaller items"
        )
    xs = np.empty((n, *x0.shape), dtype=x0.dtype)
    ys = np.empty((n, *y0.shape), dtype=y0.dtype)
    with progress(n, desc=f"load {split} items", unit="item") as bar:
        for i in range(n):
            x, y = (x0, y0) if i == 0 else item(i)
            if x.shape != x0.shape or y.shape != y0.shape:
                raise LossartError(
                    f"--data {name!r}: {split} item {i} has x {x.shape}, y {y.shape}; "
                    f"item 0 has x {x0.shape}, y {y0.shape}"
                )
            xs[i], ys[i] = x, y
            bar.update()
    return xs, ys


def _inputs(name: str, key: str, x: np.ndarray) -> torch.Tensor:
    """uint8 NCHW images, float32 NCHW images or float32 [N, D] features."""
    if x.ndim < 2 or x.shape[0] == 0:
        raise LossartError(f"--data {name!r}: {key} has shape {x.shape}; expected [N, ...], N > 0")
    if x.ndim in (3, 4) and np.issubdtype(x.dtype, np.floating):
        x = x[:, None] if x.ndim == 3 else x
        scaled = x * 255.0
        if x.min() >= 0 and x.max() <= 1 and np.allclose(scaled, np.rint(scaled), atol=1e-3):
            x = np.rint(scaled).astype(np.uint8)  # ToTensor() of uint8 pixels: exact
        else:
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if x.dtype == np.uint8 and x.ndim == 3:
        x = x[:, None]
    if x.dtype == np.uint8 and x.ndim == 4:
        if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(x))
    if x.ndim == 2 and np.issubdtype(x.dtype, np.number):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    raise LossartError(
        f"--data {name!r}: {key} has shape {x.shape} dtype {x.dtype}; expected images "
        "[N,C,H,W] (uint8 or float) or [N,H,W,C] (uint8), or features [N, D]"
    )


def _labels(name: str, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise LossartError(f"--data {name!r}: {key} has shape {y.shape}; expected ({n},)")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise LossartError(f"--data {name!r}: {key} has dtype {y.dtype}; expected ints or floats")
    return y


def _unpack(name: str, out: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The four arrays and the optional settings from whatever the factory returned."""
    opts: dict[str, Any] = {}
    if isinstance(out, Mapping):
        opts = {k: out[k] for k in ("num_classes", "mean", "std", "classes", "augment") if k in out}
        if all(k in out for k in ARRAY_KEYS):
            parts = [out[k] for k in ARRAY_KEYS]
        elif "train" in out and "test" in out:
            parts = [out["train"], out["test"]]
        else:
            raise LossartError(
                f"--data {name!r}: factory returned a dict with keys {sorted(out)}; expected "
                f"{', '.join(ARRAY_KEYS)} or train, test"
            )
    elif isinstance(out, tuple | list) and len(out) in (2, 4):
        parts = list(out)
    else:
        raise LossartError(
            f"--data {name!r}: factory returned {type(out).__name__}; expected (x_train, y_train, "
            "x_test, y_test), (train_dataset, test_dataset) or a dict of them"
        )
    if len(parts) == 2:
        if not all(_is_dataset(p) for p in parts):
            raise LossartError(
                f"--data {name!r}: expected two torch Datasets (train, test), got "
                f"{type(parts[0]).__name__}, {type(parts[1]).__name__}"
            )
        (xtr, ytr), (xte, yte) = (
            _materialize(name, s, p) for s, p in zip(("train", "test"), parts)
        )
        return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}, opts
    arrays = {}
    for key, value in zip(ARRAY_KEYS, parts):
        if not _is_array(value):
            raise LossartError(
                f"--data {name!r}: {key} is a {type(value).__name__}; expected a numpy array or tensor"
            )
        arrays[key] = _as_numpy(value)
    return arrays, opts


def _stats(name: str, opts: dict[str, Any], channels: int) -> tuple[tuple[float, ...], ...]:
    if ("mean" in opts) != ("std" in opts):
        raise LossartError(f"--data {name!r}: give both mean and std, or neither")
    if "mean" not in opts:
        return (), ()
    mean = tuple(float(v) for v in np.ravel(opts["mean"]))
    std = tuple(float(v) for v in np.ravel(opts["std"]))
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise LossartError(
            f"--data {name!r}: mean/std have {len(mean)}/{len(std)} values; expected {channels} "
            "(one per channel or feature), std > 0"
        )
    return mean, std


def load_user_dataset(spec: DataSpec) -> Dataset:
    """Call the factory named by `spec.name` and check what it returns (one-line errors)."""
    name = spec.name
    fn = _factory(name)
    try:
        out = fn()
    except LossartError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code failed: say so in one line
        raise LossartError(f"--data {name!r}: factory raised {type(exc).__name__}: {exc}") from exc
    arrays, opts = _unpack(name, out)
    x_train = _inputs(name, "x_train", arrays["x_train"])
    x_test = _inputs(name, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
        raise LossartError(
            f"--data {name!r}: x_test items are {tuple(x_test.shape[1:])} {x_test.dtype}, "
            f"x_train {tuple(x_train.shape[1:])} {x_train.dtype}; expected the same"
        )
    ytr = _labels(name, "y_train", arrays["y_train"], x_train.shape[0])
    yte = _labels(name, "y_test", arrays["y_test"], x_test.shape[0])
    classes = tuple(str(c) for c in opts.get("classes", ()))
    if np.issubdtype(ytr.dtype, np.integer) and np.issubdtype(yte.dtype, np.integer):
        task = "classification"
        seen = int(max(ytr.max(), yte.max())) + 1
        num_classes = int(opts.get("num_classes", max(len(classes), seen)))
        if min(ytr.min(), yte.min()) < 0 or seen > num_classes:
            raise LossartError(
                f"--data {name!r}: labels run {min(ytr.min(), yte.min())}..{seen - 1}; "
                f"expected 0..{num_classes - 1}"
            )
        y_train, y_test = (torch.from_numpy(y.astype(np.int64)) for y in (ytr, yte))
    elif np.issubdtype(ytr.dtype, np.floating) and np.issubdtype(yte.dtype, np.floating):
        task, num_classes = "regression", 0
        y_train, y_test = (torch.from_numpy(y.astype(np.float32)) for y in (ytr, yte))
    else:
        raise LossartError(
            f"--data {name!r}: y_train {ytr.dtype} / y_test {yte.dtype}; "
            "expected both integer (classes) or both float (regression)"
        )
    image = x_train.dim() == 4
    mean, std = _stats(name, opts, x_train.shape[1])
    uint8_image = image and x_train.dtype == torch.uint8
    augment = opts.get("augment")
    if augment is None:
        augment = ("crop-flip" if x_train.shape[1] == 3 else "crop") if uint8_image else "none"
    if augment not in AUGMENTS:
        raise LossartError(f"--data {name!r}: augment {augment!r}; expected one of {AUGMENTS}")
    pad = max(1, round(4 * x_train.shape[-1] / 32)) if uint8_image else 0
    return Dataset(
        spec, task, num_classes, tuple(x_train.shape[1:]), x_train, y_train, x_test, y_test,
        mean, std, classes, augment, pad,
        info={"factory": name, "num_classes_declared": "num_classes" in opts},
    )  # fmt: skip
