"""The one driver of `lossart demo` and its subjects: stages run in order, each skipped when
demo.json records it done, demo.json written atomically after every stage.

demo.json (format "lossart-demo", version 2), one schema for the toy demo and the subjects:
  kind      "demo" (the toy presets) or "subject"
  name      the preset ("quick", ...) or the subject ("resnet20-noskip")
  settings  the sizes of every stage: a rerun with other settings is refused (use another --out)
  run       how it ran (device, data, dtype): not compared, updated by each call
  stages    {name: {done, seconds, threads, command}}, in the order they finished; `command` is
            the stage's equivalent command line, derived from its configs (lossart.commands)
  results   what stages found (the barriers, ...), so a rerun that skips them still reports them
A subject's demo.json of version 1 (format "lossart-subject") is read as version 2; the toy
demo's older record (written only at its end) is refused in one line saying how to go on.

A stage that was running when the process died resumes through its own work's resume
(training states, grid tiles, cached video frames): the driver only skips finished stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossart.atomic import write_json
from lossart.commands import Command, merge_lines
from lossart.errors import LossartError

FORMAT, VERSION = "lossart-demo", 2


@dataclass(frozen=True)
class Stage:
    """One stage: `work(results)` does it (and may note findings in `results`); `commands`
    say what it stands for, as `lossart` lines derived from their configs (or a line of text
    for another tool)."""

    name: str
    work: Callable[[dict], Any]
    commands: Sequence[Command] | str = ()

    def line(self, base: Path) -> str:
        if isinstance(self.commands, str):
            return self.commands
        return merge_lines([c.line(base) for c in self.commands])


@dataclass
class PipelineResult:
    stage_seconds: dict[str, float]  # every stage recorded done, this call's and earlier ones
    ran: list[str]  # the stages this call ran
    results: dict = field(default_factory=dict)


def _agrees(recorded: dict, settings: dict) -> bool:
    """The run's recorded settings agree with these: every recorded one has the same value. A
    setting the record lacks was added to lossart after the run began; it takes its value now,
    which only the stages not yet done use (the record is rewritten with it)."""
    return set(recorded) <= set(settings) and all(recorded[k] == settings[k] for k in recorded)


def run_stages(out: Path, kind: str, name: str, settings: dict, stages: list[Stage], *,
               run: dict | None = None, threads: int | None = None,
               on_stage: Callable[[str], None] | None = None,
               bar: str | None = None) -> PipelineResult:
    """Run (or resume) `stages` into `out`, recording each in out/demo.json as it finishes.
    `threads`: torch CPU threads for every stage (recorded); `bar`: a progress bar's title."""
    from lossart.devices import cpu_threads
    from lossart.progress import progress

    path = out / "demo.json"
    record = read_record(path)
    settings = _plain(settings)
    if record and ((record["kind"], record["name"]) != (kind, name)
                   or not _agrees(record["settings"], settings)):
        raise LossartError(f"--out {out}: holds a {record['kind']} run ({record['name']}) with "
                           "other settings; use another --out, or remove its demo.json to redo "
                           "every stage")
    record = {"format": FORMAT, "version": VERSION, "kind": kind, "name": name,
              "settings": settings, "run": {**record.get("run", {}), **_plain(run or {})},
              "stages": record.get("stages", {}), "results": record.get("results", {})}
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    todo = [s for s in stages if not record["stages"].get(s.name, {}).get("done")]
    ran: list[str] = []
    shown = progress(total=len(todo), desc=bar, unit="stage") if bar and todo else None
    try:
        for stage in todo:
            if shown is not None:
                shown.set_description(f"{bar}: {stage.name}")
            if on_stage:
                on_stage(stage.name)
            t0 = time.perf_counter()
            with cpu_threads(threads):
                stage.work(record["results"])
            record["stages"][stage.name] = {
                "done": True, "seconds": time.perf_counter() - t0, "threads": threads,
                "command": stage.line(out)}
            ran.append(stage.name)
            write_json(path, _plain(record))  # atomic: a kill -9 leaves the last finished stage
            if shown is not None:
                shown.update(1)
    finally:
        if shown is not None:
            shown.close()
    seconds = {k: v["seconds"] for k, v in record["stages"].items() if v.get("done")}
    return PipelineResult(seconds, ran, record["results"])


def read_record(path: Path) -> dict:
    """demo.json as version 2 ({} when there is none); one line saying how to go on otherwise."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise LossartError(f"{path}: not JSON; remove it to start the demo afresh") from None
    if not isinstance(record, dict) or not isinstance(record.get("stages", {}), dict):
        raise LossartError(f"{path}: not a demo's record (expected a JSON object with a 'stages' "
                           "object); remove it to start the demo afresh")
    if record.get("format") == "lossart-subject" and record.get("version") == 1:
        return {"kind": "subject", "name": record.get("subject"),
                "settings": record.get("settings"), "stages": record.get("stages", {}),
                "run": {k: record[k] for k in ("device", "data", "dtype") if k in record},
                "results": {k: record[k] for k in ("barrier", "ensemble_first_t") if k in record}}
    if record.get("format") == FORMAT and record.get("version") == VERSION:
        missing = [k for k in ("kind", "name", "settings") if k not in record]
        if missing:
            raise LossartError(f"{path}: a demo record without {', '.join(missing)}; remove it to "
                               "start the demo afresh")
        return record
    if "stage_seconds" in record:  # the toy demo's record before version 2
        raise LossartError(f"{path}: a demo record from an older lossart; remove it and rerun "
                           "(every stage resumes from its own files)")
    raise LossartError(f"{path}: demo.json of format {record.get('format')!r} version "
                       f"{record.get('version')!r}, not {FORMAT!r} {VERSION}; remove it to start "
                       "the demo afresh")


def times_table(demo_json: str | Path) -> str:
    """renders/README.md's table (stage, command, threads, wall time) from a demo.json, in the
    order the stages finished (any version: only `stages` is read)."""
    path = Path(demo_json)
    if path.is_dir():
        path = path / "demo.json"
    rows = ["| stage | command | threads | wall time |", "|---|---|---|---|"]
    total = 0.0
    try:
        record = json.loads(path.read_text())
        device = record.get("run", {}).get("device") or record.get("device", "")
        for name, st in record["stages"].items():
            if not st.get("done"):
                continue
            seconds = float(st["seconds"])
            total += seconds
            command = (st.get("command") or "").replace("|", "\\|")  # a pipe would end the cell
            rows.append(f"| {name} | `{command}` | {st.get('threads') or device} | "
                        f"{_duration(seconds)} |")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LossartError(
            f"--report {demo_json}: not a demo run's demo.json ({type(exc).__name__}: {exc})"
        ) from None
    rows.append(f"| total | | | {_duration(total)} |")
    return "\n".join(rows) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _plain(obj):
    """Tuples as lists and paths as text, so that demo.json compares equal after a round trip."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


__all__ = ["FORMAT", "VERSION", "PipelineResult", "Stage", "read_record", "run_stages",
           "times_table"]
