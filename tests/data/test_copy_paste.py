"""Copy-paste augmentation: backgrounds, strips beside objects, blending, and the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from sam_pets.data import copy_paste as cp
from sam_pets.data.augment import NO_JITTER, AugmentConfig
from sam_pets.data.dataset import CanonicalDataset, DatasetConfig


def test_paste_keeps_the_objects_and_replaces_the_rest():
    image = np.full((40, 60, 3), 200, np.uint8)
    alpha = np.zeros((40, 60), bool)
    alpha[10:30, 20:40] = True
    background = np.zeros((20, 30, 3), np.uint8)  # another size: resized to fit
    out = cp.paste(image, alpha, background)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[11:29, 21:39] == 200).all()  # the object, whole
    assert (out[:8] == 0).all() and (out[:, :18] == 0).all()  # background away from it
    edge = out[10, 25, 0]
    assert 0 < edge <= 200  # a softened edge, no hard cut


def test_free_strip_is_the_largest_side_beside_the_objects():
    image = np.arange(100 * 200 * 3, dtype=np.int64).reshape(100, 200, 3)
    objects = np.zeros((100, 200), bool)
    objects[20:90, 10:60] = True  # the widest free part is right of x = 60
    strip = cp.free_strip(image, objects)
    assert strip.shape == (100, 140, 3)
    np.testing.assert_array_equal(strip, image[:, 60:])
    objects[:] = True  # nothing is free
    assert cp.free_strip(image, objects) is None
    assert cp.free_strip(image, np.zeros((100, 200), bool)) is image


def test_random_crop_has_the_target_aspect():
    bg = np.zeros((300, 400, 3), np.uint8)
    g = torch.Generator().manual_seed(0)
    for aspect in (0.5, 1.0, 2.0):
        crop = cp.random_crop(bg, aspect, g)
        h, w = crop.shape[:2]
        assert abs(w / h - aspect) < 0.05 and h <= 300 and w <= 400


def test_load_backgrounds(tmp_path):
    Image.fromarray(np.zeros((50, 80, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((900, 300, 3), np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    imgs = cp.load_backgrounds([tmp_path], max_side=300)
    assert [i.shape for i in imgs] == [(50, 80, 3), (300, 100, 3)]
    with pytest.raises(ValueError, match="not found"):
        cp.load_backgrounds([tmp_path / "nope"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable image"):
        cp.load_backgrounds([empty])


def _dataset(root, prob, backgrounds=(), **kw):
    aug = AugmentConfig(resize=None, copy_paste_prob=prob, **NO_JITTER)
    return CanonicalDataset(
        root, DatasetConfig(split="all", augment=aug), backgrounds=backgrounds, **kw
    )


def test_dataset_pastes_pets_on_other_backgrounds(oxford_dev_canonical):
    root, _ = oxford_dev_canonical
    plain, pasted = _dataset(root, 0.0), _dataset(root, 1.0, [np.zeros((64, 64, 3), np.uint8)])
    changed = 0
    for i in range(6):
        torch.manual_seed(i)
        a, b = plain[i], pasted[i]
        # targets never change, nor do the pet's own pixels
        torch.testing.assert_close(a["masks"], b["masks"])
        torch.testing.assert_close(a["ignore"], b["ignore"])
        core = torch.from_numpy(ndimage.binary_erosion(a["masks"][0].numpy(), iterations=2))
        assert torch.equal(a["image"][:, core], b["image"][:, core])
        background = ~(a["masks"][0] | a["ignore"])
        changed += int(not torch.equal(a["image"][:, background], b["image"][:, background]))
    assert changed == 6
    # the same seed gives the same sample
    torch.manual_seed(3)
    one = pasted[3]["image"]
    torch.manual_seed(3)
    assert torch.equal(one, pasted[3]["image"])


def test_cut_out_keeps_the_object_and_its_band():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    mask = np.zeros((20, 30), bool)
    mask[5:10, 10:20] = True
    ignore = np.zeros_like(mask)
    ignore[4, 10:20] = True  # the band above the object
    ignore[0, 0] = True  # far away: not the object's
    rgb, core, band = cp.cut_out(image, mask, ignore)
    assert core.shape == band.shape == rgb.shape[:2] == (6, 10)
    assert core[1:].all() and not core[0].any() and band[0].all()
    np.testing.assert_array_equal(rgb, image[4:10, 10:20])
    assert cp.cut_out(image, np.zeros_like(mask), ignore) is None


def test_paste_objects_adds_occluding_objects():
    h, w = 100, 120
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.ones((1, h, w), bool)  # an object filling the image
    ignore = np.zeros((h, w), bool)
    core = np.zeros((40, 40), bool)
    core[5:35, 5:35] = True
    band = np.zeros_like(core)
    band[3:5, 5:35] = True
    piece = (np.full((40, 40, 3), 200, np.uint8), core, band)
    gen = torch.Generator().manual_seed(0)
    out, new_masks, new_ignore = cp.paste_objects(
        image, masks, ignore, [piece, piece], side_range=(0.4, 0.4), gen=gen
    )
    assert new_masks.shape == (3, h, w) and out.shape == image.shape
    ys, xs = np.nonzero(new_masks[2])  # the last one, which nothing occludes
    side = max(np.ptp(ys), np.ptp(xs)) + 1
    assert abs(side - 0.4 * 100 * 30 / 40) <= 2  # scaled as asked
    # the last piece occludes everything under it; the first object loses those pixels
    assert not (new_masks[0] & new_masks[2]).any() and not (new_masks[1] & new_masks[2]).any()
    assert (new_masks[0] | new_masks[1] | new_masks[2] | new_ignore).all()
    assert new_ignore.any() and not (new_ignore & new_masks.any(0)).any()
    assert (out[ndimage.binary_erosion(new_masks[2])] == 200).all()  # the piece inside its edge
    # a seeded generator repeats itself
    again = cp.paste_objects(
        image, masks, ignore, [piece, piece], (0.4, 0.4), torch.Generator().manual_seed(0)
    )
    np.testing.assert_array_equal(again[1], new_masks)


def test_dataset_pastes_objects_of_other_items(oxford_dev_canonical):
    root, _ = oxford_dev_canonical
    aug = AugmentConfig(resize=None, paste_objects_prob=1.0, **NO_JITTER)
    ds = CanonicalDataset(root, DatasetConfig(split="all", augment=aug))
    plain = _dataset(root, 0.0)
    for i in range(4):
        torch.manual_seed(i)
        s, p = ds[i], plain[i]
        k = len(s["masks"])
        assert 2 <= k <= 3 and len(s["object_ids"]) == k == len(s["boxes_xyxy"])
        assert len(set(s["object_ids"].tolist())) == k
        assert not (s["masks"][0] & ~p["masks"][0]).any()  # the pet only loses pixels
        for m in s["masks"][1:]:
            assert m.any() and not (m & s["masks"][0]).any()


def test_shrink_and_preload(oxford_dev_canonical):
    root, _ = oxford_dev_canonical
    eval_cfg = DatasetConfig(split="all")
    full = CanonicalDataset(root, eval_cfg)
    small = CanonicalDataset(root, eval_cfg, max_side=128)
    big = max(range(20), key=lambda i: max(full[i]["image"].shape[-2:]))
    a, b = full[big], small[big]
    h, w = a["image"].shape[-2:]
    assert max(b["image"].shape[-2:]) == 128 and b["masks"].shape[-2:] == b["image"].shape[-2:]
    assert abs(b["image"].shape[-1] / b["image"].shape[-2] - w / h) < 0.02
    # the object keeps its share of the picture
    assert float(b["masks"].float().mean()) == pytest.approx(
        float(a["masks"].float().mean()), abs=0.02
    )
    assert full.item_key(big) != small.item_key(big)
    # preloaded items give the very same samples, up to the budget
    assert small.preload(budget_mb=0.2) < len(small)
    kept = small.preload(budget_mb=10_000)
    assert kept == len(small)
    fresh = CanonicalDataset(root, eval_cfg, max_side=128)
    for i in (0, big, len(small) - 1):
        assert torch.equal(small[i]["image"], fresh[i]["image"])
        assert torch.equal(small[i]["masks"], fresh[i]["masks"])


def test_objects_hidden_by_a_pasted_one_are_dropped(oxford_dev_canonical, monkeypatch):
    root, _ = oxford_dev_canonical
    aug = AugmentConfig(resize=None, paste_objects_prob=1.0, **NO_JITTER)
    ds = CanonicalDataset(root, DatasetConfig(split="all", augment=aug))
    real = cp.paste_objects

    def cover_all(image, masks, ignore, pieces, *a, **kw):  # the pet vanishes under a piece
        image, out, ignore = real(image, masks, ignore, pieces, *a, **kw)
        out[0] = False
        out[-1] = False  # and the last piece kept no pixel
        return image, out, ignore

    monkeypatch.setattr(cp, "paste_objects", cover_all)
    for i in range(3):
        torch.manual_seed(i)
        s = ds[i]
        assert all(m.any() for m in s["masks"])
        assert len(s["object_ids"]) == len(s["masks"]) == len(s["boxes_xyxy"])
        assert ds.records[i]["objects"][0]["id"] not in s["object_ids"].tolist()
