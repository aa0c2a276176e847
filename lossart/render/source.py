"""Where a render comes from and goes to: a run or bundle folder in, PNG/MP4 paths out."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lossart.errors import LossartError


def resolve_source(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """A run folder or a bundle folder/manifest -> (bundle folder, the run's renders/ or None)."""
    p = Path(source).expanduser()
    if (p / "run.json").is_file():
        from lossart.runs import Run

        run = Run(p)
        if not (run.terrain / "manifest.json").is_file():
            raise LossartError(
                f"{p}: this run has no terrain bundle yet (run `lossart terrain {p}` first)"
            )
        return run.terrain, run.renders
    if p.is_file() and p.name.endswith(".json"):
        p = p.parent
    if (p / "manifest.json").is_file():
        run_root = p.parent if (p.parent / "run.json").is_file() else None
        return p, (run_root / "renders") if run_root else None
    raise LossartError(f"{p}: neither a run folder (run.json) nor a terrain bundle (manifest.json)")


def check_bundle(bundle_dir: Path):
    """Open the bundle with the add-on's own reader (numpy/json only) before starting Blender."""
    from lossart.format.bundle import BundleError, load_bundle

    try:
        return load_bundle(bundle_dir)
    except BundleError as exc:
        raise LossartError(str(exc)) from None


def default_out(source: str | os.PathLike, suffix: str, stem: str) -> Path:
    """RUN/renders/<stem><suffix>, or renders/ beside a bundle that is not in a run."""
    bundle_dir, renders = resolve_source(source)
    return (renders or bundle_dir.parent / "renders") / f"{stem}{suffix}"


def writable(folder: Path, flag: str) -> None:
    """Create `folder` and check a file can be written there; a one-line error naming `flag`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lossart-write-test"):
            pass
    except OSError as exc:
        raise LossartError(f"{flag} {folder}: cannot write there ({exc.strerror or exc})") from None
