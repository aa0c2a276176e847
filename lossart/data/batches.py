"""From stored data to model inputs: normalization, training batches, fixed evaluation subsets.

Training batches are a pure function of (dataset, batch size, seed, epoch, batch index): the
shuffle and every augmentation draw for an epoch come from one generator seeded by (seed, epoch)
and are drawn up front, so training can resume in the middle of an epoch and continue exactly.
Augmentation (random crop with zero padding, horizontal flip) runs on tensors, on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from lossart.data.spec import Dataset


def normalize(ds: Dataset, x: torch.Tensor) -> torch.Tensor:
    """Stored inputs (uint8 images or float features) to normalized float32 model inputs."""
    shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)  # per channel (images) or feature
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    if ds.mean:
        mean = torch.tensor(ds.mean, dtype=torch.float32, device=x.device).view(shape)
        std = torch.tensor(ds.std, dtype=torch.float32, device=x.device).view(shape)
        x = (x - mean) / std
    return x


def eval_subset(
    ds: Dataset,
    split: str = "train",
    size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded, un-augmented, normalized subset (all of `split` if `size` is None).

    The same (split, size, seed) always picks the same examples, in index order, so every
    evaluation of every grid point and frame sees identical data.
    """
    x, y = ds.split(split)
    n = x.shape[0]
    if size is not None and size < n:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:size].sort().values
        x, y = x[idx], y[idx]
    x = normalize(ds, x.to(device)).contiguous()
    return x, y.to(device)


def num_batches(ds: Dataset, batch_size: int) -> int:
    """Batches per epoch: a last batch of one example is dropped (BatchNorm cannot train on it)."""
    n = ds.x_train.shape[0]
    full, rest = divmod(n, batch_size)
    return full + (1 if rest > 1 else 0)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))


def _crop_flip(
    x: torch.Tensor, pad: int, offsets: torch.Tensor, flips: torch.Tensor | None
) -> torch.Tensor:
    """Random crops of zero-padded uint8 images [B, C, H, W] at `offsets` [B, 2], then flips."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    offsets = offsets.to(dev)
    rows = offsets[:, :1] + torch.arange(h, device=dev)  # [B, H]
    cols = offsets[:, 1:] + torch.arange(w, device=dev)  # [B, W]
    if flips is not None:
        cols = torch.where(flips.to(dev)[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def train_loader(
    ds: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    augment: bool = True,
    device: str | torch.device = "cpu",
    start_batch: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled, augmented (per `ds.augment`), normalized batches on `device`.

    `start_batch` skips the first batches without changing any later one (resume mid-epoch).
    """
    n = ds.x_train.shape[0]
    g = _epoch_generator(seed, epoch)
    perm = torch.randperm(n, generator=g)
    mode = ds.augment if (augment and ds.is_image) else "none"
    offsets = flips = None
    if mode != "none":
        offsets = torch.randint(0, 2 * ds.pad + 1, (n, 2), generator=g)
        if mode == "crop-flip":
            flips = torch.rand(n, generator=g) < 0.5
    for b in range(start_batch, num_batches(ds, batch_size)):
        idx = perm[b * batch_size : (b + 1) * batch_size]
        x = ds.x_train[idx].to(device, non_blocking=True)
        if offsets is not None:
            x = _crop_flip(x, ds.pad, offsets[idx], None if flips is None else flips[idx])
        yield normalize(ds, x), ds.y_train[idx].to(device, non_blocking=True)
