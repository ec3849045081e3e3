"""iter_evaluate on a synthetic dataset with a scripted predictor (hand-computed numbers)."""

from __future__ import annotations

import pytest

from sam_pets.eval.evaluate import EvalConfig, NamedModel, iter_evaluate
from sam_pets.progress import run_job

from .conftest import FakePredictor

CENTER_IOU = 81 / 119  # a 10x10 square shifted by one row and column against a 10x10 truth


def _run(ds, cfg: EvalConfig | None = None, n_models=1):
    cfg = cfg or EvalConfig(max_clicks=3)
    models = [NamedModel(f"m{i}", FakePredictor(), {"source": "fake"}) for i in range(n_models)]
    return run_job(iter_evaluate(models, ds, cfg), show=False), models


def test_box_and_center_hand_computed(synthetic_dataset):
    res, (m,) = _run(synthetic_dataset, EvalConfig(protocols=("box", "center"), max_clicks=3))
    assert m.predictor.embeds == 3  # once per image, shared by both protocols and all objects
    rows = {(r["item"], r["object_id"], r["protocol"]): r for r in res.rows}
    assert len(rows) == 8
    for item, oid in (("cat_a", 1), ("cat_b", 1), ("dog_a", 1)):
        assert rows[item, oid, "box"]["iou"] == 1.0
        assert rows[item, oid, "center"]["iou"] == pytest.approx(CENTER_IOU)
        assert rows[item, oid, "center"]["dice"] == pytest.approx(2 * 81 / 200)
    # dog_a's second object is 8x8: the click square covers rows/cols centre-5..centre+4
    small = rows["dog_a", 2, "center"]
    assert small["iou"] == pytest.approx(64 / 100)
    assert small["accuracy"] == pytest.approx(1 - 36 / (32 * 40))
    s = res.summary()["results"]["m0"]
    assert s["box"]["miou"] == 1.0 and s["box"]["n_objects"] == 4
    assert s["center"]["per_species"]["dog"]["n"] == 2
    assert s["center"]["per_breed"]["Bengal"]["miou"] == pytest.approx(CENTER_IOU)
    assert s["box"]["three_class"]["miou"] == pytest.approx(1.0)


def test_ignore_region_left_out(synthetic_dataset):
    res, _ = _run(synthetic_dataset, EvalConfig(protocols=("center",), max_clicks=3))
    r = next(r for r in res.rows if r["item"] == "cat_b")
    # ignore covers columns 0-1, far from the object: the same IoU, fewer counted pixels
    assert r["iou"] == pytest.approx(CENTER_IOU)
    assert r["accuracy"] == pytest.approx(1 - 38 / (32 * 38))


def test_three_class_confusion(synthetic_dataset):
    res, _ = _run(synthetic_dataset, EvalConfig(protocols=("center",), max_clicks=3))
    conf = res.confusions["m0", "center"]
    # cat: two images, 81 hits, 19 misses and 19 false positives each
    assert conf[1, 1] == 162 and conf[1, 0] == 38 and conf[0, 1] == 38
    assert conf[2, 1] == conf[1, 2] == 0
    assert conf.sum() == 32 * 40 * 3 - 64  # all pixels but cat_b's ignored columns
    three = res.summary()["results"]["m0"]["center"]["three_class"]
    assert three["per_class"]["cat"] == pytest.approx(162 / (162 + 76))


def test_clicks_protocol(synthetic_dataset):
    res, _ = _run(synthetic_dataset, EvalConfig(protocols=("clicks",), max_clicks=4))
    rows = [r for r in res.rows if r["protocol"] == "clicks"]
    assert len(rows) == 4 and all(len(r["ious"]) == 4 for r in rows)
    assert rows[0]["ious"][0] == pytest.approx(CENTER_IOU)
    s = res.summary()["results"]["m0"]["clicks"]
    assert len(s["miou_at_k"]) == 4
    assert 1 <= s["noc85"] <= 20 and s["noc90"] >= s["noc85"]


def test_random_protocols_seeded_and_order_independent(synthetic_dataset):
    cfg = EvalConfig(protocols=("box-jitter", "random"), max_clicks=3, seed=3)
    a, _ = _run(synthetic_dataset, cfg)
    b, _ = _run(synthetic_dataset, cfg)
    assert [r["iou"] for r in a.rows] == [r["iou"] for r in b.rows]
    sub, _ = _run(synthetic_dataset, EvalConfig(protocols=cfg.protocols, limit=1, seed=3))
    assert [r["iou"] for r in sub.rows] == [r["iou"] for r in a.rows if r["item"] == "cat_a"]
    other, _ = _run(synthetic_dataset, EvalConfig(protocols=cfg.protocols, seed=4))
    assert [r["iou"] for r in other.rows] != [r["iou"] for r in a.rows]


def test_compare_and_grid_masks(synthetic_dataset):
    res, models = _run(synthetic_dataset, EvalConfig(protocols=("center", "box")), n_models=2)
    assert all(m.predictor.embeds == 3 for m in models)
    assert res.config.grid_protocol == "center"
    mask = res.mask("m1", "cat_a", 0, (32, 40))
    assert mask.sum() == 100 and mask[4:14, 4:14].all()
    assert set(res.summary()["results"]) == {"m0", "m1"}


def test_bad_config():
    with pytest.raises(ValueError, match="unknown protocols"):
        EvalConfig(protocols=("lasso",))
    with pytest.raises(ValueError, match="max_clicks"):
        EvalConfig(max_clicks=0)


def test_bad_dataset(tmp_path, synthetic_dataset):
    from sam_pets.data.errors import BadInputError

    with pytest.raises(BadInputError, match="not found"):
        _run(tmp_path / "nothing")
    with pytest.raises(BadInputError, match="dataset.json"):
        _run(tmp_path)
    with pytest.raises(ValueError, match="distinct"):
        models = [NamedModel("x", FakePredictor()), NamedModel("x", FakePredictor())]
        run_job(iter_evaluate(models, synthetic_dataset), show=False)
