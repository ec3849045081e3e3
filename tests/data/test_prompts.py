import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision.ops import masks_to_boxes

from sam_pets.data import prompts


@pytest.fixture(scope="module")
def pet(pet_mask_and_trimap):
    mask, trimap = pet_mask_and_trimap
    return mask, trimap == 3


def test_tight_box_matches_torchvision(pet):
    mask, _ = pet
    want = masks_to_boxes(torch.from_numpy(mask)[None])[0].numpy()
    assert np.array_equal(prompts.tight_box(mask), want)
    with pytest.raises(ValueError):
        prompts.tight_box(np.zeros_like(mask))


def test_jitter_box_follows_sam2_rule(pet):
    mask, _ = pet
    box = prompts.tight_box(mask)
    w, h = box[2] - box[0], box[3] - box[1]
    bound = np.minimum(0.1 * np.array([w, h, w, h]), 20)
    rng = np.random.default_rng(0)
    for _ in range(200):
        j = prompts.jitter_box(box, mask.shape, rng)
        assert (np.abs(j - box) <= bound + 1e-3).all()
        assert 0 <= j[0] <= j[2] <= mask.shape[1] - 1 and 0 <= j[1] <= j[3] <= mask.shape[0] - 1
    assert np.array_equal(
        prompts.jitter_box(box, mask.shape, 3), prompts.jitter_box(box, mask.shape, 3)
    )
    edge = np.array([0, 0, 499, 374], np.float32)
    assert (prompts.jitter_box(edge, (375, 500), 1) >= 0).all()


def test_interior_point_is_deepest(pet):
    mask, _ = pet
    x, y = prompts.interior_point(mask).astype(int)
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    assert mask[y, x] and dist[y, x] == dist.max()
    x2, y2 = prompts.interior_point(mask, rng=0).astype(int)
    assert dist[y2, x2] == dist.max()
    with pytest.raises(ValueError):
        prompts.interior_point(np.zeros((3, 3), bool))


def test_image_border_counts_as_boundary():
    full = np.ones((5, 9), bool)
    x, y = prompts.interior_point(full)
    assert y == 2 and 2 <= x <= 6  # 3 px from the top and bottom image edges


def test_random_points(pet):
    mask, ignore = pet
    pts, labels = prompts.random_points(mask, 5, 7, rng=0, ignore=ignore)
    assert pts.shape == (12, 2) and labels.tolist() == [1] * 5 + [0] * 7
    xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
    assert mask[ys[:5], xs[:5]].all() and not mask[ys[5:], xs[5:]].any()
    assert not ignore[ys, xs].any()
    again, _ = prompts.random_points(mask, 5, 7, rng=0, ignore=ignore)
    assert np.array_equal(pts, again)
    tiny = np.zeros((4, 4), bool)
    tiny[1, 1] = True
    pts, labels = prompts.random_points(tiny, 3, 0, rng=1)
    assert len(pts) == 1


def test_correction_click_on_real_errors(pet):
    mask, ignore = pet
    eroded = ndimage.binary_erosion(mask, iterations=15)
    click = prompts.correction_click(eroded, mask, rng=0)
    assert click.label == 1 and mask[int(click.point_xy[1]), int(click.point_xy[0])]
    assert not eroded[int(click.point_xy[1]), int(click.point_xy[0])]
    dilated = ndimage.binary_dilation(mask, iterations=15)
    click = prompts.correction_click(dilated, mask, rng=0)
    x, y = click.point_xy.astype(int)
    assert click.label == 0 and dilated[y, x] and not mask[y, x]
    assert prompts.correction_click(mask, mask) is None
    only_border = mask | ignore
    assert prompts.correction_click(only_border, mask, ignore=ignore) is None


def test_correction_click_center_picks_larger_error():
    gt = np.zeros((40, 40), bool)
    gt[5:35, 5:35] = True
    pred = gt.copy()
    pred[10:30, 10:30] = False  # big miss in the middle
    pred[0:2, 0:40] = True  # thin false positive
    click = prompts.correction_click(pred, gt)
    assert click.label == 1 and click.point_xy.tolist() in ([19, 19], [19.0, 19.0])


def test_correction_click_random_is_in_error_region(pet):
    mask, _ = pet
    pred = ndimage.binary_erosion(mask, iterations=5)
    missed, extra = prompts.error_regions(pred, mask)
    rng = np.random.default_rng(0)
    for _ in range(20):
        click = prompts.correction_click(pred, mask, rng, mode="random")
        x, y = click.point_xy.astype(int)
        assert (missed | extra)[y, x] and click.label == int(missed[y, x])
    with pytest.raises(ValueError):
        prompts.correction_click(pred, mask, mode="nope")


def test_boundary_distance_on_the_bounding_box_equals_the_whole_image_transform():
    rng = np.random.default_rng(3)
    for _ in range(100):
        m = np.zeros((int(rng.integers(1, 50)), int(rng.integers(1, 50))), bool)
        for _ in range(int(rng.integers(0, 4))):
            y, x = rng.integers(0, m.shape[0]), rng.integers(0, m.shape[1])
            m[y : y + rng.integers(1, 25), x : x + rng.integers(1, 25)] = True
        full = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        np.testing.assert_array_equal(prompts.boundary_distance(m), full)
