"""A built model checked against the data it is to learn, once, before any work.

Why: a zoo, torchvision or user model that does not fit the data fails far from the cause (deep
in a convolution, in cross-entropy's "Target 4 is out of bounds", in SGD's "empty parameter
list") or, worse, trains silently. `check_fits` makes one eval-mode forward pass of two training
inputs without gradients (no RNG is drawn and no BN statistic moves, so results are unchanged)
and checks, in one line naming `--model`: the model has trainable parameters, accepts the data's
inputs, and gives one output per class (classification) or one per target value (regression).
"""

from __future__ import annotations

from math import prod

import torch
from torch import nn

from lossart.data import Dataset
from lossart.data.batches import normalize
from lossart.errors import LossartError
from lossart.models.registry import ModelSpec, create_model

PROBE = 2  # inputs in the probe pass (2: BatchNorm in train mode would need more than one)


def _shape(shape) -> str:
    return "x".join(map(str, tuple(shape))) or "scalar"


def check_fits(model: nn.Module, spec: ModelSpec, ds: Dataset) -> None:
    """One line naming `--model` unless `model` has weights and maps the data's inputs to outputs
    of the data's size (see the module docstring)."""
    name = f"--model {spec.name!r}"
    trainable = [p for p in model.parameters() if p.requires_grad]
    if sum(p.numel() for p in trainable) == 0:
        raise LossartError(f"{name}: the model has no trainable parameters; expected a network "
                           "with weights to train")  # fmt: skip
    device = trainable[0].device
    x = normalize(ds, ds.x_train[:PROBE].to(device))
    y = ds.y_train[:PROBE]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except LossartError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's forward raises: one line
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise LossartError(
            f"{name}: fails on inputs of shape {_shape(ds.input_shape)} from --data "
            f"{ds.spec.name!r} ({type(exc).__name__}: {reason})"
        ) from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor):
        raise LossartError(f"{name}: forward returned a {type(out).__name__}; expected a tensor "
                           "of outputs")  # fmt: skip
    per_item = tuple(out.shape[1:]) if out.dim() else ()
    if ds.task == "classification":
        ok = out.dim() == 2 and out.shape[0] == x.shape[0] and out.shape[1] == ds.num_classes
        want = f"{ds.num_classes} outputs (one per class)"
    else:
        need = y[0].numel() if y.dim() > 1 else 1
        ok = out.shape[:1] == x.shape[:1] and prod(per_item) == need
        want = f"{need} output(s) per input (the target's size)"
    if not ok or not out.is_floating_point():
        raise LossartError(
            f"{name}: gives outputs of shape {_shape(per_item)} per input; --data "
            f"{ds.spec.name!r} needs {want}"
        )


def build_for_data(spec: ModelSpec, ds: Dataset) -> nn.Module:
    """`create_model(spec)`, checked to fit `ds` (`check_fits`): the door for training."""
    if tuple(spec.input_shape) != tuple(ds.input_shape) or (
        ds.task == "classification" and spec.num_classes != ds.num_classes
    ):
        raise LossartError(
            f"--model {spec.name!r}: {spec.num_classes} classes, input "
            f"{_shape(spec.input_shape)}; --data {ds.spec.name!r} has {ds.num_classes} classes, "
            f"input {_shape(ds.input_shape)}"
        )
    model = create_model(spec)
    check_fits(model, spec, ds)
    return model
