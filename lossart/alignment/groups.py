"""Permutation groups read from the network itself, by tracing it with torch.fx.

A hidden unit can be renamed without changing the function: permute the output channels of the
layer that makes it, the inputs of every layer that reads it, and the BN parameters and running
statistics in between. Which channels must move together is a property of the graph, so it is
derived here rather than typed by hand per model:

- every channel of every traced tensor is an *element*; a layer's output channels are new ones,
  a channel-wise op (BN, ReLU, pooling, spatial slicing) passes its input's through;
- `a + b` says channel i of a and channel i of b are one unit (union-find): residual streams
  become one class per channel across all blocks; zero-padded channels (the zoo ResNets' option A
  shortcuts pad `pad // 2` zero channels on each side) are new elements that join whatever they
  are added to, so a wider stage's stream carries the previous stage's classes in its middle
  channels and new ones around them;
- `flatten` turns a channel into `H*W` features (sub-positions) of one class;
- the model's input and output channels are fixed.

Classes that appear on exactly the same tensors (parameters, buffers and activations, with the
same sub-positions) may be permuted among each other: each such set is one *group*. Anything the
tracer does not know how to permute is refused with one line naming the module, never guessed.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from lossart.errors import LossartError

AxisKey = tuple[str, int]  # (state_dict name, tensor axis)

#: Modules that act on each channel alone: their output channels are their input's.
CHANNELWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.Hardswish,
    nn.Hardtanh, nn.Softplus, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
CHANNELWISE_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.elu, F.hardswish, F.hardtanh,
    torch.tanh, torch.sigmoid, F.dropout, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d,
    F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d, F.adaptive_max_pool2d,
}  # fmt: skip
CHANNELWISE_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone", "float", "to"}
ELEMENTWISE = {operator.add, operator.sub, operator.mul, torch.add, torch.sub, torch.mul}
ELEMENTWISE_METHODS = {"add", "sub", "mul", "add_", "mul_"}
NO_TENSOR_METHODS = {"size", "dim"}
BN_KEYS = ("weight", "bias", "running_mean", "running_var")


class UnsupportedOp(LossartError):
    """The network holds an operation whose channels lossart cannot permute."""


@dataclass(frozen=True)
class Group:
    """One permutation group: `size` units that may be renamed among themselves."""

    name: str  # the first parameter axis it appears on, e.g. "blocks.0.conv1.weight:0"
    size: int


@dataclass
class PermutationSpec:
    """Where each group's units sit in the state_dict, and in the traced activations.

    `axes[name][axis][g]` is an int64 array of shape (size_g, m): row k lists the positions on
    that axis of group g's unit k (m > 1 after a flatten: one per spatial feature, in order).
    `nodes[node][g]` is the same for the channel axis (1) of a traced activation.
    """

    groups: list[Group]
    axes: dict[str, dict[int, dict[int, np.ndarray]]]
    shapes: dict[str, tuple[int, ...]]
    nodes: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    graph: fx.GraphModule | None = None

    def source_index(self, name: str, axis: int, perms: list[np.ndarray]) -> np.ndarray:
        """Where each position on (name, axis) takes its value from after permuting."""
        src = np.arange(self.shapes[name][axis])
        for g, slots in self.axes[name][axis].items():
            src[slots] = slots[perms[g]]
        return src

    def summary(self) -> str:
        sizes = [g.size for g in self.groups]
        return f"{len(sizes)} permutation groups ({sum(sizes)} units)"


def identity_perms(spec: PermutationSpec) -> list[np.ndarray]:
    return [np.arange(g.size) for g in spec.groups]


def random_perms(spec: PermutationSpec, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(g.size) for g in spec.groups]


def inverse(perms: list[np.ndarray]) -> list[np.ndarray]:
    return [np.argsort(p) for p in perms]


def permute_state_dict(
    state_dict: dict[str, torch.Tensor], spec: PermutationSpec, perms: list[np.ndarray]
) -> dict[str, torch.Tensor]:
    """A new state_dict with every group's units renamed: unit k takes old unit perms[g][k]."""
    out = {}
    for name, value in state_dict.items():
        for axis in spec.axes.get(name, {}):
            index = torch.as_tensor(spec.source_index(name, axis, perms), device=value.device)
            value = value.index_select(axis, index)
        out[name] = value
    return out


# ---------------------------------------------------------------------------- tracing


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.fixed: list[bool] = []

    def new(self, n: int, fixed: bool = False) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.fixed.extend([fixed] * n)
        return np.arange(start, start + n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.fixed[ra] = self.fixed[ra] or self.fixed[rb]


@dataclass
class _Labels:
    """The elements on a tensor's channel axis (1), with sub-positions after a flatten."""

    elems: np.ndarray
    subs: np.ndarray

    @classmethod
    def fresh(cls, uf: _UnionFind, n: int, fixed: bool = False) -> _Labels:
        return cls(uf.new(n, fixed), np.zeros(n, dtype=np.int64))


def _where(node: fx.Node) -> str:
    """The module a traced node belongs to, for error messages."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1]
        return str(path[0] if isinstance(path, tuple) else path) or "(top level)"
    return "(top level)"


def _type_of(root: nn.Module, node: fx.Node) -> str:
    mod = root.get_submodule(node.target) if node.op == "call_module" else None
    return (
        type(mod).__name__
        if mod is not None
        else str(getattr(node.target, "__name__", node.target))
    )


class _Tracer:
    def __init__(self, model: nn.Module, example: torch.Tensor, model_name: str) -> None:
        self.model = model
        self.model_name = model_name
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as exc:  # noqa: BLE001 - any tracing failure is the model's
            first = " ".join(str(exc).split())[:160]
            raise UnsupportedOp(
                f"{model_name}: cannot trace the model with torch.fx to find its permutations "
                f"({type(exc).__name__}: {first})"
            ) from None
        was_training = model.training
        self.gm.eval()
        with torch.no_grad():
            ShapeProp(self.gm).propagate(example)
        self.gm.train(was_training)
        self.uf = _UnionFind()
        self.labels: dict[str, _Labels | None] = {}
        self.params: dict[AxisKey, _Labels] = {}
        self.names = {id(p): n for n, p in model.named_parameters()}
        self.names.update({id(b): n for n, b in model.named_buffers()})

    # -- helpers
    def fail(self, node: fx.Node, why: str) -> None:
        raise UnsupportedOp(
            f"{self.model_name}: cannot permute module {_where(node)!r} "
            f"({_type_of(self.gm, node)}): {why}"
        )

    def shape(self, node: Any) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def of(self, node: fx.Node, arg: Any) -> _Labels | None:
        if isinstance(arg, fx.Node):
            if arg.name not in self.labels:
                self.fail(node, f"reads {arg.name}, which was not traced")
            return self.labels[arg.name]
        return None

    def tensor_in(self, node: fx.Node, arg: Any) -> _Labels:
        labels = self.of(node, arg)
        if labels is None:
            self.fail(node, "its input is not a tensor with channels")
        return labels

    def bind(
        self, node: fx.Node, module: nn.Module, pname: str, axis: int, labels: _Labels
    ) -> None:
        tensor = getattr(module, pname, None)
        if tensor is None:
            return
        key = (self.names[id(tensor)], axis)
        if tensor.shape[axis] != len(labels.elems):
            self.fail(node, f"{key[0]} has {tensor.shape[axis]} channels on axis {axis}, "
                            f"its input {len(labels.elems)}")  # fmt: skip
        if key in self.params:  # a module called twice: both calls name the same units
            self.unify(node, self.params[key], labels)
        else:
            self.params[key] = labels

    def unify(self, node: fx.Node, a: _Labels, b: _Labels) -> _Labels:
        if len(a.elems) != len(b.elems) or not np.array_equal(a.subs, b.subs):
            self.fail(node, "combines tensors whose channels do not line up")
        for x, y in zip(a.elems.tolist(), b.elems.tolist()):
            self.uf.union(x, y)
        return a

    def flatten(
        self, node: fx.Node, labels: _Labels, shape: tuple[int, ...], start: int
    ) -> _Labels:
        if start != 1:
            self.fail(node, f"flattens from dim {start}; only flatten(x, 1) keeps channels apart")
        spatial = prod(shape[2:]) if len(shape) > 2 else 1
        subs = (labels.subs[:, None] * spatial + np.arange(spatial)[None, :]).reshape(-1)
        return _Labels(np.repeat(labels.elems, spatial), subs)

    # -- the walk
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            self.labels[node.name] = self.visit(node)

    def visit(self, node: fx.Node) -> _Labels | None:
        shape = self.shape(node)
        if node.op == "placeholder":
            return (
                _Labels.fresh(self.uf, shape[1], fixed=True) if shape and len(shape) > 1 else None
            )
        if node.op == "get_attr":
            self.fail(node, f"uses the tensor {node.target!r} directly in forward")
        if node.op == "output":
            for arg in node.all_input_nodes:
                labels = self.labels.get(arg.name)
                if labels is not None:
                    for e in labels.elems.tolist():
                        self.uf.fixed[self.uf.find(e)] = True
            return None
        if node.op == "call_module":
            return self.module(node, self.gm.get_submodule(node.target), shape)
        if node.op == "call_function":
            return self.function(node, node.target, shape)
        if node.op == "call_method":
            return self.method(node, node.target, shape)
        self.fail(node, f"unknown graph operation {node.op}")
        return None

    def module(self, node: fx.Node, mod: nn.Module, shape) -> _Labels:
        x = self.tensor_in(node, node.args[0])
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if mod.groups != 1:
                self.fail(node, f"grouped convolution (groups={mod.groups})")
            out = _Labels.fresh(self.uf, mod.out_channels)
            self.bind(node, mod, "weight", 1, x)
            self.bind(node, mod, "weight", 0, out)
            self.bind(node, mod, "bias", 0, out)
            return out
        if isinstance(mod, nn.Linear):
            in_shape = self.shape(node.args[0])
            if in_shape is None or len(in_shape) != 2:
                self.fail(node, "a Linear layer on inputs that are not (batch, features)")
            out = _Labels.fresh(self.uf, mod.out_features)
            self.bind(node, mod, "weight", 1, x)
            self.bind(node, mod, "weight", 0, out)
            self.bind(node, mod, "bias", 0, out)
            return out
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            for key in BN_KEYS:
                self.bind(node, mod, key, 0, x)
            return x
        if isinstance(mod, CHANNELWISE_MODULES):
            return x
        if isinstance(mod, nn.Flatten):
            if mod.end_dim not in (-1, len(self.shape(node.args[0]) or ()) - 1):
                self.fail(node, "flattens only some dimensions")
            return self.flatten(node, x, self.shape(node.args[0]), mod.start_dim)
        self.fail(node, "not a layer lossart knows how to permute "
                        "(conv, linear, batch norm, activations, pooling, flatten)")  # fmt: skip
        return x

    def function(self, node: fx.Node, fn: Any, shape) -> _Labels | None:
        if fn in CHANNELWISE_FUNCTIONS:
            return self.tensor_in(node, node.args[0])
        if fn is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            in_shape = self.shape(node.args[0])
            return self.flatten(node, self.tensor_in(node, node.args[0]), in_shape, start)
        if fn in ELEMENTWISE or fn is operator.iadd:
            return self.elementwise(node)
        if fn is operator.getitem:
            return self.getitem(node)
        if fn is F.pad:
            return self.pad(node)
        if fn is torch.cat:
            return self.cat(node)
        if fn is torch.mean:
            return self.mean(node)
        self.fail(node, f"function {getattr(fn, '__name__', fn)} is not one lossart can permute")
        return None

    def method(self, node: fx.Node, name: str, shape) -> _Labels | None:
        if name in NO_TENSOR_METHODS:
            return None
        if name in CHANNELWISE_METHODS:
            return self.tensor_in(node, node.args[0])
        if name in ELEMENTWISE_METHODS:
            return self.elementwise(node)
        if name == "mean":
            return self.mean(node)
        if name in ("flatten", "view", "reshape"):
            in_shape = self.shape(node.args[0])
            x = self.tensor_in(node, node.args[0])
            if shape and in_shape and len(shape) == 2 and shape[0] == in_shape[0]:
                return self.flatten(node, x, in_shape, 1)
            if shape == in_shape:
                return x
            self.fail(node, f"reshapes {in_shape} to {shape}")
        self.fail(node, f"tensor method .{name}() is not one lossart can permute")
        return None

    def elementwise(self, node: fx.Node) -> _Labels | None:
        a, b = (self.of(node, arg) for arg in node.args[:2])
        shapes = [self.shape(arg) for arg in node.args[:2]]
        if a is not None and b is not None:
            return self.unify(node, a, b)
        if a is None and b is None:
            return None
        other = shapes[1] if a is not None else shapes[0]
        arg = node.args[1] if a is not None else node.args[0]
        if isinstance(arg, fx.Node) and other is not None and len(other) > 1 and other[1] != 1:
            self.fail(node, "combines a permutable tensor with an untraced one channel by channel")
        return a if a is not None else b

    def getitem(self, node: fx.Node) -> _Labels | None:
        x = self.of(node, node.args[0])
        index = node.args[1]
        if x is None:
            return (
                None if self.shape(node) is None else self.fail(node, "indexes a module's outputs")
            )
        items = index if isinstance(index, tuple) else (index,)
        full = slice(None, None, None)
        if len(items) >= 2 and items[0] == full and items[1] == full:
            if all(isinstance(i, slice) or i is Ellipsis for i in items):
                return x
        if len(items) >= 1 and items[0] == full and len(items) == 1:
            return x
        self.fail(node, f"indexes channels ({index!r})")
        return None

    def pad(self, node: fx.Node) -> _Labels:
        x = self.tensor_in(node, node.args[0])
        pads = list(node.args[1] if len(node.args) > 1 else node.kwargs["pad"])
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        ndim = len(self.shape(node.args[0]))
        if len(pads) <= 2 * (ndim - 2):
            return x  # spatial padding only
        if mode != "constant" or len(pads) > 2 * (ndim - 1):
            self.fail(node, "pads channels other than with zeros")
        lo, hi = pads[2 * (ndim - 2)], pads[2 * (ndim - 2) + 1]
        before, after = _Labels.fresh(self.uf, lo), _Labels.fresh(self.uf, hi)
        return _Labels(
            np.concatenate([before.elems, x.elems, after.elems]),
            np.concatenate([before.subs, x.subs, after.subs]),
        )

    def cat(self, node: fx.Node) -> _Labels:
        parts = [self.tensor_in(node, a) for a in node.args[0]]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        ndim = len(self.shape(node))
        dim = dim % ndim
        if dim == 1:
            return _Labels(
                np.concatenate([p.elems for p in parts]), np.concatenate([p.subs for p in parts])
            )
        for p in parts[1:]:
            self.unify(node, parts[0], p)
        return parts[0]

    def mean(self, node: fx.Node) -> _Labels:
        x = self.tensor_in(node, node.args[0])
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        ndim = len(self.shape(node.args[0]))
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if dims and all(d % ndim >= 2 for d in dims):
            return x
        self.fail(node, f"averages over dims {dims}, channels included")
        return x


# ---------------------------------------------------------------------------- groups


def derive_spec(
    model: nn.Module, input_shape: tuple[int, ...], model_name: str = "model"
) -> PermutationSpec:
    """The permutation groups of `model` (any nn.Module built from usual layers), by tracing it.

    `input_shape` is one example's shape (C, H, W or features); a batch of two zeros is run once
    to learn the shapes. Raises `UnsupportedOp` (one line, naming the module) when some operation
    cannot be permuted.
    """
    first = next(model.parameters(), None)
    floating = first is not None and first.is_floating_point()
    example = torch.zeros(
        (2, *input_shape),
        dtype=first.dtype if floating else torch.float32,
        device=first.device if first is not None else "cpu",
    )
    tracer = _Tracer(model, example, model_name)
    tracer.run()
    uf = tracer.uf

    # where each class appears: parameter axes and activations, with its sub-positions
    where: dict[int, dict[tuple, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))

    def record(key: tuple, labels: _Labels, what: str) -> None:  # noqa: E306
        seen = set()
        for pos, (e, s) in enumerate(zip(labels.elems.tolist(), labels.subs.tolist())):
            root = uf.find(e)
            if (root, s) in seen:
                raise UnsupportedOp(
                    f"{model_name}: cannot permute {what}: one unit appears twice on its channels"
                )
            seen.add((root, s))
            where[root][key].append((s, pos))

    order = {name: i for i, name in enumerate(model.state_dict())}
    params = sorted(tracer.params.items(), key=lambda kv: (order.get(kv[0][0], 1 << 30), kv[0][1]))
    for (name, axis), labels in params:
        record(("p", name, axis), labels, name)
    for node_name, labels in tracer.labels.items():
        if labels is not None:
            record(("n", node_name), labels, f"activation {node_name}")

    by_signature: dict[tuple, list[int]] = defaultdict(list)
    for root, places in where.items():
        if uf.fixed[root] or not any(k[0] == "p" for k in places):
            continue
        signature = tuple(sorted((k, tuple(s for s, _ in v)) for k, v in places.items()))
        by_signature[signature].append(root)

    groups: list[Group] = []
    axes: dict[str, dict[int, dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    nodes: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    first_param = {}
    for signature, roots in by_signature.items():
        if len(roots) < 2:
            continue  # one unit: nothing to permute
        keys = [k for k, _ in signature if k[0] == "p"]
        first = min(keys, key=lambda k: (order.get(k[1], 1 << 30), k[2]))
        # units in the order they sit on the group's first parameter axis
        roots.sort(key=lambda r: where[r][first][0][1])
        first_param[len(groups)] = first
        g = len(groups)
        groups.append(Group(f"{first[1]}:{first[2]}", len(roots)))
        for key, _ in signature:
            slots = np.array([[pos for _, pos in sorted(where[r][key])] for r in roots])
            if key[0] == "p":
                axes[key[1]][key[2]][g] = slots
            else:
                nodes[key[1]][g] = slots
    # groups in state_dict order, so that names and exported files read top to bottom
    rank = sorted(range(len(groups)), key=lambda g: (order[first_param[g][1]], first_param[g][2]))
    renumber = {old: new for new, old in enumerate(rank)}
    shapes = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    return PermutationSpec(
        groups=[groups[g] for g in rank],
        axes={
            n: {a: {renumber[g]: s for g, s in d.items()} for a, d in ax.items()}
            for n, ax in axes.items()
        },  # fmt: skip
        shapes=shapes,
        nodes={n: {renumber[g]: s for g, s in d.items()} for n, d in nodes.items()},
        graph=tracer.gm,
    )
