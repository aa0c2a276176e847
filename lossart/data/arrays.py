"""A generic `.npz` of arrays: `x_train`, `y_train`, `x_test`, `y_test` (optionally `classes`).

Images are uint8 NHWC ([N, H, W, C] with C in 1, 3, 4) or [N, H, W] grayscale; NCHW is accepted
too. Anything [N, D] is a float feature set. Integer labels make a classification task, float
labels a regression task. Every mismatch is a one-line error naming the file and the array.
"""

from __future__ import annotations

import zipfile

import numpy as np
import torch

from lossart.data.spec import Dataset, DataSpec, feature_stats, image_stats
from lossart.errors import LossartError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _as_images(path, key: str, x: np.ndarray) -> np.ndarray:
    """uint8 NCHW from NHWC, NCHW or NHW."""
    if x.ndim == 3:
        return x[:, None]
    if x.shape[-1] in (1, 3, 4):
        return x.transpose(0, 3, 1, 2)
    if x.shape[1] in (1, 3, 4):
        return x
    raise LossartError(
        f"{path}: array {key} has shape {x.shape}; expected images N,H,W,C with C in 1, 3, 4"
    )


def load_npz(spec: DataSpec) -> Dataset:
    path = spec.path
    if not path.is_file():
        raise LossartError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise LossartError(
                    f"{path}: array {missing[0]} missing; expected {', '.join(KEYS)}"
                )
            arrays = {k: f[k] for k in KEYS}
            classes = tuple(str(c) for c in f["classes"]) if "classes" in f.files else ()
    except LossartError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise LossartError(f"{path}: not a readable .npz file ({exc})") from None

    xs = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or x.shape[0] == 0:
            raise LossartError(
                f"{path}: array x_{split} has shape {x.shape}; expected [N, ...] with N > 0"
            )
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise LossartError(
                f"{path}: array y_{split} has shape {y.shape}; "
                f"expected ({x.shape[0]},) to match x_{split}"
            )
        if x.dtype == np.uint8 and x.ndim in (3, 4):
            x = _as_images(path, f"x_{split}", x)
        elif x.ndim == 2 and np.issubdtype(x.dtype, np.number):
            x = x.astype(np.float32)
            if not np.isfinite(x).all():
                row = int(np.argwhere(~np.isfinite(x))[0][0])
                raise LossartError(
                    f"{path}: array x_{split} has NaN/inf features (first in row {row}); "
                    "expected finite numbers"
                )
        else:
            raise LossartError(
                f"{path}: array x_{split} has shape {x.shape} dtype {x.dtype}; "
                "expected uint8 images [N,H,W(,C)] or numeric features [N, D]"
            )
        xs[split] = torch.from_numpy(np.ascontiguousarray(x))
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise LossartError(
            f"{path}: array x_test has items of shape {tuple(xs['test'].shape[1:])}, "
            f"x_train {tuple(xs['train'].shape[1:])}; expected the same"
        )

    ytr, yte = arrays["y_train"], arrays["y_test"]
    if np.issubdtype(ytr.dtype, np.integer) and np.issubdtype(yte.dtype, np.integer):
        task = "classification"
        lo = min(ytr.min(), yte.min())
        num_classes = len(classes) or int(max(ytr.max(), yte.max())) + 1
        if lo < 0:
            raise LossartError(f"{path}: array y_train/y_test has negative labels; expected 0..K-1")
        y_train, y_test = (
            torch.from_numpy(ytr.astype(np.int64)),
            torch.from_numpy(yte.astype(np.int64)),
        )
    elif np.issubdtype(ytr.dtype, np.floating) and np.issubdtype(yte.dtype, np.floating):
        task, num_classes = "regression", 0
        y_train, y_test = (
            torch.from_numpy(ytr.astype(np.float32)),
            torch.from_numpy(yte.astype(np.float32)),
        )
    else:
        raise LossartError(
            f"{path}: arrays y_train {ytr.dtype} / y_test {yte.dtype}; "
            "expected both integer or both float"
        )

    x_train = xs["train"]
    image = x_train.dtype == torch.uint8
    mean, std = image_stats(x_train) if image else feature_stats(x_train)
    augment = ("crop-flip" if x_train.shape[1] == 3 else "crop") if image else "none"
    pad = max(1, round(4 * x_train.shape[-1] / 32)) if image else 0
    return Dataset(
        spec, task, num_classes, tuple(x_train.shape[1:]), x_train, y_train, xs["test"], y_test,
        mean, std, classes, augment, pad,
    )  # fmt: skip
