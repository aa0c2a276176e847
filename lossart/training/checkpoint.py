"""Checkpoints: a trained model's weights with everything needed to trust and rebuild it.

The file is a `torch.save` of plain data (dicts, lists, strings, numbers, tensors), loaded with
`weights_only=True`, so opening a checkpoint never runs code. It records the model spec, data
spec, seed, metrics (train/test loss and accuracy), versions and a format marker; loading checks
the marker and, when asked, that the model is the one the caller expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossart.atomic import torch_save
from lossart.data.spec import DataSpec
from lossart.errors import LossartError
from lossart.models import ModelSpec, create_model

FORMAT = "lossart-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """One trained optimum. `extra` holds the training config and per-epoch history."""

    model: ModelSpec
    data: DataSpec
    state_dict: dict[str, torch.Tensor]
    seed: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def build_model(self) -> nn.Module:
        """The model with these weights and buffers loaded (in eval mode)."""
        model = create_model(self.model)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise LossartError(
                f"checkpoint weights do not fit model {self.model.name!r} "
                f"({first[0] if first else exc})"
            ) from None
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "seed": int(self.seed),
            "metrics": dict(self.metrics),
            "versions": {
                k: str(v) for k, v in self.versions.items()
            },  # plain str, not TorchVersion
            "extra": dict(self.extra),
        }


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> None:
    """Write atomically: the file is either the old one, absent, or this one complete."""
    torch_save(ckpt.to_dict(), path)


def read_torch_file(path: str | Path, what: str = "lossart checkpoint") -> Any:
    """`torch.load` (weights only) with one-line errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise LossartError(f"{path}: no such file; expected a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a foreign or torn file
        raise LossartError(f"{path}: not a readable {what}: {_unreadable(path, exc)}") from None


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch could not read `path`, in words that fit the file (not torch's long text)."""
    text = str(exc)
    if "Unsupported global" in text or "safe_globals" in text:
        return ("holds pickled Python objects (a whole model saved with torch.save(model)?); "
                "lossart reads tensors only: save model.state_dict() instead")  # fmt: skip
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "truncated or foreign (a damaged torch.save zip)"
    if head[:1] == b"\x80":
        return "truncated or foreign (a pickle of more than tensors and plain data)"
    return "truncated or foreign (neither torch.save's zip format nor a pickle)"


def load_checkpoint(path: str | Path, expect_model: ModelSpec | None = None) -> Checkpoint:
    """A checkpoint from `path`, checked; `expect_model` must match its model spec if given."""
    data = read_torch_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LossartError(f"{path}: not a lossart checkpoint (no {FORMAT!r} format marker)")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise LossartError(
            f"{path}: checkpoint format version {data['format_version']} is newer than "
            f"this lossart reads ({FORMAT_VERSION}); upgrade lossart"
        )
    try:
        ckpt = Checkpoint(
            model=ModelSpec.from_dict(data["model"]),
            data=DataSpec.from_dict(data["data"]),
            state_dict=dict(data["state_dict"]),
            seed=int(data.get("seed", 0)),
            metrics=dict(data.get("metrics", {})),
            versions=dict(data.get("versions", {})),
            extra=dict(data.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LossartError(
            f"{path}: lossart checkpoint is missing or has a bad field ({exc})"
        ) from None
    check_finite_weights(ckpt.state_dict, path)
    if expect_model is not None and ckpt.model.to_dict() != expect_model.to_dict():
        raise LossartError(
            f"{path}: holds model {_describe(ckpt.model)}, expected {_describe(expect_model)}"
        )
    return ckpt


def check_finite_weights(state_dict: dict, path: str | Path, what: str = "weight") -> None:
    """Every floating tensor finite: NaN/inf weights give NaN grids and barriers silently."""
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise LossartError(f"{path}: {what} {name!r} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise LossartError(
                f"{path}: {what} {name!r} has {bad} NaN/inf value(s); expected finite weights"
            )


def _describe(spec: ModelSpec) -> str:
    kw = f" {spec.kwargs}" if spec.kwargs else ""
    shape = "x".join(map(str, spec.input_shape))
    return f"{spec.name!r} ({spec.num_classes} classes, input {shape}{kw})"
