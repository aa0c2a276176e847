"""The run folder (DESIGN.md): one run is one folder that every command reads and writes.

```
RUN/
  run.json        what was asked for: kind, model, data, seeds, versions, command lines
  endpoints/      w1.pt, w2.pt (and w3.pt for a plane of three optima): checkpoints, copied in
  curve/          curve training: frames.json + frames/*.pt snapshots, state.pt (resume), final.pt
  grids/          grid.json (the grid spec) + per-frame tiles, assembled per-frame grids
  terrain/        the terrain bundle (manifest.json + heights)
  renders/        stills and videos
  analyses/       eval-curve, ensemble, functions outputs (CSV/JSON/PNG)
```
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lossart import __version__
from lossart.atomic import write_json
from lossart.checks import field, number_list, require_mapping
from lossart.errors import LossartError
from lossart.locks import exclusive

RUN_FORMAT = "lossart-run"


@dataclass(frozen=True)
class Run:
    """Paths inside one run folder; nothing here touches the disk until asked."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "run.json"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints"

    @property
    def curve(self) -> Path:
        return self.root / "curve"

    @property
    def grids(self) -> Path:
        return self.root / "grids"

    @property
    def terrain(self) -> Path:
        return self.root / "terrain"

    @property
    def renders(self) -> Path:
        return self.root / "renders"

    @property
    def analyses(self) -> Path:
        return self.root / "analyses"

    def read(self) -> dict[str, Any]:
        """The run's `run.json`; a clear error where the folder is not a lossart run."""
        if not self.manifest.is_file():
            raise LossartError(f"{self.root}: not a lossart run folder (no run.json)")
        try:
            data = json.loads(self.manifest.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LossartError(f"{self.manifest}: not valid JSON ({exc})") from None
        require_mapping(data, self.manifest)
        if data.get("format") != RUN_FORMAT:
            raise LossartError(f"{self.manifest}: not a lossart run manifest (format != {RUN_FORMAT!r})")
        check_run_fields(data, self.manifest)
        return data

    def write(self, data: dict[str, Any]) -> None:
        write_json(self.manifest, {"format": RUN_FORMAT, **{k: v for k, v in data.items() if k != "format"}})

    @property
    def lock_file(self) -> Path:
        """Held (flock) around every read-modify-write of run.json; never deleted."""
        return self.root / ".run.lock"

    def modify(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read run.json, apply `change` to it and write it back, all under the run's lock, so
        that shards and commands running together never lose each other's entries."""
        with exclusive(self.lock_file, str(self.manifest)):
            data = self.read()
            change(data)
            self.write(data)
        return data

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into run.json (atomically, under the lock) and return the result."""
        return self.modify(lambda data: data.update(fields))

    def endpoint(self, name: str) -> Path:
        """RUN/endpoints/<name>.pt, checked against the sha256 run.json recorded for it.

        A run made before fingerprints were recorded gets one now (on first use), so from then
        on a swapped endpoint is refused too; a read-only run is read unchecked."""
        path = self.endpoints / f"{name}.pt"
        if not path.is_file():
            raise LossartError(f"{path}: missing (the run's endpoint {name})")
        rel = path.relative_to(self.root).as_posix()
        entry = (self.read().get("endpoints") or {}).get(name)
        now = sha256_file(path)
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
            if entry["sha256"] != now:
                raise LossartError(
                    f"{path} changed since the run was made: sha256 {now[:16]}... != "
                    f"{entry['sha256'][:16]}... (run.json); put the original back or make a new run"
                )
            return path

        def record(data: dict[str, Any]) -> None:
            ends = data.get("endpoints")
            if not isinstance(ends, dict):
                ends = data["endpoints"] = {}
            old = ends.get(name)
            ends[name] = {**(old if isinstance(old, dict) else {}), "file": rel, "sha256": now}

        try:
            self.modify(record)
        except OSError:
            pass  # a read-only run: nothing to record into, nothing to compare with
        return path

    def record_command(self, name: str) -> None:
        """Append the current command line to run.json's history (under the lock)."""
        entry = {"command": name, "argv": sys.argv, "time": now_iso(), "lossart": __version__}
        self.modify(lambda data: data.setdefault("commands", []).append(entry))


def run_model(data: dict[str, Any], where: Path) -> dict[str, Any]:
    """run.json's "model" (what the stages that rebuild the network need), checked."""
    model = field(data, "model", where, dict)
    field(model, "name", f"{where}: model", str)
    field(model, "num_classes", f"{where}: model", int)
    number_list(model, "input_shape", f"{where}: model", integers=True)
    field(model, "kwargs", f"{where}: model", dict, required=False)
    return model


def check_run_fields(data: dict[str, Any], where: Path) -> None:
    """run.json's schema: the fields later stages read, of the right JSON types."""
    field(data, "kind", where, str)
    if "model" in data:
        run_model(data, where)
    field(data, "data", where, dict, required=False)
    if "commands" in data:
        field(data, "commands", where, list)


def reuse_or_claim(out: str | Path, same: Callable[[dict[str, Any]], bool],
                   inputs: str = "") -> tuple[Run, bool]:
    """The run a command creates at --out: (run, True) when --out already holds one made from
    the same inputs (`same(meta)`: the command resumes it), (run, False) for an absent or empty
    folder to create it in; any other run or a non-empty folder is a one-line error. `inputs`
    names the flags that tell runs apart, for that error."""
    run = Run(Path(out))
    if run.manifest.is_file():
        if not same(run.read()):
            named = f" ({inputs})" if inputs else ""
            raise LossartError(
                f"--out {out}: already a run made from other inputs{named}; choose a new folder"
            )
        return run, True
    if run.root.exists() and any(run.root.iterdir()):
        raise LossartError(f"--out {out}: folder exists and is not empty; choose a new folder")
    return run, False


def open_run(path: str | Path) -> Run:
    """An existing run folder, checked."""
    run = Run(Path(path))
    run.read()
    return run


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file (the fingerprint runs record of their endpoints)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


#: (file, size, mtime) -> sha256: one hash per file per process, however often it is checked.
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def endpoint_records(run: Run, names: list[str] | tuple[str, ...]) -> dict[str, dict[str, str]]:
    """run.json's "endpoints" entries for the files now in RUN/endpoints/ (at creation)."""
    return {
        n: {"file": f"endpoints/{n}.pt", "sha256": sha256_file(run.endpoints / f"{n}.pt")}
        for n in names
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions worth recording with any result."""
    import numpy
    import torch

    return {
        "lossart": __version__,
        "torch": str(torch.__version__),  # a TorchVersion object would not load weights_only
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
    }
