"""Data plumbing: epoch orders, class balancing, shards, seeded samples, early stopping."""

from __future__ import annotations

import numpy as np
import torch

from sam_pets.train.data import EpochSamples, epoch_order, open_dataset, sample_seed, shard
from sam_pets.train.loop import fit


def test_epoch_orders_are_seeded_and_weighted():
    a = epoch_order(10, 0, seed=1)
    assert sorted(a.tolist()) == list(range(10))
    assert np.array_equal(a, epoch_order(10, 0, seed=1))
    assert not np.array_equal(a, epoch_order(10, 1, seed=1))
    w = np.array([1, 1, 1, 1, 4.0])  # item 4 is one class, items 0-3 share another
    draws = np.concatenate([epoch_order(5, e, 0, w) for e in range(400)])
    assert abs(np.mean(draws == 4) - 0.5) < 0.05


def test_shards_are_disjoint_and_equal_length():
    order = np.arange(11)
    parts = [shard(order, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set(np.concatenate(parts).tolist())) == 9
    assert sample_seed(0, 0, 1) != sample_seed(0, 0, 2) != sample_seed(0, 1, 1)


def test_samples_are_reproducible_from_their_seed(pets_dataset):
    ds = open_dataset(str(pets_dataset), "train_tiny", 128, augment=True)
    assert ds.sample_weights().shape == (len(ds),)
    a = EpochSamples(ds, np.arange(4), seed=0, epoch=0)
    b = EpochSamples(ds, np.arange(2, 4), seed=0, epoch=0, start=2)  # resumed mid-epoch
    x, y = a[3], b[1]
    assert x["image"].shape == (3, 128, 128) and x["masks"].shape[1:] == (128, 128)
    assert torch.equal(x["image"], y["image"]) and torch.equal(x["masks"], y["masks"])
    assert x["seed"] == y["seed"]


def test_early_stopping(make_cfg):
    # an lr too small to move any weight: validation never improves after the first check
    cfg = make_cfg(steps=10, lr=1e-30, weight_decay=0.0, val_every=1, early_stop_patience=1)
    res = fit(cfg)
    assert res.status == "early_stop" and res.step == 2 and res.best_step == 1


def _cache(tr, split, directory):
    from sam_pets.train.data import FeatureCache

    ds = open_dataset(tr.cfg.dataset, split, tr.model.cfg.image_size, augment=False)
    return ds, FeatureCache(tr.model, ds, str(directory), tr.rt.autocast)


def test_disk_cache_never_serves_another_datasets_entry(make_cfg, tmp_path):
    """Item 0 of two different lists shares an index, never a cache entry."""
    from sam_pets.train.trainer import Trainer

    tr = Trainer(make_cfg(freeze=("image_encoder",), augment=False))
    ds_a, a = _cache(tr, "train_tiny", tmp_path / "c")
    ds_b, b = _cache(tr, "val_tiny", tmp_path / "c")
    assert ds_a.records[0]["name"] != ds_b.records[0]["name"]
    a.get(0)
    entry = b.get(0)
    assert b.computed == 1
    assert torch.equal(entry["masks"], ds_b[0]["masks"].as_subclass(torch.Tensor).bool())
    _, again = _cache(tr, "val_tiny", tmp_path / "c")
    again.get(0)
    assert again.computed == 0


def test_corrupt_disk_cache_entry_is_recomputed(make_cfg, tmp_path):
    from sam_pets.train.trainer import Trainer

    tr = Trainer(make_cfg(freeze=("image_encoder",), augment=False))
    _, first = _cache(tr, "train_tiny", tmp_path / "c")
    good = first.get(1)
    (path,) = first.dir.glob("*.pt")
    path.write_bytes(b"not a torch file")
    _, second = _cache(tr, "train_tiny", tmp_path / "c")
    entry = second.get(1)
    assert second.computed == 1
    assert torch.equal(entry["features"][0], good["features"][0])
    torch.load(path, weights_only=True)  # rewritten with a valid entry


def test_cached_runs_also_embed_fixed_object_crops(make_cfg, tmp_path):
    """A frozen-encoder run with object crops trains on crop views, each embedded once."""
    from sam_pets.train.trainer import Trainer

    tr = Trainer(
        make_cfg(
            freeze=("image_encoder",),
            augment=False,
            cached_embeddings=True,
            cache_dir=str(tmp_path / "cache"),
            object_crop_prob=0.5,
            cached_crop_views=2,
        )
    )
    cache = tr.cache
    assert cache.num_views == 2 and cache.crop_prob == 0.5
    views = cache.pick_views(list(range(200)))
    assert set(views) == {0, 1, 2} and 0.35 < np.mean(np.array(views) > 0) < 0.65
    assert cache.pick_views([7, 8]) == cache.pick_views([7, 8])  # by seed, repeatable
    whole, crop = cache.get(0, 0), cache.get(0, 1)
    side = tr.model.cfg.image_size
    assert crop["masks"].shape[-2:] == whole["masks"].shape[-2:] == (side, side)

    # margins of at most half the object's side: its box spans half the crop or more
    def spans(m):
        ys, xs = torch.nonzero(m, as_tuple=True)
        return min(int(ys.max() - ys.min()), int(xs.max() - xs.min())) + 1

    assert max(spans(m) for m in crop["masks"] if m.any()) >= side / 2 - 2
    differ = [
        not torch.equal(cache.get(i, 1)["features"][0], cache.get(i, 0)["features"][0])
        for i in range(4)
    ]
    assert any(differ)  # pets that do not fill their photo are cropped
    again = cache.view_sample(0, 1)  # the same crop every time
    assert torch.equal(again["masks"].as_subclass(torch.Tensor).bool(), crop["masks"])
    n = cache.computed
    cache.get(0, 1)
    assert cache.computed == n  # from disk
    assert len(list(cache.dir.glob("*.pt"))) == 8
    res = tr.train_step(iter([cache.batch([0, 1], [5, 6], tr.rt.device)]))
    assert np.isfinite(res["loss"])
