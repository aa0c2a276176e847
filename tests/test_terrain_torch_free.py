"""The terrain stage reads RUN/grids/ alone: a bundle builds where `import torch` fails, and equals
the bundle a normal build writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grid_fixtures import make_curve_run

from lossart.grid.run_grid import GridConfig, grid_run
from lossart.terrain.build import build_terrain
from lossart.terrain.heightfield import TerrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]

BUILD = """
import sys
from lossart.terrain.build import build_terrain
from lossart.terrain.heightfield import TerrainConfig
build_terrain(sys.argv[1], TerrainConfig(path_samples=30), out=sys.argv[2])
assert "torch" not in sys.modules, "torch was imported"
"""


def without_torch(tmp_path: Path) -> dict[str, str]:
    """An environment whose `import torch` finds a stub package that raises ImportError."""
    stub = tmp_path / "notorch" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("torch is not installed here (stub)")\n')
    path = os.pathsep.join([str(stub.parent), str(REPO)])
    env = {**os.environ, "PYTHONPATH": path, "LOSSART_QUIET": "1", "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    return env


def bundle_contents(root: Path) -> tuple[dict, dict[str, bytes]]:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.pop("created")
    heights = {p.name: p.read_bytes() for p in sorted((root / "heights").iterdir())}
    return manifest, heights


def test_terrain_builds_from_grids_without_torch(tmp_path):
    run = make_curve_run(tmp_path / "run")
    grid_run(run.root, GridConfig(resolution=(7, 6), subset=64, tile_rows=3))
    normal = build_terrain(run.root, TerrainConfig(path_samples=30), out=tmp_path / "normal")
    want = bundle_contents(normal.root)
    assert len(want[0]["frames"]) == 3 and want[0]["curve"] == {"kind": "bezier", "bends": 1}

    env = without_torch(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0 and b"stub" in probe.stderr  # the stub really blocks torch

    lib = subprocess.run(
        [sys.executable, "-c", BUILD, str(run.root), str(tmp_path / "lib")],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert lib.returncode == 0, lib.stderr[-2000:]
    assert bundle_contents(tmp_path / "lib") == want

    cli = subprocess.run(
        [sys.executable, "-m", "lossart", "terrain", str(run.root), "--path-samples", "30",
         "--out", str(tmp_path / "cli")],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "3 frame(s) of 7x6" in cli.stdout
    assert bundle_contents(tmp_path / "cli") == want
