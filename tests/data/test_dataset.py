import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sam_pets.data.augment import AugmentConfig, build_transform
from sam_pets.data.dataset import (
    AnnotationDataset,
    CanonicalDataset,
    DatasetConfig,
    collate_samples,
)
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.types import Annotation, ObjectInfo


def read_png(path):
    with Image.open(path) as im:
        return np.array(im)


def test_canonical_dataset_yields_real_samples(oxford_dev_canonical, oxford_dev):
    out, _ = oxford_dev_canonical
    ds = CanonicalDataset(out, DatasetConfig(split="val"))
    assert len(ds) == 48
    s = ds[0]
    trimap = read_png(oxford_dev / "trimaps" / f"{s['name']}.png")
    h, w = trimap.shape
    assert s["image"].shape == (3, h, w) and s["image"].dtype == torch.uint8
    assert s["masks"].shape == (1, h, w) and s["masks"].dtype == torch.bool
    assert torch.equal(s["masks"][0], torch.from_numpy(trimap == 1))
    assert torch.equal(s["ignore"], torch.from_numpy(trimap == 3))
    assert s["object_ids"].tolist() == [1] and s["species"] in ("cat", "dog") and s["breed"]
    assert s["boxes_xyxy"].shape == (1, 4) and s["boxes_xyxy"].format.value == "XYXY"


@pytest.mark.parametrize("border", ["foreground", "background"])
def test_border_policies(oxford_dev_canonical, oxford_dev, border):
    out, _ = oxford_dev_canonical
    s = CanonicalDataset(out, DatasetConfig(split="val_tiny", border=border))[0]
    trimap = torch.from_numpy(read_png(oxford_dev / "trimaps" / f"{s['name']}.png"))
    want = (trimap == 1) | (trimap == 3) if border == "foreground" else trimap == 1
    assert torch.equal(s["masks"][0], want) and not s["ignore"].any()


def test_bad_border_policy():
    with pytest.raises(ValueError):
        DatasetConfig(border="maybe")


def test_all_split_and_worker_loading(oxford_dev_canonical):
    out, _ = oxford_dev_canonical
    assert len(CanonicalDataset(out, DatasetConfig(split="all"))) == 240
    ds = CanonicalDataset(out, DatasetConfig(split="train_tiny", augment=AugmentConfig(resize=128)))
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_samples)
    batches = list(loader)
    assert sum(len(b) for b in batches) == 8
    assert all(s["image"].shape == (3, 128, 128) for b in batches for s in b)


def _striped_annotation():
    """Image whose red channel is 255 exactly on the object, so alignment is checkable."""
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:30, 5:25] = True
    masks[1, 35:55, 40:75] = True
    image = np.zeros((60, 80, 3), np.uint8)
    image[..., 0] = np.where(masks.any(0), 255, 0)
    ignore = np.zeros((60, 80), bool)
    ignore[0:3] = True
    objs = (ObjectInfo(1, "a"), ObjectInfo(2, "b"))
    return Annotation("s", masks, objs, ignore, image=image)


def test_augmentation_moves_image_masks_and_boxes_together():
    torch.manual_seed(0)
    cfg = DatasetConfig(augment=AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0))
    ds = AnnotationDataset([_striped_annotation()] * 20, cfg)
    for s in ds:
        red = s["image"][0] > 127
        union = s["masks"].any(0)
        assert (red ^ union).float().mean() < 0.02  # only interpolation at the edges differs
        for m, b in zip(s["masks"], s["boxes_xyxy"], strict=True):
            ys, xs = torch.nonzero(m, as_tuple=True)
            tight = torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()
            assert (tight - b).abs().max() <= 1.5


def test_flip_keeps_inclusive_boxes_tight():
    cfg = AugmentConfig(
        hflip_prob=1.0,
        scale_range=(1.0, 1.0),
        translate=0,
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
    )
    s = AnnotationDataset([_striped_annotation()], DatasetConfig(augment=cfg))[0]
    assert s["boxes_xyxy"].tolist() == [[55.0, 10.0, 74.0, 29.0], [5.0, 35.0, 39.0, 54.0]]
    plain = AnnotationDataset([_striped_annotation()])[0]
    assert plain["boxes_xyxy"].tolist() == [[5.0, 10.0, 24.0, 29.0], [40.0, 35.0, 74.0, 54.0]]


def test_no_augmentation_for_eval_and_crowd_goes_to_ignore():
    ann = _striped_annotation()
    crowd = Annotation(
        ann.name,
        ann.masks,
        (ann.objects[0], ObjectInfo(2, "b", iscrowd=True)),
        ann.ignore,
        image=ann.image,
    )
    assert build_transform(None) is None
    s = AnnotationDataset([crowd])[0]
    assert s["object_ids"].tolist() == [1]
    bg = AnnotationDataset([crowd], DatasetConfig(border="background"))[0]
    assert bg["ignore"][40, 50] and not bg["ignore"][0, 0]
    assert torch.equal(s["image"][0] > 0, torch.from_numpy(ann.masks.any(0)))
    assert s["ignore"][40, 50] and s["ignore"][0, 0] and not s["ignore"][20, 10]


def test_annotation_dataset_reads_image_path_lazily(oxford_dev_canonical):
    out, _ = oxford_dev_canonical
    rec = canon.load_manifest(out)["items"][0]
    ann = canon.read_annotation(out, rec, with_image=False)
    assert ann.image is None
    s = AnnotationDataset([ann])[0]
    assert s["image"].shape[1:] == ann.size_hw and s["breed"] == rec["breed"]


def test_augmented_samples_keep_tv_tensor_types():
    torch.manual_seed(1)
    ds = AnnotationDataset([_striped_annotation()], DatasetConfig(augment=AugmentConfig()))
    s = ds[0]
    assert s["boxes_xyxy"].format.value == "XYXY" and s["boxes_xyxy"].canvas_size == (60, 80)
    assert type(s["masks"]).__name__ == "Mask" and len(s["masks"]) == len(s["object_ids"])


def test_sample_weights_balance_breeds(oxford_dev_canonical):
    out, _ = oxford_dev_canonical
    ds = CanonicalDataset(out, DatasetConfig(split="all"))
    w = ds.sample_weights()
    by_breed = {}
    for rec, wi in zip(ds.records, w.tolist(), strict=True):
        by_breed[rec["breed"]] = by_breed.get(rec["breed"], 0.0) + wi
    assert len(by_breed) == 37
    assert max(by_breed.values()) == pytest.approx(min(by_breed.values()))


@pytest.mark.slow
def test_spawn_workers(oxford_dev_canonical):
    out, _ = oxford_dev_canonical
    ds = CanonicalDataset(out, DatasetConfig(split="val_tiny", augment=AugmentConfig()))
    loader = DataLoader(
        ds, batch_size=2, num_workers=2, collate_fn=collate_samples, multiprocessing_context="spawn"
    )
    assert sum(len(b) for b in loader) == 8


def test_check_leaves_out_unreadable_items(oxford_dev_canonical, tmp_path):
    import shutil

    from sam_pets.data.errors import BadItemError

    src, _ = oxford_dev_canonical
    root = tmp_path / "ds"
    shutil.copytree(src, root)
    names = canon.read_list(root, "val")
    canon.item_paths(root, names[1]).labels.write_text("not a png")
    canon.item_paths(root, names[3]).image.unlink()
    plain = CanonicalDataset(root, DatasetConfig(split="val"))
    assert len(plain) == len(names) and plain.skipped == ()
    with pytest.raises(BadItemError, match=f"item '{names[1]}': cannot read its files"):
        plain[1]
    checked = CanonicalDataset(root, DatasetConfig(split="val"), check=True, workers=2)
    kept = [n for i, n in enumerate(names) if i not in (1, 3)]
    assert [r["name"] for r in checked.records] == kept
    assert [i.source for i in checked.skipped] == [names[1], names[3]]
    assert "image file missing" in checked.skipped[1].reason
    assert checked[1]["name"] == names[2]
