"""The kinds of runs and of the bundles made from them, in one table.

A run folder's `run.json` and its `grids/grid.json` say which kind of run it is; its terrain
bundle's `manifest.json` says which kind of bundle that became. Every stage that behaves
differently by kind (the grid's planes, the terrain build, the writer, the validator, the
preview's titles) asks this table instead of comparing strings of its own, so a new kind is one
row here plus the code that is really new (tests/test_architecture.py finds kind literals
anywhere else). Standard library only: the add-on reads the bundle kinds from here too.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A bundle's path: sampled along the curve of the control points (path_samples of them), the
#: control points as they are (a trajectory's projected snapshots), or none (no control points,
#: no bends: a plane of named points).
SAMPLED, AS_RECORDED, NO_PATH = "sampled", "as-recorded", ""


@dataclass(frozen=True)
class Kind:
    """One kind of run, and what its grids, bundle, preview and title need."""

    name: str  # run.json's and grid.json's "kind"
    bundle: str  # the manifest's "kind" its terrain is written as
    many_grids: bool  # one grid per recorded frame (a video), else exactly one grid
    still: bool  # its bundle has exactly one frame (nothing moves)
    path: str  # the bundle's path: SAMPLED, AS_RECORDED or NO_PATH (below)
    points: tuple[str, ...]  # the named points each frame of its bundle carries
    title: str  # a preview's title: str.format'ed with index, step, epoch and loss (", train
    # loss 0.123" or "") for many-frame kinds; the one plane's name otherwise

    def frame_title(self, index: int, step: int, epoch: float, loss: str) -> str:
        return self.title.format(index=index, step=step, epoch=epoch, loss=loss)


CURVE = Kind("curve", "curve", True, False, SAMPLED, ("w1", "w2"),
             "frame {index}: step {step}, epoch {epoch:.2f}{loss}")
PLANE3 = Kind("plane3", "plane3", False, True, NO_PATH, ("w1", "w2", "w3"), "plane through three optima")
AROUND = Kind("around", "plane3", False, True, NO_PATH, ("w",), "random plane around one network")
# one grid, and a bundle frame per snapshot: the route revealed over the one terrain
TRAJECTORY = Kind("trajectory", "trajectory", False, False, AS_RECORDED, ("final",),
                  "snapshot {index}: step {step}, epoch {epoch:.2f}{loss}")

#: Every run kind, by name.
RUN_KINDS: dict[str, Kind] = {k.name: k for k in (CURVE, PLANE3, AROUND, TRAJECTORY)}
#: The bundle kinds the format knows (a manifest's "kind"), in table order.
BUNDLE_KINDS: tuple[str, ...] = tuple(dict.fromkeys(k.bundle for k in RUN_KINDS.values()))


def run_kind(name: object) -> Kind | None:
    """The row of run kind `name`, or None for a kind this lossart does not know."""
    return RUN_KINDS.get(name) if isinstance(name, str) else None


def bundle_rows(bundle_kind: object) -> list[Kind]:
    """The run kinds whose terrain is a bundle of `bundle_kind` (plane3: plane3 and around);
    they agree on everything a bundle shows but their points and titles."""
    return [k for k in RUN_KINDS.values() if k.bundle == bundle_kind]


def bundle_row(bundle_kind: object) -> Kind | None:
    """The first run kind written as `bundle_kind` (its path and frames are the bundle's)."""
    rows = bundle_rows(bundle_kind)
    return rows[0] if rows else None


def source_kind(bundle_kind: str, point_names: list[str] | tuple[str, ...]) -> Kind | None:
    """The run kind a bundle came from: of those written as `bundle_kind`, the one whose named
    points these are (an around run's plane3 bundle has the one point w), else the first."""
    rows = bundle_rows(bundle_kind)
    for row in rows:
        if tuple(point_names) == row.points:
            return row
    return rows[0] if rows else None
