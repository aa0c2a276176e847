"""An image folder in the Imagenette layout: `PATH/train/<class>/*.jpg` and `PATH/val/<class>/*`.

Images are decoded once, resized (shorter side to `size`, centre crop) and kept as uint8 NCHW;
the decoded arrays are cached in `PATH/.lossart-cache-<size>px.npz` until any image changes.
Class names come from the `train` subfolders, sorted; `val` (or `test`) may hold a subset.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from lossart.atomic import np_savez
from lossart.data.spec import Dataset, DataSpec, image_stats
from lossart.errors import LossartError
from lossart.progress import progress

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
DEFAULT_SIZE = 64
LAYOUT = "PATH/train/<class>/*.jpg and PATH/val/<class>/*.jpg"


def _files(split_dir: Path) -> dict[str, list[Path]]:
    out = {}
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS)
        if files:
            out[d.name] = files
    return out


def _load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize(
                (max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR
            )
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except OSError as exc:
        raise LossartError(f"{path}: not a readable image ({exc})") from None


def _fingerprint(files: dict[str, dict[str, list[Path]]], size: int) -> str:
    """Names, sizes and modification times of every image: any change invalidates the cache."""
    h = hashlib.sha256(f"v1 {size}".encode())
    for split, by_class in files.items():
        for name, paths in by_class.items():
            for p in paths:
                st = p.stat()
                h.update(f"{split}/{name}/{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode_cached(
    root: Path, size: int, classes: tuple[str, ...], files: dict[str, dict[str, list[Path]]]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Decoded (x, y) per split, from `PATH/.lossart-cache-<size>px.npz` when it is current.

    Decoding thousands of JPEGs takes minutes and every command reloads the data, so the
    decoded arrays are cached beside the images (written atomically; skipped if read-only).
    """
    cache = root / f".lossart-cache-{size}px.npz"
    key = _fingerprint(files, size)
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as f:
                if str(f["key"]) == key:
                    return {
                        s: (torch.from_numpy(f[f"x_{s}"]), torch.from_numpy(f[f"y_{s}"]))
                        for s in ("train", "test")
                    }
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a stale or torn cache is simply rebuilt
    total = sum(len(p) for by_class in files.values() for p in by_class.values())
    arrays = {}
    with progress(total, desc=f"decoding {root.name}", unit="img") as bar:
        for split, by_class in files.items():
            xs, ys = [], []
            for name, paths in by_class.items():
                for p in paths:
                    xs.append(_load_image(p, size))
                    ys.append(classes.index(name))
                    bar.update()
            arrays[split] = (torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64))
    try:
        np_savez(
            cache,
            key=np.array(key),
            **{f"{k}_{s}": arrays[s][i].numpy() for s in arrays for i, k in enumerate("xy")},
        )
    except OSError:
        pass  # read-only dataset folder: no cache, decode again next time
    return arrays


def load_folder(spec: DataSpec) -> Dataset:
    root = spec.path
    size = spec.size or DEFAULT_SIZE
    if not root.is_dir():
        raise LossartError(f"{root}: no such folder; expected {LAYOUT}")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if not (root / "train").is_dir() or val_dir is None:
        raise LossartError(f"{root}: wrong layout; expected {LAYOUT}")
    train_files, val_files = _files(root / "train"), _files(val_dir)
    if not train_files or not val_files:
        empty = root / "train" if not train_files else val_dir
        raise LossartError(f"{empty}: no class folders with images; expected {LAYOUT}")
    classes = tuple(train_files)
    extra = sorted(set(val_files) - set(classes))
    if extra:
        raise LossartError(
            f"{val_dir / extra[0]}: class not in {root / 'train'}; expected the same classes"
        )

    arrays = _decode_cached(root, size, classes, {"train": train_files, "test": val_files})
    x_train, y_train = arrays["train"]
    x_test, y_test = arrays["test"]
    mean, std = image_stats(x_train)
    return Dataset(
        spec, "classification", len(classes), (3, size, size), x_train, y_train, x_test, y_test,
        mean, std, classes, "crop-flip", max(1, round(4 * size / 32)),
    )  # fmt: skip
