"""The one check of a loaded dataset's inputs and labels, whatever its source.

Why: labels the model cannot learn give wrong results with exit status 0 (test labels 3..5 next
to training labels 0..2 report 0% test accuracy; one stray label 15 among 0..2 builds a 16-class
model), and inputs of 0x0 pixels or NaN targets fail far away. `check_dataset` runs once in
`lossart.data.load_dataset`, for built-in, torchvision, npz, folder and factory data alike.

Classification: labels are whole numbers 0..K-1; for the user's own data (npz, folder,
factory) every test label occurs among the training labels; and where K was not declared (an npz without a `classes` array, a factory without
`num_classes` or `classes`), K = max label + 1 and every one of the K classes has training
examples. Regression: targets finite. Inputs: every dimension at least 1.
"""

from __future__ import annotations

import torch

from lossart.data.spec import Dataset
from lossart.errors import LossartError

SHOW = 6  # labels listed in a message


def _where(ds: Dataset) -> str:
    kind = ds.spec.kind
    if kind in ("npz", "folder"):
        return str(ds.spec.path)
    return f"--data {ds.spec.name!r}"


def _list(values: list[int]) -> str:
    more = f", ... ({len(values)} in all)" if len(values) > SHOW else ""
    return ", ".join(map(str, values[:SHOW])) + more


def declared_classes(ds: Dataset) -> bool:
    """Whether the source states its number of classes (else it is inferred from the labels)."""
    return ds.spec.kind in ("builtin", "torchvision", "folder") or bool(ds.classes) or bool(
        ds.info.get("num_classes_declared")
    )


def check_dataset(ds: Dataset) -> Dataset:
    """`ds` unchanged, or a one-line error naming the file (or `--data`) and what is wrong."""
    where = _where(ds)
    for split, x in (("x_train", ds.x_train), ("x_test", ds.x_test)):
        if x.dim() < 2 or x.shape[0] == 0 or min(x.shape[1:]) < 1:
            raise LossartError(f"{where}: {split} has shape {tuple(x.shape)}; expected [N, ...] "
                               "with every size >= 1")  # fmt: skip
    if ds.task != "classification":
        for split, y in (("y_train", ds.y_train), ("y_test", ds.y_test)):
            if y.is_floating_point() and not bool(torch.isfinite(y).all()):
                raise LossartError(f"{where}: {split} has NaN/inf targets; expected finite numbers")
        return ds
    ytr, yte, k = ds.y_train, ds.y_test, ds.num_classes
    for split, y in (("y_train", ytr), ("y_test", yte)):
        if y.is_floating_point() or y.numel() == 0:
            raise LossartError(f"{where}: {split} must hold whole-number class labels")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= k:
            raise LossartError(f"{where}: {split} has labels {lo}..{hi}; expected 0..{k - 1} "
                               f"({k} classes)")  # fmt: skip
    if ds.spec.kind in ("builtin", "torchvision"):
        return ds  # lossart's own and torchvision's sets: their classes are known
    seen = set(torch.unique(ytr).tolist())
    unseen = sorted(set(torch.unique(yte).tolist()) - seen)
    if unseen:
        raise LossartError(
            f"{where}: y_test has label(s) {_list(unseen)} that y_train never has "
            f"(training labels {_list(sorted(seen))}); a model cannot learn them"
        )
    if not declared_classes(ds):
        empty = [c for c in range(k) if c not in seen]
        if empty:
            raise LossartError(
                f"{where}: labels 0..{k - 1} make {k} classes, but y_train has no example of "
                f"{_list(empty)}; expected labels 0..K-1 (declare K with a 'classes' array)"
            )
    return ds
