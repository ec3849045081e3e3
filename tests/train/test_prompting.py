"""Training prompts: boxes, clicks and correction clicks from the error region."""

from __future__ import annotations

import numpy as np

from sam_pets.train.prompting import (
    box_prompts,
    center_click_prompts,
    correction_clicks,
    first_prompts,
)


def _square(size=32, lo=8, hi=20):
    m = np.zeros((size, size), bool)
    m[lo:hi, lo:hi] = True
    return m


def test_boxes_and_clicks(rng):
    masks = np.stack([_square(), _square(lo=2, hi=6)])
    exact = box_prompts(masks, None)
    assert exact.points_xy.shape == (2, 2, 2) and not exact.multimask
    assert exact.points_xy[0].tolist() == [[8, 8], [19, 19]]
    assert exact.labels.tolist() == [[2, 3], [2, 3]]
    jit = box_prompts(masks, rng).points_xy
    assert np.abs(jit[0] - exact.points_xy[0]).max() <= 0.1 * 11 + 1e-6
    c = center_click_prompts(masks)
    assert c.multimask and c.labels.tolist() == [[1], [1]]
    p = first_prompts(masks, np.zeros((32, 32), bool), rng, prob_box=0.0, num_clicks=3)
    assert p.points_xy.shape == (2, 3, 2) and not p.multimask
    xs, ys = p.points_xy[0].T.astype(int)
    assert masks[0][ys, xs].all()


def test_correction_clicks_fix_the_errors(rng):
    gt = _square()[None]
    ignore = np.zeros((32, 32), bool)
    missed = np.zeros_like(gt)  # predicted nothing: every click is a positive in the GT
    for _ in range(10):
        pts, lab = correction_clicks(missed, gt, ignore, rng, prob_from_gt=0.0)
        x, y = pts[0, 0].astype(int)
        assert lab[0, 0] == 1 and gt[0, y, x]
    extra = np.ones_like(gt)  # predicted everything: clicks are negatives outside the GT
    ignore[:, 24:] = True
    for _ in range(10):
        pts, lab = correction_clicks(extra, gt, ignore, rng, prob_from_gt=0.0)
        x, y = pts[0, 0].astype(int)
        assert lab[0, 0] == 0 and not gt[0, y, x] and not ignore[y, x]
    pts, lab = correction_clicks(gt.copy(), gt, ignore, rng, prob_from_gt=0.0)  # perfect
    x, y = pts[0, 0].astype(int)
    assert lab[0, 0] == 0 and not gt[0, y, x]


def test_grid_clicks_sit_on_the_generator_grid_inside_the_object(rng):
    from sam_pets.predict.everything import point_grid
    from sam_pets.train.prompting import grid_click_prompts

    ring = np.zeros((64, 64), bool)  # an object whose most interior pixel is off the grid
    ring[10:50, 12:40] = True
    tiny = np.zeros((64, 64), bool)
    tiny[30, 30] = True  # holds no grid point
    p = grid_click_prompts(np.stack([ring, tiny]), 8)
    assert p.multimask and p.labels.tolist() == [[1], [1]]
    grid = point_grid(8) * 64
    for x, y in p.points_xy[:, 0]:
        assert np.isclose(grid, [x, y]).all(1).any()  # exactly a grid point
    x, y = p.points_xy[0, 0].astype(int)
    assert ring[y, x]
    assert np.abs(p.points_xy[1, 0] - [30, 30]).max() <= 4  # nearest grid point
    same = first_prompts(np.stack([ring]), np.zeros((64, 64), bool), rng, 1.0, 1, "grid", 8)
    assert np.array_equal(same.points_xy[0], p.points_xy[0])
