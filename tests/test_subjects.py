"""`lossart demo --subject`: the real subject's stage machinery at toy size, crash and resume."""

from __future__ import annotations

import json

import pytest

from lossart.errors import LossartError
from lossart.subjects import STAGES, SUBJECTS, Subject, SubjectConfig, run_subject, times_table

TOY = Subject(
    model="smallcnn", model_kwargs={"width": 4}, endpoint_epochs=1, curve_epochs=1, frames=3,
    video_resolution=(9, 5), adaptive=0.05, subset=32, video_subset=32, still_resolution=(11, 11), eval_points=3,
    eval_subset=64, ensemble_subset=64, still_size=(64, 36), still_samples=2, video_size=(64, 36),
    video_samples=2, fps=3, duration=None, gif_width=32, gif_fps=3,
)


class Crash(Exception):
    """Stands in for a kill between stages."""


def _config(out, **kw) -> SubjectConfig:
    return SubjectConfig(subject="toy", data="shapes", out=out, settings=TOY, threads=1, **kw)


def test_toy_subject_crashes_between_stages_and_resumes_without_redoing_work(tmp_path):
    render = pytest.importorskip("bpy", reason="rendering needs bpy") is not None
    out = tmp_path / "subject"

    def crash_at(name):
        if name == "still-grid":
            raise Crash

    with pytest.raises(Crash):
        run_subject(_config(out, render=render), on_stage=crash_at)
    record = json.loads((out / "demo.json").read_text())
    assert [k for k, v in record["stages"].items() if v["done"]] == list(STAGES[:5])
    kept = [*(out / "endpoints").glob("*.pt"), *(out / "video" / "curve" / "frames").glob("*.pt"),
            *(out / "video" / "grids").rglob("*.npz"), out / "video" / "analyses" / "ensemble.json"]
    stamps = {p: p.stat().st_mtime_ns for p in kept}

    seen: list[str] = []
    result = run_subject(_config(out, render=render), on_stage=seen.append)
    assert seen == (list(STAGES[5:]) if render else list(STAGES[5:8]))
    assert result.ran == seen
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps
    # The still run shares the weights (no retraining) and holds its own fully evaluated grid.
    still = out / "still"
    assert (still / "endpoints" / "w1.pt").stat().st_ino == (out / "endpoints" / "w1.pt").stat().st_ino \
        or (still / "endpoints" / "w1.pt").read_bytes() == (out / "endpoints" / "w1.pt").read_bytes()
    grid = json.loads((still / "grids" / "grid.json").read_text())
    assert grid["resolution"] == [11, 11] and grid["frames"] == [2]
    assert (out / "video" / "terrain" / "manifest.json").is_file()
    assert (still / "terrain" / "manifest.json").is_file()
    if render:
        for name in ("still", "video", "gif", "compare"):
            assert result.files[name].endswith((".png", ".mp4", ".gif"))
        assert (out / "subject.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")

    # Seeded with that curve run: the weights are linked or copied, nothing is trained again.
    seeded = tmp_path / "seeded"

    def stop_at_analyses(name):
        if name == "eval-curve":
            raise Crash

    with pytest.raises(Crash):
        run_subject(_config(seeded, render=False, curve=str(out / "video")),
                    on_stage=stop_at_analyses)
    for rel in ("endpoints/w1.pt", "endpoints/w2.pt"):
        assert (seeded / rel).read_bytes() == (out / rel).read_bytes()
    frames = sorted((out / "video" / "curve" / "frames").glob("*.pt"))
    assert [p.read_bytes() for p in frames] == [
        (seeded / "video" / "curve" / "frames" / p.name).read_bytes() for p in frames]
    assert (seeded / "video" / "curve" / "state.pt").read_bytes() == (
        out / "video" / "curve" / "state.pt").read_bytes()

    # A third run finds every stage done and runs none.
    assert run_subject(_config(out, render=render)).ran == []
    table = times_table(out)
    assert table.count("\n") == len(result.stage_seconds) + 3
    assert "| video-grid | `lossart grid video --resolution 9x5 --subset 32" in table


def test_seeded_endpoints_are_used_not_retrained(tmp_path):
    from lossart.stages import train_one
    from lossart.training.endpoints import TrainConfig

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for k, p in enumerate((a, b)):
        train_one(TrainConfig(data="shapes", model="smallcnn", model_kwargs={"width": 4}, epochs=1,
                              seed=k + 1, out=str(p), progress=False, threads=1))
    out = tmp_path / "seeded"
    seen: list[str] = []

    def stop_after_endpoints(name):
        seen.append(name)
        if name == "curve":
            raise Crash

    with pytest.raises(Crash):
        run_subject(_config(out, render=False, endpoints=(str(a), str(b))),
                    on_stage=stop_after_endpoints)
    assert (out / "endpoints" / "w1.pt").read_bytes() == a.read_bytes()
    assert (out / "endpoints" / "w2.pt").read_bytes() == b.read_bytes()


@pytest.mark.parametrize("kw, match", [
    ({"subject": "nope"}, "--subject 'nope'"),
    ({"data": "npz:/no/such.npz"}, "--data npz:/no/such.npz: no such file"),
    ({"data": "nonsense"}, "--data 'nonsense'"),
    ({"device": "tpu"}, "--device 'tpu'"),
    ({"endpoints": ("/no/a.pt", "/no/b.pt")}, "--endpoints /no/a.pt"),
])
def test_bad_options_are_one_line_errors_before_any_work(tmp_path, kw, match):
    kw = {"subject": "resnet20-noskip", "data": "shapes", "out": tmp_path / "o", **kw}
    with pytest.raises(LossartError, match=match) as err:
        run_subject(SubjectConfig(**kw))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "o").exists()


def test_cpu_preset_is_the_issue_size_and_cuda_the_recipe_size():
    cpu, cuda = SUBJECTS["resnet20-noskip"]["cpu"], SUBJECTS["resnet20-noskip"]["cuda"]
    assert (cpu.endpoint_epochs, cpu.curve_epochs, cpu.frames) == (20, 20, 25)
    assert min(cpu.video_resolution) >= 61 and min(cpu.still_resolution) >= 201
    assert cpu.frames >= 24 and cpu.adaptive == 0.03
    assert (cpu.subset, cpu.video_subset) == (128, 64)
    assert (cuda.endpoint_epochs, cuda.frames, cuda.video_resolution, cuda.subset) == (
        200, 600, (300, 300), 1024)


def test_report_of_a_missing_record_is_one_line(tmp_path):
    with pytest.raises(LossartError, match="--report"):
        times_table(tmp_path)


def test_cli_report_prints_the_table_and_bad_flags_are_one_line(tmp_path, capsys):
    from lossart.cli import main

    record = {"device": "cpu", "stages": {
        "endpoints": {"done": True, "seconds": 840.0, "command": "lossart train --seed 1|2",
                      "threads": 1},
        "still-terrain": {"done": True, "seconds": 0.46, "command": "lossart terrain still"},
        "video-grid": {"done": True, "seconds": 7200.0, "command": "lossart grid video", "threads": 2},
    }}
    (tmp_path / "demo.json").write_text(json.dumps(record))
    assert main(["demo", "--report", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    # a pipe inside the command is escaped, else it would split the markdown table's cell
    assert "| endpoints | `lossart train --seed 1\\|2` | 1 | 14.0 min |" in table
    assert "| still-terrain | `lossart terrain still` | cpu | 0.5 s |" in table
    assert "| video-grid | `lossart grid video` | 2 | 2.00 h |" in table
    assert table.rstrip().endswith("| total | | | 2.23 h |")
    assert all(row.count(" | ") == 3 for row in table.splitlines()[2:-1])
    out = tmp_path / "o"
    assert main(["demo", "--subject", "resnet20-noskip", "--data", "npz:/no.npz",
                 "--out", str(out)]) == 2
    assert main(["demo", "--subject", "resnet20-noskip", "--resolution", "9",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--data npz:/no.npz" in err[0] and "--resolution" in err[1]
    assert not out.exists()


def test_a_subject_run_recorded_by_the_previous_lossart_resumes_its_finished_stages(tmp_path):
    """demo.json of format lossart-subject version 1 (runs in progress when the driver changed)."""
    from dataclasses import asdict

    out = tmp_path / "old"
    out.mkdir()
    settings = json.loads(json.dumps(asdict(TOY)))  # tuples as lists, as it was written
    done = {"done": True, "seconds": 12.5, "command": "lossart train --seed 1|2", "threads": 1}
    (out / "demo.json").write_text(json.dumps({
        "format": "lossart-subject", "version": 1, "subject": "toy", "device": "cpu",
        "data": "shapes", "settings": settings, "dtype": "auto",
        "stages": {"endpoints": done, "curve": done}}))
    seen: list[str] = []

    def stop(name):
        seen.append(name)
        raise Crash

    with pytest.raises(Crash):
        run_subject(_config(out, render=False), on_stage=stop)
    assert seen == ["eval-curve"] and not (out / "endpoints").exists()
    record = json.loads((out / "demo.json").read_text())
    assert (record["format"], record["version"], record["kind"], record["name"]) == (
        "lossart-demo", 2, "subject", "toy")
    assert record["stages"] == {"endpoints": done, "curve": done}
    with pytest.raises(LossartError, match="other settings"):
        run_subject(SubjectConfig(subject="toy", data="shapes", out=out, threads=1,
                                  settings=Subject(model="smallcnn", frames=4)))
