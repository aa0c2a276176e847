"""Declared JSON records: a frozen dataclass per JSON object, each field's annotation its type and
`rule(...)` whether it is required and which values it allows; `parse_record` reads JSON into
them, naming the field path of anything wrong, and `to_json` writes them back.

Why: the terrain manifest is declared once (manifest.py) and the reader, the writer and
`lossart validate` all go through that one declaration, so they cannot disagree on a field.
Types understood: str, int, float, `X | None`, a nested record, `tuple[X, ...]` (a list),
`tuple[float, float]` (a pair), `np.ndarray` (rows of `cols` numbers) and `dict` (any object).
numpy and the standard library only: it ships in the Blender extension.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, is_dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Rule:
    """What a field allows beyond its type (all optional)."""

    choices: tuple = ()  # the allowed values
    ge: float | None = None  # bounds of a number
    gt: float | None = None
    le: float | None = None
    ascending: bool = False  # a pair: first < last
    nonempty: bool = False  # a list: at least one item
    suffix: str = ""  # a string: how it ends
    cols: int = 0  # an np.ndarray: numbers per row
    omit_none: bool = False  # written only when not None (older bundles lack the key)
    extra: bool = False  # a dict field that collects the object's undeclared keys


def rule(default: Any = MISSING, **kw: Any) -> Any:
    """A declared field: no default means required; `kw` are `Rule`'s."""
    meta = {"rule": Rule(**{k: tuple(v) if k == "choices" else v for k, v in kw.items()})}
    if default is MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class FieldProblem(Exception):
    """A field that is missing or not what its declaration says: `path: what was expected`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


#: Where `parse_record` reports: None raises FieldProblem at the first problem (the reader), a
#: list collects every problem's line and carries on (the validator).
Problems = list[str] | None


def parse_record(cls: type, data: Any, path: str = "", problems: Problems = None) -> Any:
    """`data` (parsed JSON) as the record `cls`; a field that is wrong becomes None when
    `problems` collects (the result then only serves to find more problems)."""
    if not isinstance(data, dict):
        _report(problems, path or "manifest", f"expected an object, got {_short(data)}")
        return None
    values: dict[str, Any] = {}
    extra_name = None
    for f in dataclasses.fields(cls):
        r = _rule(f)
        if r.extra:
            extra_name = f.name
            continue
        where = f"{path}.{f.name}" if path else f.name
        tp = _hints(cls)[f.name]
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                _report(problems, where, f"missing (expected {expected(tp, r)})")
                values[f.name] = None
            continue  # the dataclass default
        values[f.name] = _value(tp, r, data[f.name], where, problems)
    if extra_name is not None:
        known = {f.name for f in dataclasses.fields(cls)}
        values[extra_name] = {k: v for k, v in data.items() if k not in known}
    return cls(**values)


def to_json(record: Any) -> Any:
    """The JSON form of a record (keys in declaration order), of a list, array or number."""
    if is_dataclass(record):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(record):
            value, r = getattr(record, f.name), _rule(f)
            if r.extra:
                out.update(value)
            elif not (r.omit_none and value is None):
                out[f.name] = to_json(value)
        return out
    if isinstance(record, np.ndarray):
        return record.tolist()
    if isinstance(record, tuple | list):
        return [to_json(v) for v in record]
    return record


def declared_fields(cls: type) -> list[tuple[str, Any, Rule, bool]]:
    """(name, type, rule, required) of each JSON key a record declares (docs, tests)."""
    return [
        (
            f.name,
            _hints(cls)[f.name],
            _rule(f),
            f.default is MISSING and f.default_factory is MISSING,
        )
        for f in dataclasses.fields(cls)
        if not _rule(f).extra
    ]


def expected(tp: Any, r: Rule) -> str:
    """What a field of type `tp` with rule `r` must be, in words (error messages)."""
    inner, nullable = _unwrap(tp)
    what = _expected(inner, r)
    return f"null or {what}" if nullable else what


# ---------------------------------------------------------------- the parts


def _rule(f: dataclasses.Field) -> Rule:
    return f.metadata.get("rule", Rule())


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(`X`, True) for `X | None`, else (`tp`, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _expected(tp: Any, r: Rule) -> str:
    if r.choices:
        opts = ", ".join(repr(c) for c in r.choices)
        return opts if len(r.choices) == 1 else f"one of {opts}"
    if tp is str:
        return f"a string ending in {r.suffix}" if r.suffix else "a string"
    if tp in (int, float):
        what = "an integer" if tp is int else "a number"
        if r.gt is not None and r.le is not None:
            return f"{what} in ({r.gt:g}, {r.le:g}]"
        bounds = [f"> {r.gt:g}" for _ in [r.gt] if r.gt is not None]
        bounds += [f">= {r.ge:g}" for _ in [r.ge] if r.ge is not None]
        bounds += [f"<= {r.le:g}" for _ in [r.le] if r.le is not None]
        return " ".join([what, *bounds])
    if tp is np.ndarray:
        return f"a list of [{', '.join('xyz'[: r.cols])}] number rows"
    if is_dataclass(tp) or tp is dict:
        return "an object"
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args[-1] is Ellipsis:
        return "a non-empty list" if r.nonempty else "a list"
    if typing.get_origin(tp) is tuple:
        return "[first, last] with first < last" if r.ascending else f"a list of {len(args)}"
    raise TypeError(f"schema: no reader for type {tp!r}")


def _value(tp: Any, r: Rule, value: Any, where: str, problems: Problems) -> Any:
    inner, nullable = _unwrap(tp)
    if value is None:
        if not nullable:
            _report(problems, where, f"expected {expected(tp, r)}, got null")
        return None
    if is_dataclass(inner):
        return parse_record(inner, value, where, problems)
    args = typing.get_args(inner)
    if typing.get_origin(inner) is tuple and args[-1] is Ellipsis:
        if not isinstance(value, list) or (r.nonempty and not value):
            _report(problems, where, f"expected {expected(tp, r)}, got {_short(value)}")
            return None
        item = Rule()
        return tuple(
            _value(args[0], item, v, f"{where}[{i}]", problems) for i, v in enumerate(value)
        )
    out = _convert(inner, r, value)
    if out is _BAD:
        _report(problems, where, f"expected {expected(tp, r)}, got {_short(value)}")
        return None
    return out


class _Bad:
    pass


_BAD = _Bad()


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _convert(tp: Any, r: Rule, v: Any) -> Any:
    """`v` as `tp` if it is one and keeps the rule, else _BAD."""
    if tp is str:
        ok = isinstance(v, str) and v.endswith(r.suffix)
    elif tp is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif tp is float:
        ok = _number(v)
        v = float(v) if ok else v
    elif tp is dict:
        ok = isinstance(v, dict)
    elif tp is np.ndarray:
        return _rows(v, r.cols)
    else:  # a fixed-length tuple of numbers
        n = len(typing.get_args(tp))
        ok = isinstance(v, list) and len(v) == n and all(_number(x) for x in v)
        ok = ok and not (r.ascending and not v[0] < v[-1])
        return tuple(float(x) for x in v) if ok else _BAD
    if not ok:
        return _BAD
    if r.choices and v not in r.choices:
        return _BAD
    if tp in (int, float) and not (
        (r.ge is None or v >= r.ge) and (r.gt is None or v > r.gt) and (r.le is None or v <= r.le)
    ):
        return _BAD
    return v


def _rows(v: Any, cols: int) -> Any:
    """A list of `cols`-number rows as a float64 array [N, cols], else _BAD (the types of all
    numbers at once: a 600-frame manifest holds some 10^5 of them)."""
    if not isinstance(v, list) or not all(isinstance(row, list) and len(row) == cols for row in v):
        return _BAD
    if not v:
        return np.zeros((0, cols))
    try:
        cells = np.array(v, dtype=object)
    except ValueError:  # ragged deeper down
        return _BAD
    if cells.shape != (len(v), cols):  # rows of lists
        return _BAD
    cells = cells.ravel()
    if not set(map(type, cells)) <= {int, float}:  # bool, str, None, objects: not numbers
        return _BAD
    arr = cells.astype(np.float64).reshape(-1, cols)
    return arr if np.isfinite(arr).all() else _BAD


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _report(problems: Problems, where: str, message: str) -> None:
    if problems is None:
        raise FieldProblem(where, message)
    problems.append(f"{where}: {message}")
