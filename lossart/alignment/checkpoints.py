"""`lossart align A.pt B.pt [C.pt ...]`: checkpoints permuted to match a reference.

Each output is an ordinary lossart checkpoint: the same function as its source (the same metrics,
copied), its weights and BN statistics permuted, and `extra["alignment"]` recording the reference,
the method and the permutation, which is also written beside it as `<out>.perm.json` (unit k of
the aligned model is unit `perm[k]` of the source, per group). line, curve, plane, grid, terrain
and render take it like any other checkpoint.

Weight matching saves its permutations after every round to `<out>.perm.partial.json`: Ctrl-C
and rerunning the same command continue from there. A finished output made with the same
settings is left alone; one made with other settings is an error naming the file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lossart.alignment.config import METHODS, AlignConfig  # noqa: F401  (importable here)
from lossart.alignment.groups import PermutationSpec, derive_spec, permute_state_dict
from lossart.alignment.matching import MatchConfig, activation_matching, weight_matching
from lossart.atomic import write_json
from lossart.checks import output_dir, output_file
from lossart.data import eval_subset, load_dataset
from lossart.errors import LossartError
from lossart.models import create_model
from lossart.progress import progress
from lossart.runs import now_iso, sha256_file
from lossart.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

PERM_FORMAT = "lossart-permutation"
PERM_SUFFIX = ".perm.json"
PARTIAL_SUFFIX = ".perm.partial.json"


@dataclass
class Aligned:
    """One aligned model: where it came from and went, and how far it was from the reference."""

    source: str
    out: str
    permutation: str
    l2_before: float
    l2_after: float
    rounds: int
    seconds: float
    groups: int
    reused: bool = False


@dataclass
class AlignResult:
    reference: str
    models: list[Aligned] = field(default_factory=list)


def perm_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + PERM_SUFFIX)


def matching_state_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + PARTIAL_SUFFIX)


def outputs(config: AlignConfig) -> list[Path]:
    """Where each model's aligned checkpoint goes."""
    if len(config.models) == 1:
        return [output_file(config.out)]
    root = output_dir(config.out)
    outs = [root / Path(m).name for m in config.models]
    names = [o.name for o in outs]
    if len(set(names)) != len(names):
        raise LossartError(f"--out {root}: two models share a file name ({names}); rename one")
    return outs


def l2_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names) -> float:
    return float(sum(((a[n].double() - b[n].double()) ** 2).sum() for n in names) ** 0.5)


def parameter_names(ckpt: Checkpoint) -> list[str]:
    with torch.device("meta"):
        model = create_model(ckpt.model)
    return [n for n, _ in model.named_parameters()]


def model_spec_groups(ckpt: Checkpoint, where: str) -> PermutationSpec:
    """The permutation groups of the checkpoint's model (traced once per call)."""
    model = ckpt.build_model()
    return derive_spec(model, ckpt.model.input_shape, f"{where} ({ckpt.model.name})")


def align_checkpoints(config: AlignConfig) -> AlignResult:
    """Align every model of `config` to its reference; see the module docstring."""
    if not config.models:
        raise LossartError("align: give the reference and at least one model to align to it")
    outs = outputs(config)
    ref = load_checkpoint(config.reference)
    sources = [load_checkpoint(m, expect_model=ref.model) for m in config.models]
    spec = model_spec_groups(ref, config.reference)
    names = parameter_names(ref)
    ref_sha = sha256_file(config.reference)
    result = AlignResult(config.reference)
    for path, ckpt, out in zip(config.models, sources, outs):
        result.models.append(_align_one(config, ref, ref_sha, spec, names, path, ckpt, out))
    return result


def _settings(config: AlignConfig, ref_sha: str, src_sha: str) -> dict[str, Any]:
    s = {"reference_sha256": ref_sha, "source_sha256": src_sha, "method": config.method}
    if config.method == "weights":
        s["seed"] = config.seed
    else:
        s["subset"] = config.subset
    return s


def _align_one(config, ref, ref_sha, spec, names, path, ckpt, out: Path) -> Aligned:
    src_sha = sha256_file(path)
    settings = _settings(config, ref_sha, src_sha)
    if out.exists():
        done = load_checkpoint(out).extra.get("alignment", {})
        if done.get("settings") != settings:
            raise LossartError(
                f"--out {out}: exists and is not {path} aligned to {config.reference} with these "
                "settings; remove it or choose another --out"
            )
        return Aligned(str(path), str(out), str(perm_path(out)), done["l2_before"],
                       done["l2_after"], done["rounds"], done["seconds"], len(spec.groups), True)  # fmt: skip
    start = time.perf_counter()
    params_a = {n: ref.state_dict[n] for n in names}
    params_b = {n: ckpt.state_dict[n] for n in names}
    if config.method == "weights":
        match = _weight_matching(config, spec, params_a, params_b, settings, out, path)
    else:
        match = _activation_matching(config, spec, ref, ckpt, path)
    seconds = time.perf_counter() - start
    aligned_sd = permute_state_dict(ckpt.state_dict, spec, match.perms)
    before = l2_distance(params_a, params_b, names)
    after = l2_distance(params_a, aligned_sd, names)
    groups = [
        {"name": g.name, "size": g.size, "perm": [int(i) for i in p]}
        for g, p in zip(spec.groups, match.perms)
    ]
    record = {
        "reference": str(config.reference),
        "source": str(path),
        "settings": settings,
        "created": now_iso(),
        "l2_before": before,
        "l2_after": after,
        "rounds": match.rounds,
        "converged": match.converged,
        "seconds": seconds,
        "groups": groups,
    }
    write_json(perm_path(out), {"format": PERM_FORMAT, "version": 1,
                                "meaning": "unit k of the aligned model is unit perm[k] of the source",
                                **record})  # fmt: skip
    extra = dict(ckpt.extra)
    extra["alignment"] = record
    save_checkpoint(
        Checkpoint(ckpt.model, ckpt.data, aligned_sd, ckpt.seed, dict(ckpt.metrics),
                   dict(ckpt.versions), extra),
        out,
    )  # fmt: skip
    matching_state_path(out).unlink(missing_ok=True)
    return Aligned(str(path), str(out), str(perm_path(out)), before, after, match.rounds,
                   seconds, len(spec.groups))  # fmt: skip


def _weight_matching(config, spec, params_a, params_b, settings, out, path):
    partial = matching_state_path(out)
    resume = None
    if partial.exists():
        try:
            saved = json.loads(partial.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("settings") == settings and len(saved.get("perms") or []) == len(spec.groups):
            resume = saved
    bar = progress(total=None, desc=f"align {Path(path).name}", unit="round")

    def on_round(state: dict) -> None:
        write_json(partial, {"settings": settings, **state})
        bar.set_postfix(start=config_starts[state["start"]],
                        improved=f"{state['improved']}/{len(spec.groups)}",
                        objective=f"{state['objective']:.5g}")  # fmt: skip
        bar.update(1)

    match_config = MatchConfig(config.seed, config.max_rounds)
    config_starts = match_config.starts
    try:
        return weight_matching(spec, params_a, params_b, match_config, resume, on_round)
    finally:
        bar.close()


def _activation_matching(config, spec, ref, ckpt, path):
    ds = load_dataset(ckpt.data)
    x, _ = eval_subset(ds, "train", min(config.subset, len(ds.split("train")[0])), seed=0,
                       device=config.device)  # fmt: skip
    model_a = ref.build_model().to(config.device)
    model_b = ckpt.build_model().to(config.device)
    batches = list(torch.split(x, config.batch_size))
    bar = progress(total=len(batches), desc=f"align {Path(path).name} (activations)", unit="batch")
    try:
        return activation_matching(spec, model_a, model_b, batches, on_batch=lambda: bar.update(1))
    finally:
        bar.close()
