"""Check a terrain bundle against every rule of docs/bundle.md and name each problem (numpy only).

The manifest's fields (type, presence, allowed values) are declared once in
`lossart.format.manifest` and checked by the reader that parses it; here `validate_bundle`
reads through that reader, collecting every field problem instead of stopping at the first,
and then checks what no single field can say: rules between fields, and the height files
against the manifest. So one run of `lossart validate` says everything that is wrong (the rules
between fields run once the fields parse). A bundle that cannot be read at all (no manifest,
not JSON, a newer schema) raises BundleError, as the reader does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lossart.format.bundle import (
    BundleError,
    dequantize16,
    inside_bundle,
    read_manifest,
    sample_bilinear,
)
from lossart.format.kinds import AS_RECORDED, NO_PATH, SAMPLED, bundle_row, bundle_rows
from lossart.format.manifest import FrameEntry, HeightInfo, Manifest
from lossart.format.png16 import read_png16

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


def validate_bundle(root: str | os.PathLike) -> ValidationReport:
    """Every rule of docs/bundle.md; raises BundleError only where the manifest is unreadable."""
    problems: list[str] = []
    mpath, m = read_manifest(root, problems)
    grid = m.grid  # None (or holding Nones) where its fields are wrong: then only problems count
    report = ValidationReport(
        root=mpath.parent,
        problems=problems,
        frames=len(m.frames or ()),
        width=(grid.width if grid else None) or 0,
        height=(grid.height if grid else None) or 0,
    )
    if not problems:  # the fields are as declared: the rules between them
        rules = _Rules(mpath.parent, m, problems)
        rules.check_global()
        rules.check_frames()
    return report


class _Rules:
    """The rules between the fields of a parsed manifest, and between it and its files."""

    def __init__(self, root: Path, m: Manifest, problems: list[str]) -> None:
        self.root, self.m, self.problems = root, m, problems
        self.path = bundle_row(m.kind).path  # kinds are declared: every one has a row
        g, h = m.grid, m.height
        self.xr, self.yr = g.x_range, g.y_range
        scale = max(abs(v) for v in self.xr + self.yr) or 1.0
        self.tol_xy = REL_TOL * scale + 1e-9
        self.z_ok_range = h.z_min < h.z_max  # range checks need an ascending range
        big = max(abs(h.z_min), abs(h.z_max))
        self.tol_z = REL_TOL * (h.z_max - h.z_min) + 1e-6 * big + 1e-7

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    # ---------------------------------------------------------------- global part

    def check_global(self) -> None:
        m, g, h = self.m, self.m.grid, self.m.height
        if self.path != SAMPLED and m.curve is not None:
            self.bad("curve", f"must be null for kind {m.kind!r}")
        elif self.path == SAMPLED and m.curve is None:
            self.bad("curve", f"expected {{'kind': ..., 'bends': k}} for kind {m.kind!r}, got null")
        if self.path == SAMPLED and m.path_samples < 2:
            self.bad("path_samples", f"{m.path_samples}: expected an integer >= 2 for a curve")
        elif self.path != SAMPLED and m.path_samples != 0:
            self.bad("path_samples", f"{m.path_samples}: expected 0 for kind {m.kind!r}")
        if bundle_row(m.kind).still and len(m.frames) != 1:
            self.bad(
                "manifest", f"kind {m.kind!r} must have exactly one frame, has {len(m.frames)}"
            )
        if m.directions is not None and len(m.directions.axes) != 2:
            self.bad(
                "directions.axes", f"expected a list of two axes, got {len(m.directions.axes)}"
            )
        if h.loss_cap <= h.loss_floor:
            self.bad("height", f"loss_cap {h.loss_cap} must be above loss_floor {h.loss_floor}")
        if (h.upsample > 1) != (h.interpolation == "cubic"):
            self.bad(
                "height", "interpolation must be 'cubic' when upsample > 1 and 'none' otherwise"
            )
        if not h.z_min < h.z_max:
            self.bad("height", f"z_min {h.z_min} must be below z_max {h.z_max}")
        for size, src in (("width", "source_width"), ("height", "source_height")):
            want = (getattr(g, src) - 1) * h.upsample + 1
            if getattr(g, size) != want:
                self.bad(
                    "grid", f"{size} {getattr(g, size)} must be ({src} - 1) * upsample + 1 = {want}"
                )
        self.check_mapping(h)
        self.check_relief(h)

    def check_mapping(self, h: HeightInfo) -> None:
        """`height.mapping`: required for log10-excess (loss_min in [floor, cap], offset > 0),
        optional for log10 (bundles before it had none; its offset is 0)."""
        excess = h.transform == "log10-excess"
        mapping = h.mapping
        if mapping is None:
            if excess:
                self.bad("height.mapping", "missing: log10-excess needs {loss_min, offset}")
            return
        if excess and mapping.loss_min is None:
            self.bad("height.mapping.loss_min", "expected a number for log10-excess, got null")
        if mapping.loss_min is not None:
            lo, floor, cap = mapping.loss_min, h.loss_floor, h.loss_cap
            if not floor * (1 - REL_TOL) <= lo <= cap * (1 + REL_TOL):
                self.bad(
                    "height.mapping",
                    f"loss_min {lo} must lie in [loss_floor, loss_cap] = [{floor}, {cap}]",
                )
        if excess and not mapping.offset > 0:
            self.bad(
                "height.mapping.offset", f"{mapping.offset}: expected a number > 0 for log10-excess"
            )
        elif not excess and mapping.offset != 0:
            self.bad("height.mapping.offset", f"{mapping.offset}: expected 0 for log10")

    def check_relief(self, h: HeightInfo) -> None:
        """`height.relief` (optional): exaggeration = share * window width / (z_max - z_min)."""
        if h.relief is None or not self.z_ok_range:
            return
        share, ex = h.relief.share, h.relief.exaggeration
        want = share * (self.xr[1] - self.xr[0]) / (h.z_max - h.z_min)
        if abs(ex - want) > 1e-6 * want:
            self.bad(
                "height.relief",
                f"exaggeration {ex:.6g} must be share * window width / (z_max - z_min) = {want:.6g}",
            )

    # ---------------------------------------------------------------- frames

    def check_frames(self) -> None:
        prev: FrameEntry | None = None
        seen: set[str] = set()
        for fr in self.m.frames:
            where = f"frame {fr.index}"
            if prev is not None and fr.index <= prev.index:
                self.bad(where, f"frames out of order: index {fr.index} after {prev.index}")
            if prev is not None and fr.step < prev.step:
                self.bad(where, f"frames out of order: step {fr.step} after {prev.step}")
            prev = fr
            z = self.check_heights(fr, where, seen)
            self.check_geometry(fr, where, z)

    def _file(self, fr: FrameEntry, key: str, where: str, seen: set[str]) -> Path | None:
        rel = getattr(fr, key)
        path = inside_bundle(self.root, rel)
        if path is None:
            self.bad(where, f"{key} {rel!r} must be a path inside the bundle")
            return None
        if rel in seen:
            self.bad(where, f"{key} {rel!r} is used by another frame too")
        seen.add(rel)
        if not path.is_file():
            self.bad(where, f"{key} file {rel} is missing")
            return None
        return path

    def check_heights(self, fr: FrameEntry, where: str, seen: set[str]) -> np.ndarray | None:
        """The frame's .npy and PNG: float32 [height, width], finite, within [z_min, z_max],
        the PNG within half a 16-bit step of the .npy."""
        h = self.m.height
        shape = (self.m.grid.height, self.m.grid.width)
        npy = self._file(fr, "heights_npy", where, seen)
        png = self._file(fr, "heights_png", where, seen)
        z = None
        if npy is not None:
            try:
                z = np.load(npy, allow_pickle=False)
            except (OSError, ValueError) as exc:
                self.bad(where, f"{fr.heights_npy} is not a readable .npy ({exc})")
        if z is not None:
            if z.dtype != np.float32:
                self.bad(where, f"{fr.heights_npy} has dtype {z.dtype}, expected float32")
            if z.shape != shape:
                self.bad(
                    where,
                    f"{fr.heights_npy} has shape {z.shape}, expected [height, width] = {list(shape)}",
                )
                z = None
        if z is not None:
            finite = np.isfinite(z)
            if not finite.all():
                self.bad(where, f"{fr.heights_npy} has {int((~finite).sum())} NaN/inf heights")
                z = None
            elif self.z_ok_range:
                tol = REL_TOL * (h.z_max - h.z_min) + 1e-6 * max(abs(h.z_min), abs(h.z_max))
                lo, hi = float(z.min()), float(z.max())
                if lo < h.z_min - tol or hi > h.z_max + tol:
                    self.bad(
                        where,
                        f"{fr.heights_npy} heights [{lo:.6g}, {hi:.6g}] leave "
                        f"[z_min, z_max] = [{h.z_min:.6g}, {h.z_max:.6g}]",
                    )
        if png is None:
            return z
        try:
            p = read_png16(png)
        except BundleError as exc:
            self.bad(where, str(exc).replace(str(png), fr.heights_png))
            return z
        if p.shape != shape:
            self.bad(where, f"{fr.heights_png} has shape {p.shape}, expected {list(shape)}")
        elif z is not None and self.z_ok_range:
            span = h.z_max - h.z_min
            err = float(np.abs(dequantize16(p, h.z_min, h.z_max) - z).max())
            limit = span / 131070 + 1e-6 * span + 1e-6 * max(abs(h.z_min), abs(h.z_max))
            if err > limit:
                self.bad(
                    where,
                    f"{fr.heights_png} differs from {fr.heights_npy} by {err:.3g} "
                    f"(> half a 16-bit step, {span / 131070:.3g})",
                )
        return z

    def inside(self, pts: np.ndarray) -> np.ndarray:
        """Which plane points lie in the window (to the manifest's 7 digits)."""
        (x0, x1), (y0, y1), t = self.xr, self.yr, self.tol_xy
        return (
            (pts[:, 0] >= x0 - t)
            & (pts[:, 0] <= x1 + t)
            & (pts[:, 1] >= y0 - t)
            & (pts[:, 1] <= y1 + t)
        )

    def on_surface(self, where: str, label: str, xy: np.ndarray, zs: np.ndarray, z) -> None:
        """Path or point heights: within [z_min, z_max] and bilinear from the frame's heights."""
        h = self.m.height
        if self.z_ok_range:
            out = (zs < h.z_min - self.tol_z) | (zs > h.z_max + self.tol_z)
            if out.any():
                self.bad(where, f"{label}: {int(out.sum())} z value(s) outside [z_min, z_max]")
        if z is not None and len(xy):
            expect = sample_bilinear(z, self.xr, self.yr, xy)
            err = np.abs(expect - zs)
            if (err > self.tol_z).any():
                k = int(np.argmax(err))
                self.bad(
                    where,
                    f"{label}: z {zs[k]:.6g} at {xy[k].tolist()} is not the surface "
                    f"height {expect[k]:.6g}",
                )

    def check_geometry(self, fr: FrameEntry, where: str, z: np.ndarray | None) -> None:
        cp, bends, path = fr.control_points, fr.bends, fr.path

        def surface(label: str, xy: np.ndarray, zs: np.ndarray) -> None:
            self.on_surface(where, label, xy, zs, z)

        if self.path == NO_PATH:
            for key, arr in (("control_points", cp), ("bends", bends), ("path", path)):
                if len(arr):
                    self.bad(where, f"{key} must be empty for kind {self.m.kind!r}")
        elif self.path == AS_RECORDED:
            self.check_trajectory(where, cp, bends, path, surface)
        elif self.m.curve is not None:
            self.check_curve(where, cp, bends, path, surface)
        self.check_points(fr, where, cp, surface)

    def check_curve(self, where, cp, bends, path, surface) -> None:
        """A curve frame: k + 2 control points, the bends between them, `path_samples` path
        points from w1 to w2, inside the window and on the surface."""
        k = self.m.curve.bends
        if len(cp) != k + 2:
            self.bad(where, f"control_points has {len(cp)} points, expected bends + 2 = {k + 2}")
            cp = None
        if cp is not None and (
            bends.shape != cp[1:-1].shape or not np.allclose(bends, cp[1:-1], atol=self.tol_xy)
        ):
            self.bad(where, "bends must equal control_points[1:-1]")
        if len(path) != self.m.path_samples:
            self.bad(
                where, f"path has {len(path)} points, expected path_samples = {self.m.path_samples}"
            )
        if not len(path):
            return
        outside = ~self.inside(path[:, :2])
        if outside.any():
            k0 = int(np.argmax(outside))
            self.bad(
                where,
                f"path: {int(outside.sum())} point(s) outside the window, "
                f"first at {path[k0, :2].tolist()}",
            )
        if cp is not None and not (
            np.allclose(path[0, :2], cp[0], atol=self.tol_xy)
            and np.allclose(path[-1, :2], cp[-1], atol=self.tol_xy)
        ):
            self.bad(where, "path must start at w1 (first control point) and end at w2 (last)")
        surface("path", path[:, :2], path[:, 2])

    def check_trajectory(self, where, cp, bends, path, surface) -> None:
        """A trajectory frame: no bends; the path is the control points (the projected
        snapshots so far), inside the window and on the surface."""
        if len(bends):
            self.bad(where, "bends must be empty for kind 'trajectory'")
        if len(cp) < 1:
            self.bad(where, "control_points: a trajectory frame needs at least one point")
        if len(path) != len(cp) or not np.allclose(path[:, :2], cp, atol=self.tol_xy):
            self.bad(where, "path must be the control points (the snapshots), with heights")
            return
        outside = ~self.inside(path[:, :2])
        if outside.any():
            self.bad(where, f"path: {int(outside.sum())} point(s) outside the window")
        surface("path", path[:, :2], path[:, 2])

    def check_points(self, fr: FrameEntry, where: str, cp, surface) -> None:
        """Named points: inside the window, on the surface, unique, w1/w2 at the curve's ends,
        and the names the bundle's kind carries."""
        names = [p.name for p in fr.points]
        for p in fr.points:
            xy = np.array([p.xy], dtype=np.float64)
            if not self.inside(xy).all():
                self.bad(where, f"point {p.name} at {list(p.xy)} is outside the window")
            surface(f"point {p.name}", xy, np.array([p.z], dtype=np.float64))
            if self.path == SAMPLED and cp is not None and len(cp) and p.name in ("w1", "w2"):
                end = cp[0] if p.name == "w1" else cp[-1]
                if not np.allclose(xy[0], end, atol=self.tol_xy):
                    self.bad(
                        where,
                        f"point {p.name} at {list(p.xy)} is not at its control point {end.tolist()}",
                    )
        if len(set(names)) != len(names):
            self.bad(where, f"points: names repeat ({names})")
        # the points of a run kind written as this bundle kind (plane3: w1, w2, w3, or around's w)
        rows = bundle_rows(self.m.kind)
        if not any(set(r.points) <= set(names) for r in rows):
            self.bad(where, f"points: missing {sorted(set(rows[0].points) - set(names))}")
