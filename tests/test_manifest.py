"""The manifest declared once (lossart/format/manifest.py): the reader names the field path of
whatever breaks the declaration, the validator lists every such problem, the writer's output is
the declaration's JSON, and a bundle from the real pipeline passes."""

from __future__ import annotations

import json
import typing
from dataclasses import is_dataclass
from pathlib import Path

import pytest
from grid_fixtures import make_curve_run

from lossart.cli import main
from lossart.format.bundle import BundleError, load_bundle
from lossart.format.manifest import Manifest
from lossart.format.schema import FieldProblem, declared_fields, parse_record, to_json
from lossart.grid.run_grid import GridConfig, grid_run
from lossart.terrain.build import build_terrain
from lossart.terrain.bundle_validate import validate_bundle
from lossart.terrain.heightfield import TerrainConfig
from lossart.terrain.synthetic import synthetic_bundle

#: A plane around one network's `directions`, as grid.json records it (extra keys kept).
DIRECTIONS = {
    "kind": "hessian",
    "scale": 0.5,
    "axes": [
        {"name": "eigenvector 1", "eigenvalue": 3.0},
        {"name": "eigenvector 2", "eigenvalue": 1},
    ],
    "trace": 12.5,
    "subset": 64,
}


#: One frame's entry, as the writer writes it.
FRAME = {
    "index": 0, "step": 0, "epoch": 0.0, "train_loss": None,
    "heights_npy": "heights/frame_00000.npy", "heights_png": "heights/frame_00000.png",
    "nonfinite": 0, "control_points": [[0, 0], [1.5, 0]], "path": [], "points": [], "bends": [],
}  # fmt: skip


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A synthetic curve bundle whose manifest also carries `directions`, so that every
    declared record occurs."""
    root = synthetic_bundle(tmp_path / "terrain", frames=2, size=17)
    m = json.loads((root / "manifest.json").read_text())
    m["directions"] = DIRECTIONS
    (root / "manifest.json").write_text(json.dumps(m))
    return root


def declared_paths(cls: type, data: dict, path: str = "") -> list[tuple[str, typing.Any, bool]]:
    """(field path, type, required) of every declared key in `data`, first list items only."""
    out = []
    for name, tp, _, required in declared_fields(cls):
        where = f"{path}.{name}" if path else name
        out.append((where, tp, required))
        inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        value = data.get(name)
        if is_dataclass(inner[0]) and isinstance(value, dict):
            out += declared_paths(inner[0], value, where)
        elif typing.get_origin(tp) is tuple and is_dataclass(typing.get_args(tp)[0]) and value:
            out += declared_paths(typing.get_args(tp)[0], value[0], f"{where}[0]")
    return out


def set_path(data: dict, path: str, value, delete: bool = False) -> None:
    """Set (or delete) the key at a field path like `frames[0].points[0].xy`."""
    keys = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    for k in keys[:-1]:
        data = data[k]
    if delete:
        del data[keys[-1]]
    else:
        data[keys[-1]] = value


def test_the_walk_sees_every_record(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    paths = {p for p, _, _ in declared_paths(Manifest, m)}
    assert {
        "grid.dtype",
        "height.mapping.offset",
        "height.relief.share",
        "curve.bends",
        "directions.axes[0].eigenvalue",
        "frames[0].points[0].xy",
        "frames[0].path",
    } <= paths


def test_a_field_of_the_wrong_type_is_one_line_naming_its_path(bundle):
    """Every declared field, given JSON of the wrong type, fails to load with one line naming
    the manifest and the field path; every required one, deleted, says it is missing."""
    mfile = bundle / "manifest.json"
    good = mfile.read_text()
    checked = 0
    for path, tp, required in declared_paths(Manifest, json.loads(good)):
        inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        cases = [("wrong", 5 if inner[0] is str else "x")] + (
            [("missing", None)] if required else []
        )
        for how, value in cases:
            m = json.loads(good)
            set_path(m, path, value, delete=how == "missing")
            mfile.write_text(json.dumps(m))
            with pytest.raises(BundleError) as err:
                load_bundle(bundle)
            line = str(err.value)
            assert "\n" not in line and line.startswith(str(mfile)), line
            assert path in line, (path, line)
            if path not in ("format", "schema_version"):  # refused before the declared parse
                assert f"{mfile}: {path}: " in line, line
                assert ("missing (expected" if how == "missing" else "expected") in line, line
            checked += 1
    assert checked > 60  # every field of every record, present and absent


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            "frames[1].heights_npy",
            3,
            "frames[1].heights_npy: expected a string ending in .npy, got 3",
        ),
        ("frames[0].index", "abc", "frames[0].index: expected an integer >= 0, got 'abc'"),
        ("frames[0].epoch", True, "frames[0].epoch: expected a number >= 0, got True"),
        (
            "frames[0].train_loss",
            "low",
            "frames[0].train_loss: expected null or a number, got 'low'",
        ),
        (
            "frames[0].path",
            [[1.0, 2.0]],
            "frames[0].path: expected a list of [x, y, z] number rows",
        ),
        ("frames[1].points[0].xy", [1.0], "frames[1].points[0].xy: expected a list of 2"),
        ("grid.x_range", [3.0, 1.0], "grid.x_range: expected [first, last] with first < last"),
        ("grid.width", 1, "grid.width: expected an integer >= 2, got 1"),
        (
            "grid.dtype",
            "float64",
            "grid.dtype: expected null or one of 'float32', 'tf32', 'bfloat16', got 'float64'",
        ),
        ("height.cap_quantile", 1.5, "height.cap_quantile: expected null or a number in (0, 1]"),
        ("height.png_bits", 8, "height.png_bits: expected 16, got 8"),
        ("kind", "torus", "kind: expected one of 'curve', 'plane3', 'trajectory', got 'torus'"),
        ("frames", [], "frames: expected a non-empty list, got []"),
        ("height", None, "height: expected an object, got null"),
        ("directions.axes[1].name", None, "directions.axes[1].name: expected a string, got null"),
    ],
)
def test_what_each_rule_says(bundle, path, value, message):
    m = json.loads((bundle / "manifest.json").read_text())
    set_path(m, path, value)
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle)
    assert f"{bundle / 'manifest.json'}: {message}" in str(err.value)


def test_the_validator_lists_every_field_problem_at_once(bundle, capsys):
    m = json.loads((bundle / "manifest.json").read_text())
    m["frames"][1]["heights_npy"] = 3
    m["height"].pop("z_max")
    m["grid"]["dtype"] = "float64"
    (bundle / "manifest.json").write_text(json.dumps(m))
    problems = validate_bundle(bundle).problems
    assert [p.split(":")[0] for p in problems] == [
        "grid.dtype",
        "height.z_max",
        "frames[1].heights_npy",
    ]
    assert main(["validate", str(bundle)]) == 1
    out = capsys.readouterr().out
    assert all(p in out for p in problems)


def _set(path, value):
    return lambda m: set_path(m, path, value)


@pytest.mark.parametrize(
    "change, message",
    [
        (_set("path_samples", 1), "path_samples: 1: expected an integer >= 2 for a curve"),
        (
            _set("curve", None),
            "curve: expected {'kind': ..., 'bends': k} for kind 'curve', got null",
        ),
        (_set("height.loss_cap", 1e-5), "height: loss_cap 1e-05 must be above loss_floor"),
        (_set("height.upsample", 2), "height: interpolation must be 'cubic' when upsample > 1"),
        (_set("height.z_max", -5.0), "height: z_min"),
        (_set("height.transform", "log10"), "height.mapping.offset: "),
        (_set("directions.axes", []), "directions.axes: expected a list of two axes, got 0"),
        (_set("frames[1].heights_png", "heights/frame_00000.png"), "is used by another frame too"),
        (_set("frames[1].heights_npy", "../elsewhere.npy"), "must be a path inside the bundle"),
        (_set("frames[0].step", 500), "frame 1: frames out of order: step 100 after 500"),
        (_set("frames[0].bends", [[9.0, 9.0]]), "frame 0: bends must equal control_points[1:-1]"),
        (_set("frames[0].control_points", [[0.0, 0.0]]), "frame 0: control_points has 1 points"),
        (_set("frames[0].points[1].name", "w1"), "frame 0: points: names repeat"),
        (
            _set("frames[0].points[1].xy", [99.0, 0.0]),
            "point w2 at [99.0, 0.0] is outside the window",
        ),
    ],
)
def test_the_validator_checks_the_rules_between_fields(bundle, change, message):
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    (bundle / "manifest.json").write_text(json.dumps(m))
    problems = validate_bundle(bundle).problems
    assert any(message in p for p in problems), problems


def test_a_plane3_bundle_has_no_curve_and_one_frame(tmp_path):
    root = synthetic_bundle(tmp_path / "p", kind="plane3", size=17)
    m = json.loads((root / "manifest.json").read_text())
    m["curve"] = {"kind": "bezier", "bends": 1}
    m["frames"].append(dict(m["frames"][0], index=1))
    (root / "manifest.json").write_text(json.dumps(m))
    problems = validate_bundle(root).problems
    assert "curve: must be null for kind 'plane3'" in problems
    assert "manifest: kind 'plane3' must have exactly one frame, has 2" in problems


def test_unknown_keys_are_additions_that_old_readers_ignore(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    m["colour"] = "teal"
    m["frames"][0]["note"] = {"any": "thing"}
    (bundle / "manifest.json").write_text(json.dumps(m))
    assert validate_bundle(bundle).ok and len(load_bundle(bundle).frames) == 2


@pytest.mark.parametrize("kind", ["curve", "plane3"])
def test_the_writer_writes_the_declaration(tmp_path, kind):
    """What the writer puts on disk is exactly the JSON of the declared records it parses to."""
    root = synthetic_bundle(tmp_path / "b", kind=kind, frames=2, size=17)
    written = json.loads((root / "manifest.json").read_text())
    manifest = parse_record(Manifest, written)
    assert to_json(manifest) == written
    assert load_bundle(root).manifest.frames[0].heights_npy == written["frames"][0]["heights_npy"]


@pytest.mark.parametrize(
    "rows",
    [
        [[1, True]],
        [[1, "2"]],
        [[1, None]],
        [[1, [2]]],
        [[[1, 2], [3, 4]]],
        [[1, float("nan")]],
        [[1, 2, 3]],
        "x",
    ],
)
def test_rows_of_numbers_are_numbers(rows):
    """Path, bends and control points: lists of [x, y] rows of finite JSON numbers, nothing else."""
    from lossart.format.manifest import FrameEntry

    entry = {"control_points": rows, **{k: v for k, v in FRAME.items() if k != "control_points"}}
    with pytest.raises(
        FieldProblem, match=r"^frames\[0\].control_points: expected a list of \[x, y\] number rows"
    ):
        parse_record(FrameEntry, entry, "frames[0]")
    assert parse_record(FrameEntry, FRAME).control_points.shape == (2, 2)


def test_directions_keep_their_extra_keys():
    from lossart.format.manifest import Directions

    d = parse_record(Directions, DIRECTIONS, "directions")
    assert d.axes[1].eigenvalue == 1.0 and d.extra == {"trace": 12.5, "subset": 64}
    assert to_json(d) == DIRECTIONS
    with pytest.raises(FieldProblem, match=r"directions.kind: expected one of 'random'"):
        parse_record(Directions, {**DIRECTIONS, "kind": "sideways"}, "directions")


@pytest.mark.usefixtures("one_thread")
def test_a_bundle_from_the_pipeline_is_valid(tmp_path, capsys):
    """Checkpoints, curve frames, the real grid engine and `lossart terrain`'s build: the bundle
    validates, and reading it back gives the manifest that was written."""
    run = make_curve_run(tmp_path / "run")
    grid_run(run.root, GridConfig(resolution=(7, 6), subset=64, tile_rows=3))
    result = build_terrain(run.root, TerrainConfig(path_samples=30))
    report = validate_bundle(result.root)
    assert report.ok, report.problems
    assert main(["validate", str(result.root)]) == 0
    assert "valid terrain bundle, 3 frame(s)" in capsys.readouterr().out
    assert to_json(load_bundle(result.root).manifest) == result.manifest
