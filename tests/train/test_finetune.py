"""Fine-tuning on a person's annotations: snapshot, scores before/after, cancel and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sam_pets.eval.items import item_names, iter_items
from sam_pets.model import build_model, load_model
from sam_pets.train.finetune import (
    AnnotatedImage,
    FinetuneJob,
    make_config,
    new_job_folder,
    split_names,
    write_snapshot,
)


@pytest.fixture(scope="module")
def annotated(pets_dataset):
    """Six real pet photos with their objects as label images, as the annotator holds them."""
    out = []
    for item in iter_items(pets_dataset, item_names(pets_dataset, "train_tiny")[:6]):
        labels = np.zeros(item.image.shape[:2], np.uint16)
        for oid, m in zip(item.object_ids, item.masks, strict=True):
            labels[m] = oid
        out.append(AnnotatedImage(item.name, item.image, labels, source=f"/photos/{item.name}"))
    return out


def run(job):
    records, gen = [], iter(job)
    while True:
        try:
            records.append(next(gen))
        except StopIteration as e:
            return records, e.value


def test_split_names_is_seeded_and_keeps_training_images():
    names = [f"img{i}" for i in range(10)]
    assert split_names(names[:1], 0.2) == set()
    assert len(split_names(names[:2], 0.2)) == 1
    assert len(split_names(names, 0.2)) == 2
    assert split_names(names, 0.2, seed=3) == split_names(list(reversed(names)), 0.2, seed=3)
    assert len(split_names(names[:3], 0.99)) == 2  # never all of them


def test_snapshot_is_a_dataset_with_held_out_images(annotated, tmp_path):
    splits = write_snapshot(annotated, tmp_path / "data", val_fraction=0.34)
    assert sorted(splits.values()).count("val") == 2 and len(splits) == 6
    assert (tmp_path / "data" / "val_list.txt").read_text().split() == sorted(
        n for n, s in splits.items() if s == "val"
    )
    with pytest.raises(ValueError, match="no committed object"):
        write_snapshot([AnnotatedImage("x", annotated[0].image, np.zeros((4, 4)))], tmp_path / "e")


def test_presets_cap_batch_and_drop_cache_when_the_encoder_trains(tmp_path):
    cfg = make_config("quick", tmp_path, tmp_path / "run", "base.pt", n_train=3)
    assert cfg.batch_size == 3 and cfg.cached_embeddings and "image_encoder" in cfg.freeze
    cfg = make_config("quick", tmp_path, tmp_path / "r", "b.pt", n_train=9, freeze=(), lr=3e-4)
    assert not cfg.cached_embeddings and cfg.lr == 3e-4
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("slow", tmp_path, tmp_path, "b.pt")


def test_new_domain_preset_leads_with_dice_and_draws_object_crops(tmp_path):
    new = make_config("quick_new_domain", tmp_path, tmp_path / "n", "b.pt", n_train=20)
    quick = make_config("quick", tmp_path, tmp_path / "q", "b.pt", n_train=20)
    assert new.cached_embeddings and "image_encoder" in new.freeze
    assert (new.focal_weight, new.dice_weight, quick.focal_weight) == (1.0, 1.0, 20.0)
    assert new.object_crop_prob == 0.5 and new.cached_crop_views > 0
    assert (new.steps, new.lr) == (300, 3e-4)


def test_quick_finetune_reuses_embeddings_and_scores_before_after(annotated, tmp_path):
    from sam_pets.predict import ImagePredictor

    base = build_model("test", seed=0)
    pred = ImagePredictor(base, device="cpu", precision="fp32")
    items = [
        AnnotatedImage(a.name, a.image, a.labels, a.source, pred.set_image(a.image))
        for a in annotated
    ]
    folder = new_job_folder(tmp_path, "quick", base.cfg.name)
    job = FinetuneJob(
        folder,
        base,
        items,
        preset="quick",
        overrides={"steps": 4, "val_every": 2, "lr": 1e-3},
        max_clicks=3,
    )
    records, res = run(job)
    kinds = [r.message for r in records]
    assert kinds[0] == "snapshot" and "before" in kinds and kinds[-1] == "after"
    assert kinds.count("train") == 4 and "val" in kinds
    start = next(r for r in records if r.message == "start")
    assert start.metrics["reused"] == 6  # no image was embedded again for training
    assert not any(r.message.startswith("caching") and r.metrics["computed"] for r in records)
    assert res.status == "done" and res.step == 4
    assert res.before.held_out and res.before.images == 1 and res.after.objects >= 1
    assert 0 <= res.after.miou_box <= 1 and 1 <= res.after.clicks_to_90 <= 3
    for name in ("data/dataset.json", "base.pt", "run/last.pt", "run/best.pt", "finetune.json"):
        assert (folder / name).is_file(), name
    info = json.loads((folder / "finetune.json").read_text())
    assert info["status"] == "done" and info["after"]["objects"] == res.after.objects
    # the decoder learned, the encoder (hence every cached embedding) is unchanged
    tuned = res.model.state_dict()
    start_sd = base.state_dict()
    assert all(torch.equal(tuned[k], v) for k, v in start_sd.items() if "image_encoder" in k)
    assert any(not torch.equal(tuned[k], v) for k, v in start_sd.items() if "mask_decoder" in k)


def test_cancel_keeps_checkpoint_and_resume_continues_exactly(annotated, tmp_path, monkeypatch):
    base = build_model("test", seed=0)
    overrides = {"steps": 5, "val_every": 0, "lr": 1e-3}
    _, whole = run(
        FinetuneJob(tmp_path / "whole", base, annotated, overrides=overrides, max_clicks=2)
    )

    job = FinetuneJob(tmp_path / "cut", base, annotated, overrides=overrides, max_clicks=2)
    gen, n_train = iter(job), 0
    while n_train < 2:
        n_train += next(gen).message == "train"
    job.stop()
    with pytest.raises(StopIteration) as stopped:
        while True:
            next(gen)
    cut = stopped.value.value
    assert cut.status == "cancelled" and cut.step == 2 and cut.after is None
    assert (tmp_path / "cut" / "run" / "last.pt").is_file()

    import sam_pets.train.finetune as ft

    loads = []
    monkeypatch.setattr(ft, "load_model", lambda p: loads.append(p) or load_model(p))
    job = FinetuneJob.resume(tmp_path / "cut")
    assert loads == []  # the start model loads in the job's own thread, not in resume()
    records, resumed = run(job)
    assert tmp_path / "cut" / "base.pt" in loads
    assert resumed.status == "done" and resumed.step == 5
    assert [r.step for r in records if r.message == "train"] == [3, 4, 5]
    assert resumed.before == cut.before  # not measured twice
    a = load_model(whole.checkpoint).state_dict()
    b = load_model(resumed.checkpoint).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_refuses_a_used_folder_and_empty_input(annotated, tmp_path):
    base = build_model("test", seed=0)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="never overwrite"):
        run(FinetuneJob(tmp_path / "used", base, annotated))
    assert (tmp_path / "used" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="nothing to train on"):
        FinetuneJob(tmp_path / "new", base)


@pytest.mark.parametrize("with_items", [False, True])
def test_a_malformed_dataset_folder_is_named_before_any_work(annotated, tmp_path, with_items):
    """A dataset folder alone once failed as 'no training images', after saving base.pt."""
    bad = tmp_path / "exported"
    bad.mkdir()
    (bad / "dataset.json").write_text("{ not json")
    job = FinetuneJob(
        tmp_path / "run",
        build_model("test", seed=0),
        annotated[:2] if with_items else (),
        dataset=bad,
    )
    with pytest.raises(ValueError, match="malformed .*dataset.json"):
        run(job)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
