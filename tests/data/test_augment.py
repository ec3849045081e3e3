import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from sam_pets.data.augment import (
    NO_JITTER,
    AugmentConfig,
    RandomObjectCrop,
    build_transform,
    object_crop_window,
)


def test_off_means_none():
    assert build_transform(None) is None


def test_steps_follow_the_config():
    names = [type(t).__name__ for t in build_transform(AugmentConfig(resize=64)).transforms]
    assert names == [
        "Resize",
        "RandomHorizontalFlip",
        "RandomAffine",
        "ColorJitter",
        "ClampBoundingBoxes",
    ]
    crop = build_transform(AugmentConfig(resize=64, object_crop_prob=0.5)).transforms
    assert [type(t).__name__ for t in crop][:2] == ["RandomObjectCrop", "Resize"]
    bare = AugmentConfig(**NO_JITTER)
    assert [type(t).__name__ for t in build_transform(bare).transforms] == ["ClampBoundingBoxes"]


def test_flip_moves_everything_together():
    cfg = AugmentConfig(
        hflip_prob=1.0,
        scale_range=(1.0, 1.0),
        translate=0,
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
    )
    image = tv_tensors.Image(torch.zeros(3, 4, 6, dtype=torch.uint8))
    image[0, :, 0] = 255
    mask = tv_tensors.Mask(torch.zeros(1, 4, 6, dtype=torch.bool))
    mask[0, :, 0] = True
    boxes = tv_tensors.BoundingBoxes([[0, 0, 1, 4]], format="XYXY", canvas_size=(4, 6))
    out_img, out_mask, out_boxes = build_transform(cfg)(image, mask, boxes)
    assert out_img[0, :, 5].eq(255).all() and out_mask[0, :, 5].all()
    assert out_boxes.tolist() == [[5, 0, 6, 4]]
    assert isinstance(build_transform(cfg), v2.Compose)


def _scene(h=60, w=80):
    """An image whose pixel values encode their column, one object at x 30..49, y 20..29."""
    image = tv_tensors.Image(torch.arange(w, dtype=torch.uint8).expand(3, h, w).clone())
    masks = tv_tensors.Mask(torch.zeros(2, h, w, dtype=torch.bool))
    masks[0, 20:30, 30:50] = True
    masks[1, 0:5, 0:5] = True
    ignore = tv_tensors.Mask(torch.zeros(h, w, dtype=torch.bool))
    boxes = tv_tensors.BoundingBoxes(
        [[30, 20, 50, 30], [0, 0, 5, 5]], format="XYXY", canvas_size=(h, w)
    )
    return image, masks, ignore, boxes


def test_object_crop_window_adds_margins_and_clips():
    box = torch.tensor([30.0, 20.0, 49.0, 29.0])  # inclusive: 20 x 10 pixels
    assert object_crop_window(box, (60, 80), torch.zeros(4)) == (20, 30, 10, 20)
    # 50 % of the width left and right, 100 % of the height above and below
    assert object_crop_window(box, (60, 80), torch.tensor([0.5, 1.0, 0.5, 1.0])) == (
        10,
        20,
        30,
        40,
    )
    # a huge margin stops at the image's edges
    assert object_crop_window(box, (60, 80), torch.full((4,), 10.0)) == (0, 0, 60, 80)


def test_object_crop_keeps_the_whole_object_and_moves_everything_together():
    torch.manual_seed(0)
    crop = RandomObjectCrop(1.0, (0.0, 0.5))
    sizes = set()
    for _ in range(20):
        image, masks, ignore, boxes = crop(*_scene())
        h, w = image.shape[-2:]
        sizes.add((h, w))
        assert masks.shape[-2:] == (h, w) and ignore.shape == (h, w)
        assert boxes.canvas_size == (h, w)
        # the crop holds one of the objects whole: a box that was not cut
        whole = [int(masks[k].sum()) for k in range(2)]
        assert 200 in whole or 25 in whole
        # pixels moved with the masks: the object's first column keeps its value 30
        if whole[0] == 200:
            cols = torch.nonzero(masks[0].any(0))[:, 0]
            assert int(image[0, 0, cols[0]]) == 30
    assert len(sizes) > 5  # random margins: many crop sizes


def test_object_crop_probability_zero_and_no_objects_leave_the_sample():
    image, masks, ignore, boxes = _scene()
    out = RandomObjectCrop(0.0, (0.0, 0.5))(image, masks, ignore, boxes)
    assert out[0].shape == image.shape
    empty = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(60, 80))
    out = RandomObjectCrop(1.0, (0.0, 0.5))(image, masks[:0], ignore, empty)
    assert out[0].shape == image.shape


def test_object_crop_then_resize_gives_the_model_size():
    torch.manual_seed(1)
    cfg = AugmentConfig(resize=32, object_crop_prob=1.0, **NO_JITTER)
    image, masks, ignore, boxes = build_transform(cfg)(*_scene())
    assert image.shape == (3, 32, 32) and masks.shape == (2, 32, 32)
    # the crop is around an object: it covers a good share of the frame
    assert max(float(masks[k].float().mean()) for k in range(2)) > 0.2
