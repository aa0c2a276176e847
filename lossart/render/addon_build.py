"""`lossart addon build`: the installable Blender extension zip.

The zip holds `blender_manifest.toml` at its root and only the add-on's own files (no caches,
no tests), which is what Blender's Edit > Preferences > Get Extensions > Install from Disk wants.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.errors import LossartError
from lossart.render.job import addon_dir

ADDON_FILES = (".py", ".toml")




def addon_version(folder: Path) -> str:
    text = (folder / "blender_manifest.toml").read_text()
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not m:
        raise LossartError(f'{folder / "blender_manifest.toml"}: no version = "..." line')
    return m.group(1)


def addon_files(folder: Path) -> list[Path]:
    """The add-on's files, relative to its root, sorted (what goes into the zip)."""
    files = [
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in ADDON_FILES
        and "__pycache__" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files)


def build_addon(out_dir: str | os.PathLike = "dist") -> Path:
    """Write dist/lossart-<version>.zip (atomically) and return its path."""
    folder = addon_dir()
    if not (folder / "blender_manifest.toml").is_file():
        raise LossartError(
            f"{folder}: no blender_manifest.toml (is the add-on installed with lossart?)"
        )
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LossartError(
            f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})"
        ) from None
    out = out_dir / f"lossart-{addon_version(folder)}.zip"
    try:
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel in addon_files(folder):
                zf.write(folder / rel, rel.as_posix())
    except OSError as exc:
        raise LossartError(
            f"--out {out_dir}: cannot write {out.name} ({exc.strerror or exc})"
        ) from None
    return out
