"""The Blender extension as Blender sees it: built and validated by Blender's own extension tool,
installed through Blender's own installer, and importing a bundle with nothing but its own files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import lossart
from lossart.cli import main
from lossart.errors import LossartError
from lossart.render import addon_build
from lossart.render.addon_build import build_addon, extension_tool

ADDON = Path(lossart.__file__).resolve().parent.parent / "blender_addon"


def _needs_bpy():
    pytest.importorskip(
        "bpy", reason="the bpy module (Blender as a Python module) is not installed"
    )


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory) -> Path:
    _needs_bpy()
    out = tmp_path_factory.mktemp("dist")
    assert main(["addon", "build", "--out", str(out)]) == 0
    (zpath,) = out.glob("lossart-*.zip")
    return zpath


def test_manifest_passes_blenders_validator():
    _needs_bpy()
    out = extension_tool().run("validate", str(ADDON))
    assert "Success parsing TOML" in out


def test_addon_version_is_lossarts():
    from lossart.terrain.bundle_write import WRITER_VERSION

    assert (Path(lossart.__file__).parent / "addon").resolve() == ADDON.resolve()
    manifest = tomllib.loads((ADDON / "blender_manifest.toml").read_text())
    assert manifest["version"] == lossart.__version__ == WRITER_VERSION


def test_addon_build_zip(addon_zip):
    assert addon_zip.name == f"lossart-{lossart.__version__}.zip"  # Blender's {id}-{version}
    names = set(zipfile.ZipFile(addon_zip).namelist())
    # what Blender runs and nothing else: the add-on, and the format it reads, laid out as lossart is
    fmt = Path(lossart.__file__).resolve().parent / "format"
    want = {"blender_manifest.toml", "__init__.py"}
    want |= {f"addon/{p.name}" for p in ADDON.glob("*.py")}
    want |= {f"format/{p.name}" for p in fmt.glob("*.py")}
    assert {n for n in names if not n.endswith("/")} == want
    assert "format/bundle.py" in want and "addon/landscape.py" in want
    assert not {"bundle_write.py", "bundle_validate.py", "curve2d.py", "swap.py"} & {
        Path(n).name for n in names
    }  # lossart's writer and checker stay out
    manifest = zipfile.ZipFile(addon_zip).read("blender_manifest.toml").decode()
    assert 'id = "lossart"' in manifest and 'blender_version_min = "4.2.0"' in manifest
    assert "[permissions]" in manifest and "files =" in manifest
    # the add-on uses relative imports only, and never torch or lossart's compute code
    for n in names:
        src = zipfile.ZipFile(addon_zip).read(n).decode()
        assert (
            "import torch" not in src and "from lossart" not in src and "import lossart" not in src
        )
    # and Blender's validator accepts the archive itself, as the installer will
    assert "Success parsing TOML" in extension_tool().run("validate", str(addon_zip))


def test_build_refuses_what_blenders_validator_refuses(tmp_path, monkeypatch):
    _needs_bpy()
    src = tmp_path / "addon"
    shutil.copytree(ADDON, src, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = src / "blender_manifest.toml"
    text = manifest.read_text()
    tagline = next(ln for ln in text.splitlines() if ln.startswith("tagline"))
    manifest.write_text(text.replace(tagline, 'tagline = "' + "x" * 80 + '"'))
    monkeypatch.setattr(addon_build, "addon_dir", lambda: src)
    with pytest.raises(LossartError, match=r"extension build failed: .*tagline.*64 characters"):
        build_addon(tmp_path / "dist")
    assert not list((tmp_path / "dist").glob("*.zip"))


def test_no_builder_says_how_to_get_one(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bpy" else real(name, *a)
    )
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LossartError, match=r"no bpy module and no blender executable.*--blender"):
        build_addon(tmp_path)
    with pytest.raises(LossartError, match="--blender /no/such/blender"):
        build_addon(tmp_path, blender="/no/such/blender")


def test_blender_executable_route_uses_blenders_command(tmp_path):
    exe = tmp_path / "blender"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    cmd = extension_tool(str(exe)).command("build", "--source-dir", "S")
    assert cmd == [str(exe), "--command", "extension", "build", "--source-dir", "S"]


INSTALL_AND_IMPORT = """
import importlib.abc, sys
from pathlib import Path

class Refuse(importlib.abc.MetaPathFinder):  # the add-on must need neither lossart nor torch
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('lossart', 'torch'):
            raise ImportError('blocked: ' + name)

sys.meta_path.insert(0, Refuse())
import bpy, numpy as np
bpy.ops.extensions.package_install_files(
    filepath=ZIP, repo='user_default', enable_on_install=True)
import addon_utils
mods = [m.__name__ for m in addon_utils.modules() if m.__name__.endswith('.lossart')]
assert mods, 'extension not found'
assert hasattr(bpy.types.Scene, 'lossart') and hasattr(bpy.types, 'LOSSART_PT_panel'), 'not enabled'
pkg = sys.modules[mods[0]]
assert Path(pkg.__file__).resolve().is_relative_to(Path(USER).resolve()), pkg.__file__
print('INSTALLED', mods[0])

assert bpy.ops.lossart.import_landscape(filepath=BUNDLE + '/manifest.json') == {'FINISHED'}
scene = bpy.context.scene
s = scene.lossart
w = h = 33
ring = 2 * (w - 1) + 2 * (h - 1)
assert len(s.terrain.data.vertices) == w * h + 2 * ring
assert len(s.terrain.data.polygons) == (w - 1) * (h - 1) + ring
assert s.path.type == 'CURVE' and s.path.data.bevel_depth > 0
names = sorted(o['lossart_point'] for o in s.collection.objects if 'lossart_point' in o)
assert names == ['w1', 'w2'], names
assert scene.camera is s.camera and (scene.frame_start, scene.frame_end) == (1, 3)

bundle_mod = sys.modules[mods[0] + '.format.bundle']  # the installed copy of the one format
surface_mod = sys.modules[mods[0] + '.addon.surface']
b = bundle_mod.load_bundle(BUNDLE)
relief = sys.modules[mods[0] + '.addon.world'].WorldMap.for_bundle(b).relief
relief *= sys.modules[mods[0] + '.format.styles'].style_spec(s.style).relief  # its exaggeration
scene.frame_set(2)
want = (b.heights(1) - b.z_min) / (b.z_max - b.z_min) * relief
err = float(np.abs(surface_mod.grid_z(s.terrain) - want).max())
assert err < 1e-5, err
assert not [m for m in sys.modules if m.split('.')[0] in ('lossart', 'torch')]
print('IMPORTED', Path(bundle_mod.__file__).name, err)
"""


@pytest.mark.blender
def test_zip_installs_through_blender_and_imports_a_bundle(addon_zip, tmp_path):
    from lossart.terrain.synthetic import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "terrain", frames=3, size=33)
    user = tmp_path / "user"  # an empty Blender user folder: its extensions repository too
    code = f"ZIP, USER, BUNDLE = {str(addon_zip)!r}, {str(user)!r}, {str(bundle)!r}\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(BLENDER_USER_RESOURCES=str(user), BLENDER_USER_EXTENSIONS=str(user / "extensions"))
    res = subprocess.run(
        [sys.executable, "-c", code + INSTALL_AND_IMPORT],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert "INSTALLED bl_ext.user_default.lossart" in res.stdout, out[-3000:]
    assert "IMPORTED bundle.py" in res.stdout, out[-3000:]
