"""The demo's one driver (lossart.pipeline): stages skipped when demo.json records them done, a
failing stage leaving the earlier ones recorded, one schema, old records resumed or refused."""

from __future__ import annotations

import json

import pytest

from lossart.commands import Command, EvalCurveOptions
from lossart.errors import LossartError
from lossart.pipeline import FORMAT, VERSION, Stage, read_record, run_stages, times_table


class Boom(Exception):
    """A stage's failure (or a kill) in the middle of a pipeline."""


def _stages(calls: list[str], fail: str | None = None) -> list[Stage]:
    def work(name):
        def run(results):
            calls.append(name)
            if name == fail:
                raise Boom(name)
            results[name] = len(calls)
        return run

    return [Stage(n, work(n), [Command("eval-curve", ("run",), (EvalCurveOptions(points=k + 3),))])
            for k, n in enumerate(("a", "b", "c"))]


def test_a_failing_stage_leaves_the_earlier_ones_recorded_and_the_rerun_continues(tmp_path):
    calls: list[str] = []
    with pytest.raises(Boom):
        run_stages(tmp_path, "demo", "quick", {"frames": 3}, _stages(calls, fail="b"))
    record = json.loads((tmp_path / "demo.json").read_text())
    assert (record["format"], record["version"], record["kind"], record["name"]) == (
        FORMAT, VERSION, "demo", "quick")
    assert list(record["stages"]) == ["a"] and record["results"] == {"a": 1}
    a = record["stages"]["a"]
    assert a["done"] and a["seconds"] >= 0 and a["threads"] is None
    assert a["command"] == "lossart eval-curve run --points 3"

    seen: list[str] = []
    done = run_stages(tmp_path, "demo", "quick", {"frames": 3}, _stages(calls), on_stage=seen.append)
    assert seen == ["b", "c"] and done.ran == ["b", "c"] and calls == ["a", "b", "b", "c"]
    assert list(done.stage_seconds) == ["a", "b", "c"]
    assert done.results == {"a": 1, "b": 3, "c": 4}  # a's finding kept from the first call
    assert run_stages(tmp_path, "demo", "quick", {"frames": 3}, _stages(calls)).ran == []


def test_other_settings_are_refused_in_one_line(tmp_path):
    run_stages(tmp_path, "demo", "quick", {"frames": (3, 4)}, _stages([]))
    run_stages(tmp_path, "demo", "quick", {"frames": (3, 4)}, _stages([]))  # tuples as lists
    for kind, name, settings in (("demo", "quick", {"frames": 5}), ("demo", "default", {"frames": (3, 4)}),
                                 ("subject", "quick", {"frames": (3, 4)})):
        with pytest.raises(LossartError, match="use another --out") as err:
            run_stages(tmp_path, kind, name, settings, _stages([]))
        assert "\n" not in str(err.value)


def test_a_setting_added_after_the_run_began_takes_its_value_now(tmp_path):
    run_stages(tmp_path, "subject", "s", {"frames": 25}, _stages([]))
    calls: list[str] = []
    done = run_stages(tmp_path, "subject", "s", {"frames": 25, "interpolate": 2}, _stages(calls))
    assert done.ran == [] and calls == []  # the finished stages stay finished
    assert read_record(tmp_path / "demo.json")["settings"] == {"frames": 25, "interpolate": 2}
    for settings in ({"frames": 25, "interpolate": 1},  # now recorded: another value is refused
                     {"frames": 24, "interpolate": 2},
                     {"interpolate": 2}):  # a recorded setting may not go missing
        with pytest.raises(LossartError, match="other settings"):
            run_stages(tmp_path, "subject", "s", settings, _stages([]))


def test_an_old_subject_record_resumes_its_finished_stages(tmp_path):
    settings = {"model": "resnet20-noskip", "video_resolution": [109, 61], "frames": 25}
    old = {"format": "lossart-subject", "version": 1, "subject": "resnet20-noskip", "device": "cpu",
           "data": "npz:/data/c.npz", "settings": settings, "dtype": "auto",
           "barrier": {"curve": 0.1, "segment": 2.0},
           "stages": {"a": {"done": True, "seconds": 840.0, "command": "lossart train --seed 1|2",
                            "threads": 2}}}
    (tmp_path / "demo.json").write_text(json.dumps(old))
    calls: list[str] = []
    done = run_stages(tmp_path, "subject", "resnet20-noskip", {**settings, "video_resolution": (109, 61)},
                      _stages(calls), threads=2, run={"device": "cpu"})
    assert calls == ["b", "c"] and done.stage_seconds["a"] == 840.0
    record = json.loads((tmp_path / "demo.json").read_text())
    assert (record["format"], record["version"], record["kind"]) == (FORMAT, VERSION, "subject")
    assert record["run"] == {"device": "cpu", "data": "npz:/data/c.npz", "dtype": "auto"}
    assert record["results"]["barrier"] == {"curve": 0.1, "segment": 2.0}
    assert record["stages"]["a"]["command"] == "lossart train --seed 1|2"  # as it was recorded
    assert record["stages"]["c"]["threads"] == 2
    table = times_table(tmp_path)
    assert "| a | `lossart train --seed 1\\|2` | 2 | 14.0 min |" in table
    assert "| c | `lossart eval-curve run --points 5` | 2 |" in table
    with pytest.raises(LossartError, match="other settings"):
        run_stages(tmp_path, "subject", "resnet20-noskip", {**settings, "frames": 24}, _stages([]))


@pytest.mark.parametrize("text, match", [
    ('{"preset": "quick", "settings": {}, "stage_seconds": {"endpoints": 1.0}}', "older lossart"),
    ('{"format": "lossart-demo", "version": 9, "stages": {}}', "version 9"),
    ('{"format": "lossart-demo", "version": 2, "kind": "demo", "stages": {}}', "without name, settings"),
    ("[1, 2]", "not a demo's record"),
    ("{", "not JSON"),
])
def test_unreadable_or_old_toy_records_are_refused_in_one_line_saying_what_to_do(tmp_path, text, match):
    (tmp_path / "demo.json").write_text(text)
    with pytest.raises(LossartError, match=match) as err:
        read_record(tmp_path / "demo.json")
    assert "\n" not in str(err.value) and "remove it" in str(err.value)
