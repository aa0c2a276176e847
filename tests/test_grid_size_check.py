"""The size check before a big grid measures the engine in a real plane (regression test)."""

from __future__ import annotations

from grid_fixtures import make_curve_run

from lossart.grid.engine import GridEngine
from lossart.grid.planes import grid_source
from lossart.grid.run_grid import _check_time


def test_size_check_sets_the_plane_before_timing(tmp_path):
    from lossart.data import eval_subset, load_dataset
    from lossart.geometry.weights import ParamLayout
    from lossart.training.curve_run import load_curve_run

    run = make_curve_run(tmp_path / "run", frames=2)
    cr = load_curve_run(run)
    model = cr.build_model()
    x, y = eval_subset(load_dataset(cr.data_spec), "train", 16)
    engine = GridEngine(model, ParamLayout.of(model), x, y)  # no plane set yet
    spec = {"resolution": [100, 100], "window": {"x_range": [0.0, 1.0], "y_range": [0.0, 1.0]}}
    _check_time(spec, 10_000, engine, force=False, plane=grid_source(run).plane(0))
    assert engine.origin is not None


def test_a_window_equal_up_to_rounding_is_the_recorded_one():
    from lossart.geometry.plane import Window
    from lossart.grid.run_grid import _same_window

    recorded = {"x_range": [-3.8488669735945913, 23.09320184156755], "y_range": [-1.0, 9.595236159809488]}
    now = Window((-3.848866973594591, 23.09320184156754), (-1.0, 9.595236159809486))
    assert _same_window(now, recorded) == Window.from_dict(recorded)
    moved = Window((-3.8, 23.09320184156754), (-1.0, 9.595236159809486))
    assert _same_window(moved, recorded) == moved
