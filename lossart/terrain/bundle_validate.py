"""Check a terrain bundle against every rule of docs/bundle.md and name each problem (numpy only).

`validate_bundle` collects problems instead of stopping at the first, so one run of
`lossart validate` says everything that is wrong. A bundle that cannot be read at all (no
manifest, not JSON, a newer schema) raises BundleError from `read_manifest`, as the reader does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lossart.format.bundle import (
    DIRECTION_KINDS,
    KINDS,
    TRANSFORMS,
    BundleError,
    dequantize16,
    read_manifest,
    sample_bilinear,
)
from lossart.format.kinds import AS_RECORDED, NO_PATH, SAMPLED, bundle_row, bundle_rows
from lossart.format.png16 import read_png16
from lossart.terrain.curve2d import CURVE_KINDS

#: Tolerance for numbers the manifest stores with 7 significant digits, relative to a scale.
REL_TOL = 2e-6


@dataclass
class ValidationReport:
    """What `validate_bundle` found: problems (empty when valid) and a one-line summary."""

    root: Path
    problems: list[str] = field(default_factory=list)
    frames: int = 0
    width: int = 0
    height: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            size = f"{self.width}x{self.height}"
            return f"{self.root}: valid terrain bundle, {self.frames} frame(s) of {size}"
        return f"{self.root}: {len(self.problems)} problem(s)"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _xy_list(v: Any, width: int) -> np.ndarray | None:
    """A list of `width`-number rows as an array, or None when it is not one."""
    if not isinstance(v, list):
        return None
    if not v:
        return np.zeros((0, width))
    if not all(isinstance(r, list) and len(r) == width and all(_is_num(x) for x in r) for r in v):
        return None
    return np.array(v, dtype=np.float64)


class _Checker:
    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.m = manifest
        self.problems: list[str] = []

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def need(self, obj: dict, key: str, where: str, check, expected: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            self.bad(where, f"missing key {key!r}")
            return None
        value = obj[key]
        if not check(value):
            self.bad(where, f"{key} = {value!r}: expected {expected}")
            return None
        return value

    # ---------------------------------------------------------------- global part

    def check_global(self) -> dict[str, Any] | None:
        m = self.m
        self.need(m, "lossart_version", "manifest", lambda v: isinstance(v, str), "a string")
        self.need(m, "created", "manifest", lambda v: isinstance(v, str), "an ISO time string")
        self.need(
            m,
            "source_run",
            "manifest",
            lambda v: v is None or isinstance(v, str),
            "a string or null",
        )
        kind = self.need(m, "kind", "manifest", lambda v: v in KINDS, f"one of {KINDS}")
        curve = m.get("curve", "missing")
        if curve == "missing":
            self.bad("manifest", "missing key 'curve'")
        elif _path(kind) != SAMPLED and curve is not None:
            self.bad("manifest", f"curve must be null for kind {kind!r}")
        elif _path(kind) == SAMPLED:
            if not isinstance(curve, dict):
                self.bad("manifest", f"curve = {curve!r}: expected {{'kind': ..., 'bends': k}}")
                curve = None
            else:
                self.need(
                    curve, "kind", "curve", lambda v: v in CURVE_KINDS, f"one of {CURVE_KINDS}"
                )
                self.need(
                    curve, "bends", "curve", lambda v: _is_int(v) and v >= 1, "an integer >= 1"
                )

        grid = self.need(m, "grid", "manifest", lambda v: isinstance(v, dict), "an object")
        height = self.need(m, "height", "manifest", lambda v: isinstance(v, dict), "an object")
        g: dict[str, Any] = {}
        if grid is not None:
            for key in ("width", "height", "source_width", "source_height"):
                g[key] = self.need(
                    grid, key, "grid", lambda v: _is_int(v) and v >= 2, "an integer >= 2"
                )
            for key in ("x_range", "y_range"):
                g[key] = self.need(
                    grid,
                    key,
                    "grid",
                    lambda v: (
                        isinstance(v, list)
                        and len(v) == 2
                        and all(_is_num(x) for x in v)
                        and v[0] < v[1]
                    ),
                    "[first, last] with first < last",
                )
            # Optional (bundles before it lack it): the precision the grids were evaluated in.
            if grid.get("dtype") not in (None, "float32", "tf32", "bfloat16"):
                self.bad("grid", f"dtype = {grid['dtype']!r}: expected null, 'float32', "
                         "'tf32' or 'bfloat16'")  # fmt: skip
        h: dict[str, Any] = {}
        if height is not None:
            h["transform"] = self.need(
                height, "transform", "height", lambda v: v in TRANSFORMS, f"one of {TRANSFORMS}"
            )
            h["loss_floor"] = self.need(
                height, "loss_floor", "height", lambda v: _is_num(v) and v > 0, "a number > 0"
            )
            h["loss_cap"] = self.need(height, "loss_cap", "height", _is_num, "a finite number")
            if (
                h["loss_floor"] is not None
                and h["loss_cap"] is not None
                and h["loss_cap"] <= h["loss_floor"]
            ):
                self.bad(
                    "height", f"loss_cap {h['loss_cap']} must be above loss_floor {h['loss_floor']}"
                )
            self.need(
                height,
                "cap_quantile",
                "height",
                lambda v: v is None or (_is_num(v) and 0 < v <= 1),
                "null or a number in (0, 1]",
            )
            self.need(height, "sigma", "height", lambda v: _is_num(v) and v >= 0, "a number >= 0")
            self.need(
                height, "frame_sigma", "height", lambda v: _is_num(v) and v >= 0, "a number >= 0"
            )
            h["upsample"] = self.need(
                height, "upsample", "height", lambda v: _is_int(v) and v >= 1, "an integer >= 1"
            )
            self.need(
                height,
                "interpolation",
                "height",
                lambda v: v in ("none", "cubic"),
                "'none' or 'cubic'",
            )
            if h["upsample"] is not None and height.get("interpolation") in ("none", "cubic"):
                if (h["upsample"] > 1) != (height["interpolation"] == "cubic"):
                    self.bad(
                        "height",
                        "interpolation must be 'cubic' when upsample > 1 and 'none' otherwise",
                    )
            h["z_min"] = self.need(height, "z_min", "height", _is_num, "a finite number")
            h["z_max"] = self.need(height, "z_max", "height", _is_num, "a finite number")
            if h["z_min"] is None or h["z_max"] is None:
                h["z_min"] = h["z_max"] = None  # range checks need both
            elif not h["z_min"] < h["z_max"]:
                self.bad("height", f"z_min {h['z_min']} must be below z_max {h['z_max']}")
                h["z_min"] = h["z_max"] = None
            self.need(height, "png_bits", "height", lambda v: v == 16, "16")
            self.check_mapping(height, h)
            self.check_relief(height, h, g)
        up = h.get("upsample")
        if up is not None and all(
            g.get(k) is not None for k in ("width", "height", "source_width", "source_height")
        ):
            for size, src in (("width", "source_width"), ("height", "source_height")):
                if g[size] != (g[src] - 1) * up + 1:
                    self.bad(
                        "grid",
                        f"{size} {g[size]} must be ({src} - 1) * upsample + 1 "
                        f"= {(g[src] - 1) * up + 1}",
                    )
        samples = self.need(
            m,
            "path_samples",
            "manifest",
            lambda v: _is_int(v) and (v >= 2 if _path(kind) == SAMPLED else v == 0),
            "0 for plane3 and trajectory, an integer >= 2 for a curve",
        )
        frames = self.need(
            m,
            "frames",
            "manifest",
            lambda v: isinstance(v, list) and len(v) > 0,
            "a non-empty list",
        )
        row = bundle_row(kind)
        if row is not None and row.still and frames is not None and len(frames) != 1:
            self.bad("manifest", f"kind {kind!r} must have exactly one frame, has {len(frames)}")
        if "directions" in m:
            self.check_directions(m["directions"])
        return {
            "kind": kind,
            "curve": curve if isinstance(curve, dict) else None,
            "grid": g,
            "height": h,
            "samples": samples,
            "frames": frames or [],
        }

    def check_directions(self, d: Any) -> None:
        """Optional `directions` (a plane around one network): kind, scale and two named axes,
        each with its Hessian eigenvalue or null."""
        if d is None:
            return
        if not isinstance(d, dict):
            self.bad("manifest", f"directions = {d!r}: expected an object or null")
            return
        self.need(d, "kind", "directions", lambda v: v in DIRECTION_KINDS,
                  f"one of {DIRECTION_KINDS}")  # fmt: skip
        self.need(d, "scale", "directions", lambda v: v is None or (_is_num(v) and v >= 0),
                  "null or a number >= 0")  # fmt: skip
        axes = self.need(d, "axes", "directions",
                         lambda v: isinstance(v, list) and len(v) == 2, "a list of two axes")  # fmt: skip
        for i, axis in enumerate(axes or []):
            where = f"directions.axes[{i}]"
            self.need(axis, "name", where, lambda v: isinstance(v, str), "a string")
            self.need(axis, "eigenvalue", where, lambda v: v is None or _is_num(v),
                      "null or a finite number")  # fmt: skip

    def check_mapping(self, height: dict, h: dict) -> None:
        """`height.mapping`: required for log10-excess (loss_min in [floor, cap], offset > 0),
        optional for log10 (bundles before it had none; its offset is 0)."""
        mapping = height.get("mapping")
        excess = h.get("transform") == "log10-excess"
        if mapping is None and not excess:
            return
        if not isinstance(mapping, dict):
            self.bad("height", "mapping: expected an object {loss_min, offset}")
            return
        lo = mapping.get("loss_min")
        if excess or lo is not None:
            lo = self.need(mapping, "loss_min", "height.mapping", _is_num, "a finite number")
            floor, cap = h.get("loss_floor"), h.get("loss_cap")
            if lo is not None and floor is not None and cap is not None:
                if not floor * (1 - REL_TOL) <= lo <= cap * (1 + REL_TOL):
                    self.bad(
                        "height.mapping",
                        f"loss_min {lo} must lie in [loss_floor, loss_cap] = [{floor}, {cap}]",
                    )
        if excess:
            self.need(
                mapping, "offset", "height.mapping", lambda v: _is_num(v) and v > 0, "a number > 0"
            )
        else:
            self.need(mapping, "offset", "height.mapping", lambda v: v == 0, "0 for log10")

    def check_relief(self, height: dict, h: dict, g: dict) -> None:
        """`height.relief` (optional): share in (0, 4]; exaggeration = share * window width /
        (z_max - z_min)."""
        relief = height.get("relief")
        if relief is None:
            return
        if not isinstance(relief, dict):
            self.bad("height", "relief: expected an object {share, exaggeration}")
            return
        share = self.need(
            relief, "share", "height.relief", lambda v: _is_num(v) and 0 < v <= 4, "a number in (0, 4]"
        )
        ex = self.need(
            relief, "exaggeration", "height.relief", lambda v: _is_num(v) and v > 0, "a number > 0"
        )
        xr = g.get("x_range")
        if None in (share, ex, xr, h.get("z_min"), h.get("z_max")):
            return
        want = share * (xr[1] - xr[0]) / (h["z_max"] - h["z_min"])
        if abs(ex - want) > 1e-6 * want:
            self.bad(
                "height.relief",
                f"exaggeration {ex:.6g} must be share * window width / (z_max - z_min) = {want:.6g}",
            )

    # ---------------------------------------------------------------- frames

    def check_frames(self, ctx: dict[str, Any]) -> None:
        prev_index = prev_step = None
        seen_files: set[str] = set()
        for pos, fr in enumerate(ctx["frames"]):
            where = (
                f"frame {fr.get('index', f'#{pos}')}" if isinstance(fr, dict) else f"frame #{pos}"
            )
            if not isinstance(fr, dict):
                self.bad(where, "expected an object")
                continue
            index = self.need(
                fr, "index", where, lambda v: _is_int(v) and v >= 0, "an integer >= 0"
            )
            step = self.need(fr, "step", where, lambda v: _is_int(v) and v >= 0, "an integer >= 0")
            self.need(fr, "epoch", where, lambda v: _is_num(v) and v >= 0, "a number >= 0")
            self.need(
                fr, "train_loss", where, lambda v: v is None or _is_num(v), "a number or null"
            )
            self.need(fr, "nonfinite", where, lambda v: _is_int(v) and v >= 0, "an integer >= 0")
            if index is not None and prev_index is not None and index <= prev_index:
                self.bad(where, f"frames out of order: index {index} after {prev_index}")
            if step is not None and prev_step is not None and step < prev_step:
                self.bad(where, f"frames out of order: step {step} after {prev_step}")
            prev_index = index if index is not None else prev_index
            prev_step = step if step is not None else prev_step
            z = self.check_heights(fr, where, ctx, seen_files)
            self.check_geometry(fr, where, ctx, z)

    def _file(self, fr: dict, key: str, where: str, suffix: str, seen: set[str]) -> Path | None:
        rel = self.need(
            fr,
            key,
            where,
            lambda v: isinstance(v, str) and v.endswith(suffix),
            f"a relative path ending in {suffix}",
        )
        if rel is None:
            return None
        path = (self.root / rel).resolve()
        if Path(rel).is_absolute() or self.root.resolve() not in path.parents:
            self.bad(where, f"{key} {rel!r} must be a path inside the bundle")
            return None
        if rel in seen:
            self.bad(where, f"{key} {rel!r} is used by another frame too")
        seen.add(rel)
        if not path.is_file():
            self.bad(where, f"{key} file {rel} is missing")
            return None
        return path

    def check_heights(self, fr: dict, where: str, ctx: dict, seen: set[str]) -> np.ndarray | None:
        g, h = ctx["grid"], ctx["height"]
        shape = (g.get("height"), g.get("width"))
        npy = self._file(fr, "heights_npy", where, ".npy", seen)
        png = self._file(fr, "heights_png", where, ".png", seen)
        z = None
        if npy is not None:
            try:
                z = np.load(npy, allow_pickle=False)
            except (OSError, ValueError) as exc:
                self.bad(where, f"{fr['heights_npy']} is not a readable .npy ({exc})")
            if z is not None:
                if z.dtype != np.float32:
                    self.bad(where, f"{fr['heights_npy']} has dtype {z.dtype}, expected float32")
                if None not in shape and z.shape != shape:
                    self.bad(
                        where,
                        f"{fr['heights_npy']} has shape {z.shape}, "
                        f"expected [height, width] = {list(shape)}",
                    )
                    z = None
                elif z.ndim != 2:
                    self.bad(where, f"{fr['heights_npy']} is not 2-D (shape {z.shape})")
                    z = None
            if z is not None:
                finite = np.isfinite(z)
                if not finite.all():
                    self.bad(
                        where, f"{fr['heights_npy']} has {int((~finite).sum())} NaN/inf heights"
                    )
                    z = None
                elif h.get("z_min") is not None:
                    tol = REL_TOL * (h["z_max"] - h["z_min"]) + 1e-6 * max(
                        abs(h["z_min"]), abs(h["z_max"])
                    )
                    lo, hi = float(z.min()), float(z.max())
                    if lo < h["z_min"] - tol or hi > h["z_max"] + tol:
                        self.bad(
                            where,
                            f"{fr['heights_npy']} heights [{lo:.6g}, {hi:.6g}] leave "
                            f"[z_min, z_max] = [{h['z_min']:.6g}, {h['z_max']:.6g}]",
                        )
        if png is not None:
            try:
                p = read_png16(png)
            except BundleError as exc:
                self.bad(where, str(exc).replace(str(png), fr["heights_png"]))
                p = None
            if p is not None and None not in shape and p.shape != shape:
                self.bad(where, f"{fr['heights_png']} has shape {p.shape}, expected {list(shape)}")
            elif p is not None and z is not None and h.get("z_min") is not None:
                span = h["z_max"] - h["z_min"]
                err = float(np.abs(dequantize16(p, h["z_min"], h["z_max"]) - z).max())
                limit = span / 131070 + 1e-6 * span + 1e-6 * max(abs(h["z_min"]), abs(h["z_max"]))
                if err > limit:
                    self.bad(
                        where,
                        f"{fr['heights_png']} differs from {fr['heights_npy']} by {err:.3g} "
                        f"(> half a 16-bit step, {span / 131070:.3g})",
                    )
        return z

    def check_geometry(self, fr: dict, where: str, ctx: dict, z: np.ndarray | None) -> None:
        kind, curve, g, h = ctx["kind"], ctx["curve"], ctx["grid"], ctx["height"]
        xr, yr = g.get("x_range"), g.get("y_range")
        scale = max(abs(v) for v in (xr or [1]) + (yr or [1])) or 1.0
        tol_xy = REL_TOL * scale + 1e-9
        span = (h["z_max"] - h["z_min"]) if h.get("z_min") is not None else 1.0
        tol_z = (
            REL_TOL * span + 1e-6 * max(abs(h.get("z_min") or 0), abs(h.get("z_max") or 0)) + 1e-7
        )

        def inside(pts: np.ndarray) -> np.ndarray:
            if xr is None or yr is None:
                return np.ones(len(pts), dtype=bool)
            return (
                (pts[:, 0] >= xr[0] - tol_xy)
                & (pts[:, 0] <= xr[1] + tol_xy)
                & (pts[:, 1] >= yr[0] - tol_xy)
                & (pts[:, 1] <= yr[1] + tol_xy)
            )

        def z_ok(label: str, xy: np.ndarray, zs: np.ndarray) -> None:
            if h.get("z_min") is not None:
                out = (zs < h["z_min"] - tol_z) | (zs > h["z_max"] + tol_z)
                if out.any():
                    self.bad(where, f"{label}: {int(out.sum())} z value(s) outside [z_min, z_max]")
            if z is not None and xr is not None and yr is not None and len(xy):
                expect = sample_bilinear(z, tuple(xr), tuple(yr), xy)
                err = np.abs(expect - zs)
                if (err > tol_z).any():
                    k = int(np.argmax(err))
                    self.bad(
                        where,
                        f"{label}: z {zs[k]:.6g} at {xy[k].tolist()} is not the surface "
                        f"height {expect[k]:.6g}",
                    )

        cp = _xy_list(fr.get("control_points"), 2)
        bends = _xy_list(fr.get("bends"), 2)
        path = _xy_list(fr.get("path"), 3)
        for key, arr in (("control_points", cp), ("bends", bends), ("path", path)):
            if key not in fr:
                self.bad(where, f"missing key {key!r}")
            elif arr is None:
                self.bad(
                    where,
                    f"{key}: expected a list of "
                    f"[{'x, y, z' if key == 'path' else 'x, y'}] number rows",
                )
        if bundle_row(kind) is not None and _path(kind) == NO_PATH:
            for key, arr in (("control_points", cp), ("bends", bends), ("path", path)):
                if arr is not None and len(arr):
                    self.bad(where, f"{key} must be empty for kind {kind!r}")
        elif _path(kind) == AS_RECORDED:
            self.check_trajectory(where, cp, bends, path, inside, z_ok, tol_xy)
        elif _path(kind) == SAMPLED and curve is not None and _is_int(curve.get("bends")):
            k = curve["bends"]
            if cp is not None and len(cp) != k + 2:
                self.bad(
                    where, f"control_points has {len(cp)} points, expected bends + 2 = {k + 2}"
                )
                cp = None
            if (
                cp is not None
                and bends is not None
                and (bends.shape != cp[1:-1].shape or not np.allclose(bends, cp[1:-1], atol=tol_xy))
            ):
                self.bad(where, "bends must equal control_points[1:-1]")
            if path is not None:
                if _is_int(ctx["samples"]) and len(path) != ctx["samples"]:
                    self.bad(
                        where,
                        f"path has {len(path)} points, expected path_samples = {ctx['samples']}",
                    )
                if len(path):
                    outside = ~inside(path[:, :2])
                    if outside.any():
                        k0 = int(np.argmax(outside))
                        self.bad(
                            where,
                            f"path: {int(outside.sum())} point(s) outside the window, "
                            f"first at {path[k0, :2].tolist()}",
                        )
                    if cp is not None:
                        if not np.allclose(path[0, :2], cp[0], atol=tol_xy) or not np.allclose(
                            path[-1, :2], cp[-1], atol=tol_xy
                        ):
                            self.bad(
                                where,
                                "path must start at w1 (first control point) and end at w2 (last)",
                            )
                    z_ok("path", path[:, :2], path[:, 2])

        points = fr.get("points")
        if not isinstance(points, list):
            self.bad(where, "points: expected a list of {name, xy, z, loss}")
            return
        names = []
        for p in points:
            ok = (
                isinstance(p, dict)
                and isinstance(p.get("name"), str)
                and _xy_list([p.get("xy")], 2) is not None
                and _is_num(p.get("z"))
                and _is_num(p.get("loss"))
                and p["loss"] >= 0
            )
            if not ok:
                self.bad(where, f"points: {p!r} is not {{name, xy: [x, y], z, loss >= 0}}")
                continue
            names.append(p["name"])
            xy = np.array([p["xy"]], dtype=np.float64)
            if not inside(xy).all():
                self.bad(where, f"point {p['name']} at {p['xy']} is outside the window")
            z_ok(f"point {p['name']}", xy, np.array([p["z"]], dtype=np.float64))
            if _path(kind) == SAMPLED and cp is not None and p["name"] in ("w1", "w2"):
                end = cp[0] if p["name"] == "w1" else cp[-1]
                if not np.allclose(xy[0], end, atol=tol_xy):
                    self.bad(
                        where,
                        f"point {p['name']} at {p['xy']} is not at its control point "
                        f"{end.tolist()}",
                    )
        if len(set(names)) != len(names):
            self.bad(where, f"points: names repeat ({names})")
        # the points of a run kind written as this bundle kind (plane3: w1, w2, w3, or around's w)
        rows = bundle_rows(kind)
        if rows and not any(set(r.points) <= set(names) for r in rows):
            self.bad(where, f"points: missing {sorted(set(rows[0].points) - set(names))}")

    def check_trajectory(self, where, cp, bends, path, inside, z_ok, tol_xy) -> None:
        """A trajectory frame: no bends; the path is the control points (the projected
        snapshots so far), inside the window and on the surface."""
        if bends is not None and len(bends):
            self.bad(where, "bends must be empty for kind 'trajectory'")
        if cp is None or path is None:
            return
        if len(cp) < 1:
            self.bad(where, "control_points: a trajectory frame needs at least one point")
        if len(path) != len(cp) or not np.allclose(path[:, :2], cp, atol=tol_xy):
            self.bad(where, "path must be the control points (the snapshots), with heights")
            return
        outside = ~inside(path[:, :2])
        if outside.any():
            self.bad(where, f"path: {int(outside.sum())} point(s) outside the window")
        z_ok("path", path[:, :2], path[:, 2])


def validate_bundle(root: str | os.PathLike) -> ValidationReport:
    """Every rule of docs/bundle.md; raises BundleError only where the manifest is unreadable."""
    mpath, manifest = read_manifest(root)
    root = mpath.parent
    checker = _Checker(root, manifest)
    ctx = checker.check_global()
    checker.check_frames(ctx)
    g = ctx["grid"]
    return ValidationReport(
        root=root,
        problems=checker.problems,
        frames=len(ctx["frames"]),
        width=g.get("width") or 0,
        height=g.get("height") or 0,
    )


def _path(kind: object) -> str | None:
    """The path a bundle of `kind` carries (kinds table), None for an unknown kind."""
    row = bundle_row(kind)
    return None if row is None else row.path
