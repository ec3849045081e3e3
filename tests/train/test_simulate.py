"""The simulated annotate -> fine-tune -> annotate loop (test-sized: 2-3 images, a few steps)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sam_pets.eval.items import EvalItem
from sam_pets.predict.session import PromptSession
from sam_pets.progress import run_job
from sam_pets.train.simulate import (
    LoopResult,
    ObjectEffort,
    SimulatedUser,
    annotated_image,
    iter_loop,
)


def _item(name: str, seed: int, size=(48, 64)) -> EvalItem:
    """A synthetic photo with two rectangles and an ellipse on textured ground."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((3, h, w), bool)
    masks[0, 4:20, 6:26] = True
    masks[1, 26:44, 34:60] = True
    masks[2] = ((yy - 12) / 8.0) ** 2 + ((xx - 46) / 10.0) ** 2 <= 1
    for k, colour in enumerate([(220, 40, 40), (40, 220, 40), (40, 40, 220)]):
        image[masks[k]] = colour
    ignore = np.zeros((h, w), bool)
    ignore[0, :] = True
    return EvalItem(name, image, masks, ignore, None, None, ("a", "b", "c"), (1, 2, 3))


class _ScriptedPredictor:
    """Returns the ground truth once the prompt has ``needed`` interactions, else nothing."""

    def __init__(self, gt: np.ndarray, needed: int) -> None:
        self.gt, self.needed, self.calls = gt, needed, []

    def set_image(self, image) -> None:
        pass

    def predict(self, points, labels, box, mask_in, multimask, lazy_masks, **kw):
        n = (0 if points is None else len(points)) + (box is not None)
        self.calls.append(SimpleNamespace(n=n, box=box, mask_in=mask_in, multimask=multimask))
        mask = self.gt if n >= self.needed else np.zeros_like(self.gt)
        m = 3 if multimask else 1
        return SimpleNamespace(
            scores=np.linspace(1, 0.5, m),
            low_res_logits=np.zeros((m, 4, 4), np.float32),
            object_scores=np.float32(1),
            mask=lambda k: mask,
            window=None,
        )


def test_the_user_clicks_until_the_target_and_each_click_extends_the_prompt():
    item = _item("a", 0)
    gt = item.masks[0]
    pred = _ScriptedPredictor(gt, needed=3)
    effort = SimulatedUser().annotate_object(pred, PromptSession(), gt, item.ignore)
    assert effort == ObjectEffort(3, 1.0, True)
    assert [c.n for c in pred.calls] == [1, 2, 3]
    # one click asks for 3 candidates; later clicks feed the previous logits back
    assert pred.calls[0].multimask and pred.calls[0].mask_in is None
    assert not pred.calls[1].multimask and pred.calls[1].mask_in is not None


def test_the_box_counts_as_one_interaction_and_the_budget_caps_the_clicks():
    item = _item("a", 0)
    gt = item.masks[1]
    pred = _ScriptedPredictor(gt, needed=1)
    assert SimulatedUser(first="box").annotate_object(pred, PromptSession(), gt, None).clicks == 1
    assert pred.calls[0].box is not None
    never = _ScriptedPredictor(gt, needed=99)
    effort = SimulatedUser(max_clicks=4).annotate_object(never, PromptSession(), gt, None)
    assert effort == ObjectEffort(4, 0.0, False)


def test_bad_user_settings_are_refused():
    with pytest.raises(ValueError, match="first"):
        SimulatedUser(first="lasso")
    with pytest.raises(ValueError):
        SimulatedUser(max_clicks=0)


def test_annotated_image_commits_every_object_in_order_and_keeps_ignore():
    item = _item("a", 0)
    ann = annotated_image(item)
    assert ann.name == "a"
    assert set(np.unique(ann.labels)) == {0, 1, 2, 3}
    for k, m in enumerate(item.masks, start=1):
        assert (ann.labels[m] == k).mean() > 0.9
    np.testing.assert_array_equal(ann.ignore, item.ignore)


def test_the_loop_annotates_finetunes_after_k_and_scores_the_test_set(
    tmp_path, test_model, one_torch_thread
):
    pool = [_item(f"p{i}", i) for i in range(3)]
    test = tmp_path / "test"
    from sam_pets.train.finetune import write_snapshot

    write_snapshot([annotated_image(_item("t0", 9))], test, val_fraction=0)
    user = SimulatedUser(max_clicks=3)
    base = run_job(
        iter_loop(test_model, pool, test, tmp_path / "none", preset=None, user=user, max_clicks=3),
        show=False,
    )
    assert isinstance(base, LoopResult) and base.rounds == []
    assert [len(e) for e in base.effort] == [3, 3, 3]
    assert base.before.objects == 3 and 1 <= base.before.clicks_to_85 <= 3
    assert base.cumulative_clicks()[-1] == sum(o.clicks for img in base.effort for o in img)

    res = run_job(
        iter_loop(
            test_model,
            pool,
            test,
            tmp_path / "quick",
            ks=(1, 2, 7),  # 7 > pool: ignored
            preset="quick",
            overrides={"steps": 2, "val_every": 0},
            user=user,
            max_clicks=3,
            before=base.before,
        ),
        show=False,
    )
    assert [r.k for r in res.rounds] == [1, 2]
    assert all(r.steps == 2 and r.status == "done" and r.scores.objects == 3 for r in res.rounds)
    assert res.before is base.before
    assert len(res.effort) == 3  # the image after the last K is annotated too
    assert (tmp_path / "quick" / "k001" / "finetune.json").is_file()
    assert (tmp_path / "quick" / "k002" / "run").is_dir()
    # the first image is annotated with the start model in both runs: same clicks
    assert [o.clicks for o in res.effort[0]] == [o.clicks for o in base.effort[0]]
