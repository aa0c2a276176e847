"""`lossart addon build`: the installable Blender extension zip, made by Blender's own builder.

Blender's extension tool (`blender --command extension build|validate`; its code ships in the bpy
wheel as `bl_pkg/cli/blender_ext.py`) checks blender_manifest.toml as Blender's installer and
extensions.blender.org do, and packs what the manifest's `[build]` section lets through. Building
with it, instead of zipping files ourselves, means a zip that builds here installs in Blender.
It runs in a subprocess: the bpy wheel's script with this Python (no Blender started), or a
`blender` executable. The zip is Blender's own name for it, `lossart-<version>.zip`.

What it packs is what Blender runs and nothing else, laid out as lossart's own package is, so
the add-on's relative imports (`..format`) work in both: the manifest and a two-line root
`__init__.py` at the top, the add-on (`blender_addon/`) in `addon/`, and the format it reads
(`lossart/format/`: bundle reader, PNG codec, look options, timeline) copied into `format/`.
The bundle writer, validator and everything else of lossart stay out.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lossart.checks import output_dir, output_file
from lossart.errors import LossartError
from lossart.render.job import addon_dir, format_dir

#: Where the bpy wheel keeps the extension tool and the tag list Blender validates against.
BPY_TOOL = "scripts/addons_core/bl_pkg/cli/blender_ext.py"
BPY_TAGS = "scripts/modules/_bpy_internal/extensions/tags.py"
TIMEOUT_S = 300
MANIFEST = "blender_manifest.toml"
#: The extension root's __init__.py: Blender calls register/unregister on it.
ROOT_INIT = (
    '"""lossart\'s Blender extension, as `lossart addon build` lays it out: the add-on in addon/, '
    'the bundle format and look options it reads in format/."""\n\n'
    "from .addon import register, unregister\n\n"
    '__all__ = ["register", "unregister"]\n'
)


@dataclass(frozen=True)
class ExtensionTool:
    """How to run Blender's extension tool: `argv + [subcommand, *args, *extra]`."""

    argv: list[str]
    extra: list[str] = field(default_factory=list)  # what Blender itself adds (the tag list)

    def command(self, subcommand: str, *args: str) -> list[str]:
        return [*self.argv, subcommand, *args, *self.extra]

    def run(self, subcommand: str, *args: str) -> str:
        """Run it; its output, or a one-line LossartError with its messages when it fails."""
        cmd = self.command(subcommand, *args)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LossartError(f"Blender's extension tool ({cmd[0]}) did not run: {exc}") from None
        output = (res.stdout + res.stderr).strip()
        if res.returncode != 0:
            lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
            if any(ln.startswith("Traceback") for ln in lines):
                lines = lines[-1:]  # the tool crashed: its exception, not its stack
            raise LossartError(
                f"Blender's extension {subcommand} failed: {'; '.join(lines)[:300] or 'no output'}"
            )
        return output


def bpy_extension_script() -> tuple[Path, Path | None] | None:
    """(blender_ext.py, tags.py) inside the installed bpy wheel, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    found = []
    for root in roots:
        for script in Path(root).glob(f"*/{BPY_TOOL}"):
            version_dir = script.parents[len(Path(BPY_TOOL).parts) - 1]
            key = tuple(int(p) if p.isdigit() else 0 for p in version_dir.name.split("."))
            found.append((key, script, version_dir / BPY_TAGS))
    if not found:
        return None
    _, script, tags = max(found)
    return script, (tags if tags.is_file() else None)


def extension_tool(blender: str | None = None) -> ExtensionTool:
    """Blender's extension tool: `blender` if given, else the bpy wheel's, else one on PATH."""
    if blender:
        exe = shutil.which(blender) or (blender if Path(blender).is_file() else None)
        if exe is None:
            raise LossartError(f"--blender {blender}: no such Blender executable")
        return ExtensionTool([exe, "--command", "extension"])
    found = bpy_extension_script()
    if found is not None:
        script, tags = found
        return ExtensionTool(
            [sys.executable, str(script)], ["--valid-tags", str(tags)] if tags else []
        )
    exe = shutil.which("blender")
    if exe:
        return ExtensionTool([exe, "--command", "extension"])
    raise LossartError(
        "cannot build the add-on: no bpy module and no blender executable; install bpy "
        "(`pip install 'lossart[render]'`, Python 3.11) or Blender 4.2+ and pass --blender PATH"
    )


def addon_manifest(folder: Path) -> dict:
    """The extension's blender_manifest.toml, parsed (its id and version name the zip)."""
    path = folder / "blender_manifest.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LossartError(
            f"{folder}: no blender_manifest.toml (is the add-on installed with lossart?)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LossartError(f"{path}: not readable TOML ({exc})") from None


def stage_extension(addon: Path, fmt: Path, stage: Path) -> Path:
    """Lay out the extension's source folder in `stage` (see the module's docstring); return it."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", MANIFEST)
    shutil.copy2(addon / MANIFEST, stage / MANIFEST)
    shutil.copytree(addon, stage / "addon", ignore=skip)
    shutil.copytree(fmt, stage / "format", ignore=skip)
    (stage / "__init__.py").write_text(ROOT_INIT, encoding="utf-8")
    return stage


def build_addon(out_dir: str | os.PathLike = "dist", blender: str | None = None) -> Path:
    """Build OUT_DIR/lossart-<version>.zip with Blender's builder (validated); return its path."""
    folder = addon_dir()
    manifest = addon_manifest(folder)
    out_dir = output_dir(out_dir)
    tool = extension_tool(blender)  # a missing --blender is refused before the folder is made
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LossartError(
            f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})"
        ) from None
    out = output_file(out_dir / f"{manifest.get('id')}-{manifest.get('version')}.zip")
    with tempfile.TemporaryDirectory(prefix="lossart-addon-") as tmp:
        source = stage_extension(folder, format_dir(), Path(tmp))
        tool.run("build", "--source-dir", str(source), "--output-dir", str(out_dir))
    if not out.is_file():
        raise LossartError(f"Blender's extension build reported success but wrote no {out}")
    return out
