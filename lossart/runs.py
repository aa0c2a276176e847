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

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lossart import __version__
from lossart.atomic import write_json
from lossart.checks import field, number_list, require_mapping
from lossart.errors import LossartError

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

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into run.json (atomically) and return the result."""
        data = self.read()
        data.update(fields)
        self.write(data)
        return data

    def record_command(self, name: str) -> None:
        """Append the current command line to run.json's history."""
        data = self.read()
        data.setdefault("commands", []).append(
            {"command": name, "argv": sys.argv, "time": now_iso(), "lossart": __version__}
        )
        self.write(data)


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


def open_run(path: str | Path) -> Run:
    """An existing run folder, checked."""
    run = Run(Path(path))
    run.read()
    return run


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
