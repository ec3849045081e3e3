import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from sam_pets.data.augment import AugmentConfig, build_transform


def test_off_means_none():
    assert build_transform(None) is None


def test_steps_follow_the_config():
    names = [type(t).__name__ for t in build_transform(AugmentConfig(resize=64)).transforms]
    assert names == [
        "RandomHorizontalFlip",
        "RandomAffine",
        "ColorJitter",
        "Resize",
        "ClampBoundingBoxes",
    ]
    bare = AugmentConfig(
        hflip_prob=0,
        scale_range=(1.0, 1.0),
        translate=0,
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
    )
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
