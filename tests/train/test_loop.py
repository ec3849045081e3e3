"""iter_fit end to end: progress records, run directory, stop/cancel, exact resume, freezing."""

from __future__ import annotations

import json

import pytest
import torch

from sam_pets.model import build_model, load_model, read_checkpoint
from sam_pets.progress import Progress
from sam_pets.train.loop import TrainJob, fit, iter_fit


def _losses(run_dir):
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def test_iter_fit_yields_progress_and_writes_the_run(make_cfg):
    cfg = make_cfg(steps=4, val_every=2)
    gen = iter_fit(cfg)
    recs = []
    with pytest.raises(StopIteration) as stop:
        while True:
            recs.append(next(gen))
    res = stop.value.value
    assert all(isinstance(r, Progress) and r.total == 4 for r in recs)
    train = [r for r in recs if r.message == "train"]
    assert [r.step for r in train] == [1, 2, 3, 4]
    for key in ("epoch", "loss", "focal", "dice", "iou", "cls", "lr", "images_per_s", "eta_s"):
        assert key in train[0].metrics
    vals = [r for r in recs if r.message == "val"]
    assert [r.step for r in vals] == [2, 4] and 0 <= vals[0].metrics["val_miou"] <= 1
    run = res.run_dir
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "loss.png",
        "val.png",
        "last.pt",
        "best.pt",
        "state.pt",
    ):
        assert (run / name).is_file(), name
    assert res.status == "done" and res.step == 4 and res.best_step in (2, 4)
    meta = read_checkpoint(run / "last.pt").metadata
    assert meta["train"]["step"] == 4 and meta["config"]["name"] == "test"
    with pytest.raises(FileExistsError, match="--resume"):
        next(iter_fit(cfg))


def test_stop_then_resume_reproduces_the_uninterrupted_run(make_cfg, tmp_path):
    kw = dict(steps=6, augment=True)  # 8 tiny items / batch 2: crosses an epoch boundary
    ref = fit(make_cfg(out=str(tmp_path / "a"), **kw))
    job = TrainJob(make_cfg(out=str(tmp_path / "b"), **kw))
    for rec in job:
        if rec.message == "train" and rec.step == 3:
            job.stop()
    assert job.stop_requested
    stopped = load_model(tmp_path / "b" / "last.pt")  # cancelling leaves a loadable last.pt
    assert read_checkpoint(tmp_path / "b" / "last.pt").metadata["train"]["step"] == 3
    assert stopped.cfg.name == "test"
    res = fit(make_cfg(out=str(tmp_path / "b"), **kw), resume=True)
    assert res.step == 6 and res.status == "done"
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert a == b  # every step, including those after the resume, bit for bit
    for (k, va), vb in zip(
        ref.model.state_dict().items(), res.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k


def test_cancel_inside_a_step_drops_it_and_resume_is_exact(make_cfg, tmp_path, monkeypatch):
    """A stop request between two decoder rounds ends the run without finishing the step."""
    from sam_pets.train.device import Runtime

    kw = dict(steps=5, augment=True)
    ref = fit(make_cfg(out=str(tmp_path / "a"), **kw))
    job = TrainJob(make_cfg(out=str(tmp_path / "b"), **kw))
    armed, rounds = [False], []
    backward = Runtime.backward

    def stopping_backward(self, loss):
        backward(self, loss)
        if armed[0]:
            rounds.append(1)
            job.stop()  # during the first round of step 3

    monkeypatch.setattr(Runtime, "backward", stopping_backward)
    steps = []
    for rec in job:
        if rec.message == "train":
            steps.append(rec.step)
            armed[0] = rec.step == 2
    monkeypatch.setattr(Runtime, "backward", backward)
    assert steps == [1, 2] and len(rounds) == 1  # step 3 stopped after its first round
    assert read_checkpoint(tmp_path / "b" / "last.pt").metadata["train"]["step"] == 2
    res = fit(make_cfg(out=str(tmp_path / "b"), **kw), resume=True)
    assert res.step == 5 and res.status == "done"
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    for (k, va), vb in zip(
        ref.model.state_dict().items(), res.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k


def _records(run_dir):
    timing = {"images_per_s", "eta_s", "step_time"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]


@pytest.mark.parametrize("at", [2, 4])
def test_ctrl_c_inside_a_validation_then_resume_is_exact(make_cfg, tmp_path, monkeypatch, at):
    """A resumed run once skipped the validation that Ctrl-C cut short (and its best.pt)."""
    from sam_pets.train.trainer import Trainer

    kw = dict(steps=4, val_every=2)
    ref = fit(make_cfg(out=str(tmp_path / "a"), **kw))
    validate = Trainer.validate

    def interrupted(self):
        if self.step == at:
            raise KeyboardInterrupt
        return validate(self)

    monkeypatch.setattr(Trainer, "validate", interrupted)
    cfg = make_cfg(out=str(tmp_path / "b"), **kw)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg)
    monkeypatch.undo()
    res = fit(cfg, resume=True)
    assert _records(tmp_path / "b") == _records(tmp_path / "a")
    assert (res.step, res.best_step, res.best_val_miou) == (4, ref.best_step, ref.best_val_miou)
    best_a, best_b = (read_checkpoint(tmp_path / r / "best.pt").image_state for r in "ab")
    assert all(torch.equal(v, best_b[k]) for k, v in best_a.items())


def test_closing_the_generator_saves_last(make_cfg):
    cfg = make_cfg(steps=5)
    gen = iter_fit(cfg)
    recs = [next(gen) for _ in range(3)]  # start, step 1, step 2
    assert recs[-1].step == 2
    gen.close()
    last = read_checkpoint(f"{cfg.out}/last.pt")
    assert last.metadata["train"]["step"] == 2


def test_failure_before_the_first_step_removes_the_new_run(make_cfg, monkeypatch):
    from pathlib import Path

    from sam_pets.train.trainer import Trainer

    def broken_step(self, batches, stop=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Trainer, "train_step", broken_step)
    cfg = make_cfg(steps=2)
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(cfg)
    assert not Path(cfg.out).exists()  # nothing blocks running the same command again
    monkeypatch.undo()
    assert fit(cfg).status == "done"


@pytest.mark.parametrize("what", ["loss", "grad"])
def test_a_diverging_run_stops_and_keeps_the_last_finite_step(
    make_cfg, tmp_path, monkeypatch, what
):
    """A NaN loss once went on to NaN weights in last.pt/best.pt and a "done" status."""
    from sam_pets.train import trainer as trainer_mod
    from sam_pets.train.step import NonFiniteLoss

    kw = dict(steps=3, val_every=1)
    ref = fit(make_cfg(out=str(tmp_path / "a"), **kw))
    real, calls = trainer_mod.batch_loss, []

    def diverging(model, *a, **k):
        bl = real(model, *a, **k)
        calls.append(1)
        if len(calls) == 2:  # step 2
            if what == "loss":
                bl.loss = float("nan")
            else:
                next(p for p in model.parameters() if p.grad is not None).grad[0] = torch.inf
        return bl

    monkeypatch.setattr(trainer_mod, "batch_loss", diverging)
    cfg = make_cfg(out=str(tmp_path / "b"), **kw)
    name = "the loss is nan" if what == "loss" else "the gradient norm is"
    with pytest.raises(NonFiniteLoss, match=f"{name}.* at step 2; .*hold step 1"):
        fit(cfg)
    run = tmp_path / "b"
    assert read_checkpoint(run / "last.pt").metadata["train"]["step"] == 1
    assert max(_losses(run)) == 1
    last = load_model(run / "last.pt").state_dict()
    assert all(torch.isfinite(v).all() for v in last.values())
    monkeypatch.undo()  # the saved state is exactly that of step 1: resuming is exact
    res = fit(cfg, resume=True)
    assert res.step == 3 and _losses(run) == _losses(tmp_path / "a")
    for (k, va), vb in zip(
        ref.model.state_dict().items(), res.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k


def test_divergence_at_the_first_step_leaves_no_run(make_cfg, monkeypatch):
    from pathlib import Path

    from sam_pets.train import trainer as trainer_mod
    from sam_pets.train.step import NonFiniteLoss

    real = trainer_mod.batch_loss

    def nan_loss(*a, **k):
        bl = real(*a, **k)
        bl.loss = float("inf")
        return bl

    monkeypatch.setattr(trainer_mod, "batch_loss", nan_loss)
    cfg = make_cfg(steps=2)
    with pytest.raises(NonFiniteLoss, match="the loss is inf at step 1; .*nothing was kept"):
        fit(cfg)
    assert not Path(cfg.out).exists()


def test_frozen_parts_stay_bit_identical(make_cfg):
    cfg = make_cfg(steps=2, freeze=("image_encoder", "prompt_encoder"))
    res = fit(cfg)
    init = build_model("test", seed=cfg.seed).state_dict()
    saved = load_model(res.last_checkpoint).state_dict()
    frozen = [
        k for k in init if k.startswith(("image_encoder.", "sam_prompt_encoder.", "no_mem_embed"))
    ]
    assert frozen and all(torch.equal(init[k], saved[k]) for k in frozen)
    dec = [k for k in init if k.startswith("sam_mask_decoder.") and "weight" in k]
    assert any(not torch.equal(init[k], saved[k]) for k in dec)


def test_lora_run_saves_plain_weights(make_cfg):
    cfg = make_cfg(steps=2, lora_rank=2, lr=1e-2)
    res = fit(cfg)
    model = load_model(res.last_checkpoint)  # strict load: no adapter keys left
    init = build_model("test", seed=cfg.seed).state_dict()
    qkv = "image_encoder.trunk.blocks.0.attn.qkv.weight"
    assert not torch.equal(model.state_dict()[qkv], init[qkv])
    norm = "image_encoder.trunk.blocks.0.norm1.weight"
    assert torch.equal(model.state_dict()[norm], init[norm])


@pytest.mark.parametrize("freeze", [(), ("image_encoder",)])
def test_bf16_autocast_runs_on_cpu(make_cfg, freeze):
    res = fit(make_cfg(steps=1, precision="bf16", freeze=freeze, val_split="val_tiny", val_items=2))
    assert res.status == "done" and 0 <= res.last_val["val_miou"] <= 1


def test_fine_tune_a_checkpoint_at_another_resolution(make_cfg, tmp_path):
    from sam_pets.model import save_checkpoint

    start = save_checkpoint(build_model("test", seed=3), tmp_path / "start.pt")
    res = fit(
        make_cfg(
            model_config=None,
            checkpoint=str(start),
            resolution=96,
            steps=1,
            val_split="val_tiny",
            val_items=2,
        )
    )
    model = load_model(res.last_checkpoint)
    assert model.cfg.image_size == 96 and res.model.cfg.image_size == 96
    init = build_model("test", seed=3).state_dict()
    key = "image_encoder.trunk.pos_embed"  # same weights, interpolated to the new grid
    assert model.state_dict()[key].shape == init[key].shape


def test_cached_run_reports_caching_first(make_cfg):
    cfg = make_cfg(steps=2, freeze=("image_encoder",), cached_embeddings=True, val_every=1)
    recs = list(TrainJob(cfg))
    msgs = [r.message for r in recs]
    assert msgs[0] == "start" and msgs[1] == "caching train features"
    caching = [r for r in recs if r.message.startswith("caching")]
    assert caching[-1].message == "caching val features" and caching[-1].step == 4
    assert [r.step for r in recs if r.message == "train"] == [1, 2]
    assert read_checkpoint(f"{cfg.out}/best.pt").metadata["train"]["best_step"] in (1, 2)


def test_stop_during_caching_cancels_before_any_step(make_cfg):
    cfg = make_cfg(steps=3, freeze=("image_encoder",), cached_embeddings=True)
    job = TrainJob(cfg)
    gen = iter(job)
    with pytest.raises(StopIteration) as end:
        while True:
            if next(gen).message.startswith("caching"):
                job.stop()
    res = end.value.value
    assert res.status == "cancelled" and res.step == 0
    assert read_checkpoint(f"{cfg.out}/last.pt").metadata["train"]["step"] == 0


def test_grad_accumulation_matches_a_bigger_batch(make_cfg, tmp_path):
    def first_step(out, **kw):
        fit(make_cfg(out=str(tmp_path / out), steps=1, augment=False, **kw))
        return json.loads((tmp_path / out / "metrics.jsonl").read_text().splitlines()[0])

    big = first_step("big", batch_size=2, grad_accum=1)
    acc = first_step("acc", batch_size=1, grad_accum=2)
    assert acc["objects"] == big["objects"] == 2
    assert acc["loss"] == pytest.approx(big["loss"], rel=1e-5)
    assert acc["grad_norm"] == pytest.approx(big["grad_norm"], rel=1e-4)


def test_unreadable_items_are_skipped_when_the_run_starts(tmp_path_factory, make_cfg):
    import shutil

    from conftest import convert_pets_dev
    from sam_pets.data.errors import BadInputError
    from sam_pets.data.formats import sam2_folder as canon

    root = convert_pets_dev(tmp_path_factory, tiny=10)
    train = canon.read_list(root, "train")
    canon.item_paths(root, train[0]).labels.write_text("not a png")
    canon.item_paths(root, train[2]).image.unlink()
    cfg = make_cfg(dataset=str(root), train_split="train", val_split="val", steps=1)
    recs, res = [], None
    gen = iter_fit(cfg)
    with pytest.raises(StopIteration) as stop:
        while True:
            recs.append(next(gen))
    res = stop.value.value
    notices = [r.notice for r in recs if r.notice]
    assert len(notices) == 2 and recs[0].message == "skipped" and recs[2].message == "start"
    assert notices[0].startswith(f"skipped item {train[0]!r}: cannot read its files")
    assert notices[1] == f"skipped item {train[2]!r}: image file missing: " + str(
        canon.item_paths(root, train[2]).image
    )
    assert res.status == "done" and res.step == 1
    assert [i.source for i in res.skipped] == [train[0], train[2]]
    broken = tmp_path_factory.mktemp("bad") / "ds"
    shutil.copytree(root, broken)
    for name in train:
        canon.item_paths(broken, name).image.unlink(missing_ok=True)
    cfg = make_cfg(dataset=str(broken), train_split="train", out=str(broken.parent / "run"))
    with pytest.raises(BadInputError, match=f"none of the {len(train)} items can be read"):
        next(iter_fit(cfg))
