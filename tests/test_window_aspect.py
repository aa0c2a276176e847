"""The grid window follows the picture's aspect, grown symmetrically around the curve."""

from __future__ import annotations

import numpy as np
import pytest

from lossart.errors import LossartError
from lossart.geometry.plane import Window, fit_aspect, window_around


def test_a_strip_grows_its_short_side_to_the_aspect_around_its_centre():
    strip = window_around(np.array([[0.0, 0.0], [70.0, 0.0], [35.0, 8.0]]), margin=0.2)
    fitted = fit_aspect(strip, 16 / 9)
    (x0, x1), (y0, y1) = fitted.x_range, fitted.y_range
    assert (x1 - x0) / (y1 - y0) == pytest.approx(16 / 9)
    assert fitted.x_range == strip.x_range  # the long side stays
    assert (y0 + y1) / 2 == pytest.approx(sum(strip.y_range) / 2)  # centred
    assert y0 <= strip.y_range[0] and y1 >= strip.y_range[1]  # holds everything it held


def test_a_tall_window_grows_in_x_and_none_leaves_it():
    tall = Window((0.0, 1.0), (0.0, 4.0))
    wide = fit_aspect(tall, 2.0)
    assert wide.y_range == tall.y_range and wide.x_range == pytest.approx((-3.5, 4.5))
    assert fit_aspect(tall, None) is tall


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_aspects_are_one_line(bad):
    with pytest.raises(LossartError, match="^aspect "):
        fit_aspect(Window((0.0, 1.0), (0.0, 1.0)), bad)


def test_cli_parses_aspects():
    from lossart.grid.run_grid import parse_aspect as _aspect

    assert _aspect("16:9") == pytest.approx(16 / 9)
    assert _aspect("1.5") == 1.5
    assert _aspect("none") == 0.0
    for bad in ("16:0", "abc", "-1", "0:5"):
        with pytest.raises(LossartError, match=f"^aspect {bad!r}: expected W:H"):
            _aspect(bad)


def test_a_new_grid_is_16_by_9_and_a_rerun_keeps_its_recorded_aspect(tmp_path):
    import json

    from grid_fixtures import make_curve_run

    from lossart.grid.run_grid import GridConfig, grid_run

    small = {"resolution": (4, 3), "subset": 32, "tile_rows": 3}
    run = make_curve_run(tmp_path / "run", frames=2)
    grid_run(run.root, GridConfig(**small))
    spec = json.loads((run.grids / "grid.json").read_text())
    (x0, x1), (y0, y1) = spec["window"]["x_range"], spec["window"]["y_range"]
    assert spec["aspect"] == pytest.approx(16 / 9)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(16 / 9)
    assert grid_run(run.root, GridConfig()).tiles_computed == 0  # same window from grid.json
    with pytest.raises(LossartError, match="window"):
        grid_run(run.root, GridConfig(aspect=0.0))  # another window needs --overwrite
    hug = make_curve_run(tmp_path / "hug", frames=2)
    grid_run(hug.root, GridConfig(**small, aspect=0.0))
    assert json.loads((hug.grids / "grid.json").read_text())["aspect"] is None
