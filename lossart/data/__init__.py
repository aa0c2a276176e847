"""Datasets: `parse_data_spec`, `load_dataset`, `eval_subset`, `train_loader` (see
docs/architecture.md).

Sources: built-ins generated locally (`shapes`, `blobs2d`, `wave1d`), torchvision sets (`cifar10`,
`cifar100`, `mnist`, `fashion-mnist`, `svhn`; downloaded only when asked), `npz:PATH`,
`folder:PATH` and a user's `package.module:factory`. Everything is held in memory; images as
uint8 NCHW tensors.
"""

from __future__ import annotations

from lossart.data.batches import eval_subset, normalize, num_batches, train_loader
from lossart.data.spec import Dataset, DataSpec, known_datasets, parse_data_spec


def load_dataset(spec: DataSpec | str) -> Dataset:
    """The whole dataset for `spec` (a spec or a `--data` string), in memory, its inputs and
    labels checked (`lossart.data.labels.check_dataset`)."""
    from lossart.data.labels import check_dataset

    return check_dataset(_load(parse_data_spec(spec) if isinstance(spec, str) else spec))


def _load(spec: DataSpec) -> Dataset:
    kind = spec.kind
    if kind == "builtin":
        from lossart.data.builtin import BUILDERS

        return BUILDERS[spec.name](spec)
    if kind == "npz":
        from lossart.data.arrays import load_npz

        return load_npz(spec)
    if kind == "folder":
        from lossart.data.folder import load_folder

        return load_folder(spec)
    if kind == "factory":
        from lossart.data.user_factory import load_user_dataset

        return load_user_dataset(spec)
    from lossart.data.spec import TORCHVISION

    if spec.name not in TORCHVISION:
        from lossart.errors import LossartError

        raise LossartError(f"--data {spec.name!r}: unknown dataset; known: {known_datasets()}")
    from lossart.data.vision import load_vision

    return load_vision(spec)


__all__ = [
    "DataSpec",
    "Dataset",
    "eval_subset",
    "known_datasets",
    "load_dataset",
    "normalize",
    "num_batches",
    "parse_data_spec",
    "train_loader",
]
