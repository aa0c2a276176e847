"""Every command a demo records, parsed by lossart's own CLI, gives back the config that ran:
the commands are derived from the stages' configs (lossart.commands), so they cannot drift."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from lossart.commands import (
    NOT_FLAGS,
    EnsembleOptions,
    EvalCurveOptions,
    RenderOptions,
    merge_lines,
    split_line,
)
from lossart.pipeline import PipelineResult


class Ran(Exception):
    """Raised by a stand-in for the library call a command makes, carrying what it was given."""


def _capture(monkeypatch) -> None:
    """The library calls of the CLI's commands replaced by stand-ins that raise Ran(config)."""
    import lossart.analyses.ensemble as ensemble
    import lossart.analyses.eval_curve as eval_curve
    import lossart.grid.run_grid as run_grid
    import lossart.render as render
    import lossart.terrain.build as build
    import lossart.training.curve as curve
    import lossart.training.endpoints as endpoints
    import lossart.training.import_weights as import_weights
    import lossart.view as view

    def raise_(*configs):
        raise Ran(*configs)

    monkeypatch.setattr(endpoints, "train_endpoint", lambda cfg: raise_(cfg))
    monkeypatch.setattr(import_weights, "checkpoint_files", lambda paths, *a, **k: list(paths))
    monkeypatch.setattr(curve, "train_curve", lambda cfg: raise_(cfg))
    monkeypatch.setattr(eval_curve, "evaluate_curve_run", lambda run, **k: raise_(
        run, EvalCurveOptions(**k)))
    monkeypatch.setattr(ensemble, "ensemble_run", lambda run, points, subset, device: raise_(
        run, EnsembleOptions(points, subset, device)))
    monkeypatch.setattr(run_grid, "grid_run", lambda run, cfg: raise_(run, cfg))
    monkeypatch.setattr(build, "build_terrain", lambda run, cfg, **k: raise_(run, cfg, k["preview"]))
    monkeypatch.setattr(view, "write_view", lambda run, out, cfg: raise_(run, out, cfg))
    monkeypatch.setattr(render, "render_still", lambda run, out, frame, look, blender, compare: raise_(
        run, look, RenderOptions(out=out, compare=compare)))
    monkeypatch.setattr(render, "render_video", lambda run, out, look, blender, **k: raise_(
        run, look, RenderOptions(out=out, **k)))


def _ran(argv: list[str]) -> tuple:
    """What the CLI's command `argv` would have run."""
    from lossart.cli import build_parser

    args = build_parser().parse_args(argv)
    with pytest.raises(Ran) as ran:
        args.run(args)
    return ran.value.args


def _equal(a, b) -> bool:
    """Equal, paths compared as absolute (the commands spell them relative to the demo's folder)."""
    paths = isinstance(a, (str, Path)) and isinstance(b, (str, Path))
    if paths and (isinstance(a, Path) or isinstance(b, Path) or os.path.isabs(a) or os.path.isabs(b)):
        return os.path.abspath(a) == os.path.abspath(b)
    return a == b


def _same(expected, got) -> None:
    from lossart.data import DataSpec, parse_data_spec

    assert type(expected) is type(got)
    for f in dataclasses.fields(expected):
        if f.name in NOT_FLAGS:
            continue
        a, b = getattr(expected, f.name), getattr(got, f.name)
        if isinstance(b, DataSpec) and isinstance(a, str):
            a = parse_data_spec(a)
        assert _equal(a, b), f"{type(expected).__name__}.{f.name}: {a!r} ran, {b!r} parsed"


def _expected(cmd) -> tuple:
    """What a stage's Command says ran, in the form the stand-ins capture it."""
    if cmd.name in ("train", "curve"):
        return cmd.configs
    if cmd.name == "terrain":
        return (*cmd.args, *cmd.configs, "--preview" in cmd.flags)
    if cmd.name == "view":
        from lossart.view import ViewConfig

        return (*cmd.args, cmd.flags[cmd.flags.index("--out") + 1], ViewConfig())
    if cmd.name == "render":  # RUN --still|--video
        return (cmd.args[0], *cmd.configs)
    return (*cmd.args, *cmd.configs)


def _check_plan(plan, out: Path, monkeypatch) -> int:
    """Every lossart command of `plan`, as recorded, run through the CLI; returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(out)
    checked = 0
    for stage in plan:
        if isinstance(stage.commands, str):
            continue
        lines = split_line(stage.line(out))
        assert len(lines) == len(stage.commands)
        for tokens, cmd in zip(lines, stage.commands):
            assert tokens[:2] == ["lossart", cmd.name]
            got, expected = _ran(tokens[1:]), _expected(cmd)
            assert len(got) == len(expected), (stage.name, tokens)
            for a, b in zip(expected, got):
                if dataclasses.is_dataclass(a):
                    _same(a, b)
                else:
                    assert _equal(a, b), (stage.name, tokens)
            checked += 1
    return checked


def _plan_of(monkeypatch, module, run, cfg) -> list:
    """The stages `run(cfg)` declares, without running them."""
    plans = []

    def record(out, kind, name, settings, plan, **kw):
        plans.append(plan)
        return PipelineResult({}, [], {})

    monkeypatch.setattr(module, "run_stages", record)
    run(cfg)
    return plans[0]


@pytest.mark.parametrize("preset, overrides", [
    ("quick", {}), ("default", {"duration": None, "palette": "viridis", "size": (200, 100)}),
    ("quality", {}),
])
def test_the_toy_demo_records_commands_that_give_back_its_configs(tmp_path, monkeypatch, preset, overrides):
    import lossart.demo as demo

    out = tmp_path / "demo"
    plan = _plan_of(monkeypatch, demo, demo.run_demo,
                    demo.DemoConfig(out, preset, overrides=overrides))
    _capture(monkeypatch)
    assert [s.name for s in plan] == ["endpoints", "curve", "eval-curve", "grid", "terrain",
                                      "view", "render"]
    assert _check_plan(plan, out, monkeypatch) == 9
    line = plan[0].line(out)
    assert " --seed 1|2 " in line and " --out endpoints/w1.pt|endpoints/w2.pt " in line


@pytest.mark.parametrize("sizes", ["toy", "cpu", "cuda"])
def test_subject_commands_give_back_the_configs_that_ran(tmp_path, monkeypatch, sizes):
    import lossart.subjects as subjects
    from tests.test_subjects import TOY

    settings = TOY if sizes == "toy" else subjects.SUBJECTS["resnet20-noskip"][sizes]
    out = tmp_path / "subject"
    cfg = subjects.SubjectConfig(subject="toy", data="shapes", out=out, settings=settings,
                                 threads=2, dtype="bfloat16" if sizes == "cuda" else "auto")
    plan = _plan_of(monkeypatch, subjects, subjects.run_subject, cfg)
    assert [s.name for s in plan] == list(subjects.STAGES)
    _capture(monkeypatch)
    assert _check_plan(plan, out, monkeypatch) == 11  # two endpoints, 9 other lossart commands
    lines = {s.name: s.line(out) for s in plan}
    assert lines["gif"].startswith("ffmpeg -i subject.mp4 -vf 'fps=")
    if sizes == "cpu":
        assert lines["video-grid"] == (
            "lossart grid video --resolution 109x61 --subset 64 --aspect 16:9 "
            "--adaptive 0.03 --adaptive-criterion log10")
        assert lines["still-grid"] == (
            "lossart grid still --select-frames 24 --resolution 401x401 --subset 128 "
            "--aspect 16:9 --adaptive 0.01 --adaptive-criterion log10")


def test_merged_lines_split_back_and_odd_ones_are_kept_whole():
    a = "lossart train --seed 1 --out 'a b/w1.pt'"
    b = "lossart train --seed 2 --out 'a b/w2.pt'"
    assert merge_lines([a, b]) == "lossart train --seed 1|2 --out 'a b/w1.pt'|'a b/w2.pt'"
    assert split_line(merge_lines([a, b])) == [
        ["lossart", "train", "--seed", "1", "--out", "a b/w1.pt"],
        ["lossart", "train", "--seed", "2", "--out", "a b/w2.pt"]]
    c = "lossart render run --video"
    assert merge_lines([a, c]) == f"{a} ; {c}" and len(split_line(merge_lines([a, c]))) == 2
    assert merge_lines(["x --a 1|2", "x --a 3"]) == "x --a 1|2 ; x --a 3"


def test_a_field_the_cli_cannot_spell_is_refused():
    from lossart.commands import Command
    from lossart.grid.config import GridConfig

    with pytest.raises(ValueError, match="GridConfig.dtype: None has no flag"):
        Command("grid", ("run",), (GridConfig(),)).line()
    assert Command("grid", ("run",), (GridConfig(dtype="auto"),)).line() == "lossart grid run"


@pytest.mark.parametrize("aspect, text", [(16 / 9, "16:9"), (1.5, "3:2"), (0.0, "none"),
                                          (1.2345678, "1.2345678")])
def test_an_aspect_reads_as_people_type_it_and_parses_back(aspect, text):
    from lossart.commands import flag_tokens
    from lossart.grid.config import GridConfig, parse_aspect

    assert flag_tokens(GridConfig(aspect=aspect, dtype="auto")) == ["--aspect", text]
    assert parse_aspect(text) == aspect
