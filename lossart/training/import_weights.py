"""Bring your own weights: a plain PyTorch `state_dict` file becomes a lossart checkpoint.

`torch.save(model.state_dict(), "a.pt")` from any training script, plus the model
(`--model NAME | torchvision:NAME | pkg.module:factory`) and the data it was trained on, is
enough: `import_state_dict` loads the weights into the model (strictly: every key and shape must
fit), evaluates the same metrics `train_endpoint` records (eval-mode BN, a fixed train subset
and the test set) and writes a checkpoint carrying the model and data specs, so curve, grid and
terrain run on it unchanged.

Accepted files: a state_dict (a dict of tensors), or a dict holding one under "state_dict",
"model_state_dict" or "model" (the usual training-script checkpoints). Keys that all start with
"module." (DataParallel, DDP) or "_orig_mod." (torch.compile) lose that prefix. Files are read
with `weights_only=True`: a pickled model object (`torch.save(model)`) is refused, never run.

`checkpoint_file` is the door for commands that take checkpoints (`lossart curve`, `lossart
plane`): a lossart checkpoint passes as it is, a plain state_dict is imported once to
`<stem>.lossart.pt` beside it and reused while the source file and settings stay the same.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossart.checks import output_file
from lossart.data import Dataset, DataSpec, load_dataset, parse_data_spec
from lossart.devices import cpu_threads
from lossart.errors import LossartError
from lossart.models import ModelSpec
from lossart.models.fit import build_for_data
from lossart.runs import versions
from lossart.training.checkpoint import (
    FORMAT,
    Checkpoint,
    check_finite_weights,
    load_checkpoint,
    read_torch_file,
    save_checkpoint,
)

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SHOW = 3  # names listed in a mismatch message before "(+N more)"
IMPORTED_SUFFIX = ".lossart.pt"


# ---------------------------------------------------------------------------- reading


def read_weights_file(path: str | Path) -> Any:
    """The file's contents (tensors and plain data only), with one-line errors."""
    return read_torch_file(path, "PyTorch state_dict file")


def is_lossart_checkpoint(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("format") == FORMAT


def _is_tensor_dict(d: Any) -> bool:
    return (
        isinstance(d, dict)
        and len(d) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())
    )


def state_dict_of(raw: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded file (plain, or under a usual key), prefixes removed."""
    if is_lossart_checkpoint(raw):
        raise LossartError(f"{path}: already a lossart checkpoint; use it as it is")
    if _is_tensor_dict(raw):
        sd = raw
    elif isinstance(raw, dict) and any(_is_tensor_dict(raw.get(k)) for k in STATE_DICT_KEYS):
        sd = next(raw[k] for k in STATE_DICT_KEYS if _is_tensor_dict(raw.get(k)))
    elif isinstance(raw, dict):
        keys = ", ".join(map(repr, list(raw)[:5])) or "none"
        raise LossartError(
            f"{path}: a dict (keys {keys}) that is neither a state_dict (names -> tensors) nor "
            f"holds one under {', '.join(map(repr, STATE_DICT_KEYS))}"
        )
    else:
        raise LossartError(
            f"{path}: holds a {type(raw).__name__}; expected a state_dict (names -> tensors), "
            f"or a dict holding one under {', '.join(map(repr, STATE_DICT_KEYS))}"
        )
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    check_finite_weights(sd, path)  # before anything is imported, evaluated or written
    return dict(sd)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict from `path` (see the module docstring for the accepted forms)."""
    return state_dict_of(read_weights_file(path), path)


# ---------------------------------------------------------------------------- fitting


def _names(names: list[str]) -> str:
    more = f" (+{len(names) - SHOW} more)" if len(names) > SHOW else ""
    return ", ".join(names[:SHOW]) + more


def _shape(t: Any) -> str:
    return "x".join(map(str, tuple(t.shape))) or "scalar"


def fit_problems(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """What keeps `state_dict` from loading strictly into `model`: missing, unexpected, shapes."""
    want = model.state_dict()
    missing = [k for k in want if k not in state_dict]
    unexpected = [k for k in state_dict if k not in want]
    shapes = [
        f"{k} {_shape(state_dict[k])} vs model {_shape(want[k])}"
        for k in want
        if k in state_dict and tuple(state_dict[k].shape) != tuple(want[k].shape)
    ]
    out = []
    if missing:
        out.append(f"missing {_names(missing)}")
    if unexpected:
        out.append(f"unexpected {_names(unexpected)}")
    if shapes:
        out.append(f"shape {_names(shapes)}")
    return out


def load_fitting(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> nn.Module:
    """Load strictly, or raise one line naming the first mismatches (`what`: the file)."""
    problems = fit_problems(model, state_dict)
    if problems:
        raise LossartError(
            f"{what}: weights do not fit the model ({type(model).__name__}): {'; '.join(problems)}"
        )
    model.load_state_dict(state_dict)
    return model


# ---------------------------------------------------------------------------- model spec


def resolve_model_spec(
    model: str | ModelSpec,
    ds: Dataset,
    kwargs: dict[str, Any] | None = None,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> ModelSpec:
    """The spec for `model` on `ds`; classes and input shape default to the data's and must fit it."""
    if isinstance(model, ModelSpec):
        spec = model
    else:
        spec = ModelSpec(
            model,
            ds.num_classes if num_classes is None else int(num_classes),
            tuple(ds.input_shape) if input_shape is None else tuple(input_shape),
            dict(kwargs or {}),
        )
    if spec.num_classes != ds.num_classes or tuple(spec.input_shape) != tuple(ds.input_shape):
        shape = "x".join(map(str, ds.input_shape))
        raise LossartError(
            f"--model {spec.name!r}: {spec.num_classes} classes, input "
            f"{'x'.join(map(str, spec.input_shape))}; data {ds.spec.name!r} has "
            f"{ds.num_classes} classes, input {shape} (--num-classes/--input-shape must match it)"
        )
    return spec


def parse_input_shape(text: str) -> tuple[int, ...]:
    """`--input-shape 3x32x32` (or 3,32,32) to (3, 32, 32)."""
    parts = text.replace(",", "x").lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise LossartError(f"--input-shape {text!r}: expected sizes like 3x32x32 or 20")
    return shape


# ---------------------------------------------------------------------------- import


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_state_dict(
    path: str | Path,
    model_spec: ModelSpec | str,
    data_spec: DataSpec | str,
    out: str | Path | None = None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: str = "cpu",
    train_eval_size: int = 10000,
    seed: int = 0,
    progress: bool = True,
    threads: int | None = None,
) -> Checkpoint:
    """Wrap the state_dict at `path` into a checkpoint (written to `out` when given).

    `model_spec` is a full spec or a name (`model_kwargs`; classes and input shape default to
    the data's, and must fit it). If `out` already holds the import of this very file with these
    settings it is returned as is; any other file there is refused. `seed` is recorded as the
    endpoint's seed (unknown: 0).
    """
    path = Path(path)
    options = dict(
        model_kwargs=model_kwargs, num_classes=num_classes, input_shape=input_shape,
        device=device, train_eval_size=train_eval_size, seed=seed, progress=progress,
        threads=threads,
    )  # fmt: skip
    if out is not None:
        output_file(out)
    return _import(read_weights_file(path), path, model_spec, data_spec, out, **options)


def _import(
    raw: Any,
    path: Path,
    model_spec: ModelSpec | str,
    data_spec: DataSpec | str,
    out: str | Path | None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: str = "cpu",
    train_eval_size: int = 10000,
    seed: int = 0,
    progress: bool = True,
    threads: int | None = None,
) -> Checkpoint:
    from lossart.training.endpoints import final_metrics

    sd = state_dict_of(raw, path)
    ds = load_dataset(parse_data_spec(data_spec) if isinstance(data_spec, str) else data_spec)
    spec = resolve_model_spec(model_spec, ds, model_kwargs, num_classes, input_shape)
    settings = {
        "source": str(path.resolve()),
        "sha256": _sha256(path),
        "model": spec.to_dict(),
        "data": ds.spec.to_dict(),
        "train_eval_size": int(train_eval_size),
    }
    if out is not None and Path(out).exists():
        done = load_checkpoint(out)
        if done.extra.get("import") == settings:
            return done
        raise LossartError(
            f"{out}: exists and is not the import of {path} with this model and data; "
            "remove it or choose another --out"
        )
    model = load_fitting(build_for_data(spec, ds), sd, str(path)).to(device)
    with cpu_threads(threads, device, ds.spec.kind == "builtin"):  # tiny models: one thread
        metrics = final_metrics(model, ds, device, train_eval_size, progress)
    ckpt = Checkpoint(
        model=spec,
        data=ds.spec,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        seed=int(seed),
        metrics=metrics,
        versions=versions(),
        extra={"import": settings},
    )
    if out is not None:
        save_checkpoint(ckpt, out)
    return ckpt


def imported_path(path: str | Path) -> Path:
    """Where `checkpoint_file` puts the import of a plain state_dict: `a.pt` -> `a.lossart.pt`."""
    path = Path(path)
    return path.with_name(path.stem + IMPORTED_SUFFIX)


def checkpoint_file(
    path: str | Path,
    model: ModelSpec | str | None = None,
    data: DataSpec | str | None = None,
    **options: Any,
) -> Path:
    """`path` if it is a lossart checkpoint; a plain state_dict imported beside it otherwise.

    The import (`imported_path`; `options` as for `import_state_dict`) needs the model and data;
    it is made once and reused while the source file and settings are unchanged (a changed
    source is refused: remove the old import).
    """
    path = Path(path)
    raw = read_weights_file(path)
    if is_lossart_checkpoint(raw):
        return path
    state_dict_of(raw, path)  # refuse foreign files before asking for --model
    if model is None or data is None:
        flag = "--model" if model is None else "--data"
        raise LossartError(
            f"{path}: a plain state_dict, not a lossart checkpoint; give {flag} to import it "
            f"(or: lossart import {path} --model NAME --data DATA --out X.pt)"
        )
    out = imported_path(path)
    _import(raw, path, model, data, out, **options)
    return out


def checkpoint_files(
    paths: list[str | Path],
    model: ModelSpec | str | None = None,
    data: DataSpec | str | None = None,
    **options: Any,
) -> list[Path]:
    """`checkpoint_file` of each path, all read and checked first: one bad file (foreign, NaN
    weights, a plain state_dict without --model) is refused before any import is written."""
    for path in paths:
        raw = read_weights_file(path)
        if not is_lossart_checkpoint(raw):
            state_dict_of(raw, path)
    return [checkpoint_file(path, model, data, **options) for path in paths]
