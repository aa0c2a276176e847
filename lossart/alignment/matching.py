"""Finding the permutation: weight matching (Git Re-Basin) and activation matching.

Weight matching (Ainsworth, Hayase & Srinivasa 2023) maximizes sum <W_A, P(W_B)> over all
parameters by coordinate ascent: one group at a time, with every other group's permutation held,
the best permutation of that group is a linear assignment problem
(`scipy.optimize.linear_sum_assignment`) on the similarity of A's units to B's. Groups are visited
in a random order each round until a whole round improves none.

Activation matching runs both networks on the same data and pairs each of B's units with the one
of A's whose activations correlate best (one assignment per group, summed over every activation
that carries the group).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import fx

from lossart.alignment.groups import PermutationSpec, identity_perms, permute_state_dict

#: A callback after each round, given the state to resume from (JSON-able).
RoundCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class MatchConfig:
    """How to match. `max_rounds` bounds weight matching; it stops earlier when nothing improves.

    `starts`: where coordinate ascent begins; the best result is kept. "identity" is Git
    Re-Basin's start; "sorted" first pairs units whose sorted weights agree best, which does not
    depend on any other group's permutation (a permuted copy is recovered exactly from it where
    the identity start can stall in wide dense layers).
    """

    seed: int = 0
    max_rounds: int = 100
    tolerance: float = 1e-12  # relative gain below which a group counts as not improved
    starts: tuple[str, ...] = ("identity", "sorted")


@dataclass
class MatchResult:
    perms: list[np.ndarray]
    rounds: int
    objective: float
    converged: bool


def _axis_slice(t: torch.Tensor, axis: int, slots: np.ndarray) -> torch.Tensor:
    """(size_g, everything else): the group's units on `axis` as rows."""
    moved = t.movedim(axis, 0)
    idx = torch.as_tensor(slots.reshape(-1), device=t.device)
    return moved.index_select(0, idx).reshape(slots.shape[0], -1)


def _permute_except(
    t: torch.Tensor, name: str, skip: int, spec: PermutationSpec, perms: list[np.ndarray]
) -> torch.Tensor:
    for axis in spec.axes[name]:
        if axis != skip:
            index = torch.as_tensor(spec.source_index(name, axis, perms), device=t.device)
            t = t.index_select(axis, index)
    return t


def matching_terms(spec: PermutationSpec, names: Iterable[str]) -> list[list[tuple[str, int]]]:
    """For each group, the (parameter, axis) pairs its units sit on, among `names`."""
    wanted = set(names)
    terms: list[list[tuple[str, int]]] = [[] for _ in spec.groups]
    for name, axes in spec.axes.items():
        if name in wanted:
            for axis, groups in axes.items():
                for g in groups:
                    terms[g].append((name, axis))
    return terms


def weight_matching(
    spec: PermutationSpec,
    a: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
    config: MatchConfig = MatchConfig(),
    resume: dict[str, Any] | None = None,
    on_round: RoundCallback | None = None,
) -> MatchResult:
    """The permutations of B's groups that bring B's weights closest to A's (in L2).

    `a` and `b` hold the tensors to match (parameters; buffers may be left out). After every
    round `on_round(state)` gets a JSON-able state; `resume=state` continues from it and ends
    where an uninterrupted call would. Returns perms such that `permute_state_dict(b, spec,
    perms)` is B aligned to A.
    """
    terms = matching_terms(spec, [n for n in a if a[n].is_floating_point()])
    a = {n: t.double() for n, t in a.items() if n in b}
    b = {n: t.double() for n, t in b.items() if n in a}
    state = resume or {"start": 0, "round": 0, "perms": None, "best": None}
    best = state["best"]
    best = (
        MatchResult(_perms(best["perms"]), best["rounds"], best["objective"], best["converged"])
        if best
        else None
    )
    for index in range(int(state["start"]), len(config.starts)):
        kind = config.starts[index]
        if state["perms"] is not None and index == state["start"]:
            first, done = _perms(state["perms"]), int(state["round"])
            finished = state.get("improved") == 0
        else:
            done, finished = 0, False
            first = identity_perms(spec) if kind == "identity" else sorted_start(spec, a, b, terms)

        def report(round_: int, improved: int, objective: float, perms, best=best, index=index):
            if on_round is not None:
                on_round({"start": index, "round": round_, "improved": improved,
                          "objective": objective, "perms": _lists(perms), "best": _record(best)})  # fmt: skip

        result = _ascend(spec, a, b, terms, config, first, done, finished, report)
        if best is None or result.objective > best.objective:
            best = result
    return best


def _perms(lists) -> list[np.ndarray]:
    return [np.asarray(p, dtype=np.int64) for p in lists]


def _lists(perms) -> list[list[int]]:
    return [[int(i) for i in p] for p in perms]


def _record(result: MatchResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"perms": _lists(result.perms), "rounds": result.rounds,
            "objective": result.objective, "converged": result.converged}  # fmt: skip


def sorted_start(spec, a, b, terms) -> list[np.ndarray]:
    """Per group, the assignment of units by their sorted weights (blind to other groups)."""
    perms = []
    for g, group in enumerate(spec.groups):
        dist = torch.zeros((group.size, group.size), dtype=torch.float64)
        for name, axis in terms[g]:
            slots = spec.axes[name][axis][g]
            wa = _axis_slice(a[name], axis, slots).sort(dim=1).values
            wb = _axis_slice(b[name], axis, slots).sort(dim=1).values
            dist += torch.cdist(wa, wb).cpu() ** 2
        perms.append(linear_sum_assignment(dist.numpy())[1] if terms[g] else np.arange(group.size))
    return perms


def _ascend(spec, a, b, terms, config, start, done, finished, on_round) -> MatchResult:
    """Coordinate ascent from `start`, `done` rounds already behind it (a resumed run)."""
    perms = [np.asarray(p).copy() for p in start]
    objective = _objective(spec, a, b, perms)
    if finished or done >= config.max_rounds:
        return MatchResult(perms, done, objective, finished)
    for round_ in range(done + 1, config.max_rounds + 1):
        rng = np.random.default_rng([config.seed, round_])
        improved = 0
        for g in rng.permutation(len(spec.groups)):
            if not terms[g]:
                continue
            n = spec.groups[g].size
            sim = torch.zeros((n, n), dtype=torch.float64)
            for name, axis in terms[g]:
                slots = spec.axes[name][axis][g]
                wa = _axis_slice(a[name], axis, slots)
                wb = _axis_slice(_permute_except(b[name], name, axis, spec, perms), axis, slots)
                sim += (wa @ wb.T).cpu()
            cost = sim.numpy()
            _, cols = linear_sum_assignment(cost, maximize=True)
            old = float(cost[np.arange(n), perms[g]].sum())
            new = float(cost[np.arange(n), cols].sum())
            if new - old > config.tolerance * max(abs(old), 1.0):
                perms[g] = cols
                improved += 1
        objective = _objective(spec, a, b, perms)
        if on_round is not None:
            on_round(round_, improved, objective, perms)
        if not improved:
            return MatchResult(perms, round_, objective, True)
    return MatchResult(perms, config.max_rounds, objective, False)


def _objective(spec, a, b, perms) -> float:
    pb = permute_state_dict(b, spec, perms)
    return float(sum((a[n] * pb[n]).sum() for n in a))


# ---------------------------------------------------------------------------- activations


class _Recorder(fx.Interpreter):
    """Runs a traced graph, handing the activations that carry a group to `keep`."""

    def __init__(self, gm: fx.GraphModule, wanted: set[str], keep) -> None:
        super().__init__(gm)
        self.wanted = wanted
        self.keep = keep

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if n.name in self.wanted and isinstance(out, torch.Tensor):
            self.keep(n.name, out)
        return out


def activation_matching(
    spec: PermutationSpec,
    model_a: torch.nn.Module,
    model_b: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    on_batch: Callable[[], None] | None = None,
) -> MatchResult:
    """Perms pairing each of B's units with A's unit of highest activation correlation.

    Both models run in eval mode on `batches` (inputs only); for every group the Pearson
    correlation of A's and B's units is summed over each traced activation that carries it.
    """
    gm_a = fx.symbolic_trace(model_a).eval()
    gm_b = fx.symbolic_trace(model_b).eval()
    wanted = set(spec.nodes)
    stats: dict[tuple[str, int], list[torch.Tensor | float]] = {}

    for x in batches:
        acts: dict[str, list[torch.Tensor]] = {}

        def keep(k: str, v: torch.Tensor, acts=acts) -> None:
            acts.setdefault(k, []).append(v)

        with torch.no_grad():
            _Recorder(gm_a, wanted, keep).run(x)
            _Recorder(gm_b, wanted, keep).run(x)
        for node, (xa, xb) in acts.items():
            for g, slots in spec.nodes[node].items():
                fa = _features(xa, slots)
                fb = _features(xb, slots)
                s = stats.setdefault((node, g), [0.0] * 6)
                s[0] = s[0] + fa.sum(1)
                s[1] = s[1] + fb.sum(1)
                s[2] = s[2] + fa @ fb.T
                s[3] = s[3] + (fa * fa).sum(1)
                s[4] = s[4] + (fb * fb).sum(1)
                s[5] = s[5] + fa.shape[1]
        if on_batch is not None:
            on_batch()

    sims = [np.zeros((g.size, g.size)) for g in spec.groups]
    for (_node, g), (sa, sb, sab, saa, sbb, count) in stats.items():
        ma, mb = sa / count, sb / count
        cov = sab / count - torch.outer(ma, mb)
        sda = (saa / count - ma * ma).clamp_min(0).sqrt()
        sdb = (sbb / count - mb * mb).clamp_min(0).sqrt()
        sims[g] += (cov / (torch.outer(sda, sdb) + 1e-8)).numpy()
    perms = [linear_sum_assignment(sim, maximize=True)[1] for sim in sims]
    return MatchResult(
        perms, 1, float(sum(s[np.arange(len(p)), p].sum() for s, p in zip(sims, perms))), True
    )


def _features(x: torch.Tensor, slots: np.ndarray) -> torch.Tensor:
    """(units, samples): each unit's values over the batch, positions and sub-positions."""
    idx = torch.as_tensor(slots.reshape(-1), device=x.device)
    picked = x.index_select(1, idx).double()  # (N, units*m, ...)
    n, units, m = x.shape[0], slots.shape[0], slots.shape[1]
    picked = picked.reshape(n, units, m, -1)
    return picked.permute(1, 0, 2, 3).reshape(units, -1).cpu()
