"""Training data plumbing: epoch orders, seeded samples, batches and the feature cache.

Every sample is produced at the model input size S (squash-resize, as Meta's predictor) by
the datasets layer's v2 pipeline. Its randomness (augmentation, prompts) is seeded from
``(seed, epoch, position)``, so a run resumed at a batch sees exactly the data an
uninterrupted run would have seen, with or without DataLoader workers.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sam_pets._atomic import atomic_write_bytes
from sam_pets.data.augment import NO_JITTER, AugmentConfig
from sam_pets.data.copy_paste import load_backgrounds
from sam_pets.data.dataset import CanonicalDataset, DatasetConfig
from sam_pets.model import ImageFeatures, Sam2Image
from sam_pets.model.fingerprint import encoder_fingerprint
from sam_pets.train.step import Batch, encode


def open_dataset(
    root: str,
    split: str,
    size: int,
    augment: bool,
    object_crop_prob: float = 0.0,
    object_crop_margin: tuple[float, float] = (0.0, 0.5),
    copy_paste_prob: float = 0.0,
    copy_paste_backgrounds: tuple[str, ...] = (),
    paste_objects_prob: float = 0.0,
) -> CanonicalDataset:
    """A canonical dataset split whose samples come out at S x S (augmented or not).

    With ``augment``, ``object_crop_prob`` of the samples are first cropped around one of
    their objects (see :class:`~sam_pets.data.augment.RandomObjectCrop`), and
    ``copy_paste_prob`` have their objects pasted onto another background (a strip of
    another item, or an image of the ``copy_paste_backgrounds`` folders), and
    ``paste_objects_prob`` get objects of other items pasted onto them as new objects.

    Every item is read once here; those that cannot be read are left out before training
    starts and listed in the dataset's ``skipped`` (see
    :class:`~sam_pets.data.dataset.CanonicalDataset`).
    """
    extra = dict(
        object_crop_prob=object_crop_prob,
        object_crop_margin=tuple(object_crop_margin),
        copy_paste_prob=copy_paste_prob,
        paste_objects_prob=paste_objects_prob,
    )
    aug = (
        AugmentConfig(resize=size, **extra) if augment else AugmentConfig(resize=size, **NO_JITTER)
    )
    # samples are made at S x S: items larger than 2 S (room for object crops) are shrunk
    backgrounds = (
        load_backgrounds(copy_paste_backgrounds, 2 * size)
        if augment and copy_paste_prob > 0
        else []
    )
    return CanonicalDataset(
        root,
        DatasetConfig(split=split, augment=aug),
        check=True,
        max_side=2 * size,
        backgrounds=backgrounds,
    )


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sample at ``position`` of ``epoch``."""
    return int(
        np.random.SeedSequence([seed, epoch, position]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def epoch_order(n: int, epoch: int, seed: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Item indices of one epoch: a permutation, or ``n`` weighted draws with replacement.

    Args:
        n: Number of items.
        epoch: Epoch number (part of the seed).
        seed: Run seed.
        weights: (n,) sampling weights (class balancing) or None for a plain shuffle.

    Returns:
        (n,) int64 indices.
    """
    rng = np.random.default_rng([seed, epoch, 7])
    if weights is None:
        return rng.permutation(n)
    p = np.asarray(weights, np.float64)
    return rng.choice(n, size=n, replace=True, p=p / p.sum())


def shard(order: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of an epoch order (every rank gets the same length)."""
    per = len(order) // world
    return order[rank::world][:per]


class EpochSamples(Dataset):
    """Position ``j`` of an epoch order -> a seeded sample dict (for a DataLoader).

    Args:
        base: The dataset.
        order: Item indices of this rank's epoch.
        seed: Run seed.
        epoch: Epoch number.
        start: Position of ``order[0]`` in the epoch (for resuming mid-epoch).
    """

    def __init__(self, base: Dataset, order: np.ndarray, seed: int, epoch: int, start: int = 0):
        self.base, self.order, self.seed, self.epoch, self.start = base, order, seed, epoch, start

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, j: int) -> dict:
        s = sample_seed(self.seed, self.epoch, self.start + j)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            sample = self.base[int(self.order[j])]
        return {
            "image": sample["image"].as_subclass(torch.Tensor),
            "masks": sample["masks"].as_subclass(torch.Tensor).bool(),
            "ignore": sample["ignore"].as_subclass(torch.Tensor).bool(),
            "index": int(self.order[j]),
            "seed": s,
        }


def loader(
    samples: EpochSamples,
    batch_size: int,
    num_workers: int,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """Sequential batches of sample dicts (lists; the last partial batch is dropped).

    ``generator`` keeps the DataLoader from drawing its worker seed from the global RNG.
    """
    return DataLoader(
        samples,
        batch_size=batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=num_workers,
        collate_fn=list,
        generator=generator,
    )


def to_batch(
    samples: list[dict], device: torch.device, features: ImageFeatures | None = None
) -> Batch:
    """Stack sample dicts into a :class:`Batch` on ``device``."""
    masks = [s["masks"].to(device) for s in samples]
    ignore = torch.stack([s["ignore"] for s in samples]).to(device)
    images = None
    if features is None:
        images = torch.stack([s["image"] for s in samples]).to(device).float() / 255.0
    return Batch(masks, ignore, [s["seed"] for s in samples], images, features)


class FeatureCache:
    """Image features of unaugmented items, computed once (memory, or files on disk).

    With ``views`` (a dataset whose samples are crops around one object, see
    :func:`crop_views_dataset`) and ``num_views`` > 0, each item also has ``num_views`` fixed
    object crops (view 1 to ``num_views``; view 0 is the whole image), each drawn once with
    a seed of its own; :meth:`batch` then picks a crop view for ``crop_prob`` of the samples,
    so a frozen-encoder run also learns the views a zoom-in predictor shows the decoder.

    Entries hold the features (batch 1, CPU) and the item's masks and ignore region, so a
    cached step never decodes an image. On disk an entry is ``<key>.pt`` under a sub-folder
    per encoder fingerprint, where the key hashes the item's content and how it is read
    (``dataset.item_key``) plus ``settings``: an entry of another dataset, of an edited item
    or of other preprocessing is never reused. An unreadable or malformed file is recomputed.

    Args:
        model: The model whose (frozen) encoder computes the features.
        dataset: Unaugmented dataset at S x S with an ``item_key(index)`` method.
        directory: Folder for ``.pt`` files, or None (memory only).
        runtime_autocast: Zero-argument autocast factory for the encoder.
        settings: Anything else the features depend on (e.g. the autocast precision).
    """

    def __init__(
        self,
        model: Sam2Image,
        dataset: Dataset,
        directory: str | None,
        runtime_autocast,
        settings: str = "",
        views: Dataset | None = None,
        num_views: int = 0,
        crop_prob: float = 0.0,
    ) -> None:
        self.model, self.dataset, self.autocast = model, dataset, runtime_autocast
        self.settings = settings
        self.views = views
        self.num_views = num_views if views is not None else 0
        self.crop_prob = crop_prob if self.num_views else 0.0
        self.memory: dict = {}
        self.dir = Path(directory) / encoder_fingerprint(model) if directory else None
        self.computed = 0

    def get(self, index: int, view: int = 0) -> dict:
        """Entry of item ``index``: ``features``, ``masks``, ``ignore``.

        ``view`` 0 is the whole image, 1 to ``num_views`` its object crops.
        """
        key = index if view == 0 else (index, view)
        if key in self.memory:
            return self.memory[key]
        path = self.dir / f"{self.entry_key(index, view)}.pt" if self.dir else None
        entry = _read_entry(path) if path is not None else None
        if entry is None:
            entry = self._compute(index, view)
            if path is not None:
                buf = io.BytesIO()
                torch.save(entry, buf)
                atomic_write_bytes(path, buf.getvalue())
        if path is None:
            self.memory[key] = entry
        return entry

    def entry_key(self, index: int, view: int = 0) -> str:
        """File key of item ``index`` (and crop ``view``): content key plus cache settings."""
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{self.dataset.item_key(index)}|{self.settings}".encode())
        if view:
            h.update(f"|view={view}|{self.views.item_key(index)}".encode())
        return h.hexdigest()

    def view_sample(self, index: int, view: int) -> dict:
        """The crop sample of ``view`` (>= 1) of item ``index``: the same every time."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(view_seed(index, view))
            return self.views[index]

    def pick_views(self, seeds: list[int]) -> list[int]:
        """The view of each sample: a crop for ``crop_prob`` of them (by their seeds)."""
        out = []
        for s in seeds:
            rng = np.random.default_rng([s, 0x5EED])
            crop = self.num_views and rng.random() < self.crop_prob
            out.append(int(rng.integers(1, self.num_views + 1)) if crop else 0)
        return out

    def seed(self, index: int, features: ImageFeatures) -> bool:
        """Use features computed elsewhere (the annotator's embeddings) for item ``index``.

        Returns False (and keeps nothing) when their size does not fit the model.
        """
        side = self.model.cfg.embedding_size
        if index in self.memory or features.image_embed.shape[-2:] != (side, side):
            return False
        sample = self.dataset[index]
        self.memory[index] = {
            "features": [t.detach().float().cpu() for t in features.tensors()],
            "masks": sample["masks"].as_subclass(torch.Tensor).bool(),
            "ignore": sample["ignore"].as_subclass(torch.Tensor).bool(),
        }
        return True

    def _compute(self, index: int, view: int = 0) -> dict:
        sample = self.dataset[index] if view == 0 else self.view_sample(index, view)
        dev = self.model.device
        img = sample["image"].as_subclass(torch.Tensor)[None].to(dev).float() / 255.0
        with self.autocast():
            feats = encode(self.model, img, trainable=False)
        self.computed += 1
        return {
            "features": [t.float().cpu() for t in feats.tensors()],
            "masks": sample["masks"].as_subclass(torch.Tensor).bool(),
            "ignore": sample["ignore"].as_subclass(torch.Tensor).bool(),
        }

    def batch(self, indices: list[int], seeds: list[int], device: torch.device) -> Batch:
        """A :class:`Batch` of cached items."""
        views = self.pick_views(seeds)
        entries = [self.get(i, v) for i, v in zip(indices, views, strict=True)]
        feats = ImageFeatures(
            *(torch.cat([e["features"][j] for e in entries]).to(device) for j in range(3))
        )
        samples = [
            {"masks": e["masks"], "ignore": e["ignore"], "seed": s}
            for e, s in zip(entries, seeds, strict=True)
        ]
        return to_batch(samples, device, feats)


def view_seed(index: int, view: int) -> int:
    """Seed of crop ``view`` of item ``index`` (fixed: a view is embedded once)."""
    return (index * 1_000_003 + view * 7919) % (2**63)


def crop_views_dataset(
    base: CanonicalDataset, size: int, margin: tuple[float, float] = (0.0, 0.5)
) -> CanonicalDataset:
    """``base``'s items at S x S, cropped around one random object with a random margin.

    The object crops :class:`FeatureCache` embeds for frozen-encoder runs. The items (and
    those already read into memory) are ``base``'s, so index ``i`` is the same item in both
    and nothing is read again.
    """
    views = copy.copy(base)
    aug = AugmentConfig(
        resize=size, object_crop_prob=1.0, object_crop_margin=tuple(margin), **NO_JITTER
    )
    views.cfg = replace(base.cfg, augment=aug)
    views._init_transform()
    return views


def _read_entry(path: Path) -> dict | None:
    """A cache file's entry, or None when it is absent, unreadable or malformed."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, corrupt or foreign file: recompute, never fail the run
        return None
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("features"), list)
        and len(entry["features"]) == 3
        and all(isinstance(t, torch.Tensor) for t in entry["features"])
        and isinstance(entry.get("masks"), torch.Tensor)
        and isinstance(entry.get("ignore"), torch.Tensor)
    )
    return entry if ok else None
