"""The weight average: its arithmetic, the swap, and a run that keeps one (ema.pt, resume)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from sam_pets.model import load_model, read_checkpoint
from sam_pets.train.ema import WeightAverage
from sam_pets.train.loop import TrainJob, fit


def _net():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    net[1].weight.requires_grad_(False)  # frozen: not averaged
    return net


def test_average_follows_the_weights_with_the_warmed_up_decay():
    net = _net()
    w0 = net[0].weight.detach().clone()
    ema = WeightAverage(net, 0.9)
    assert ema.names == ["0.weight", "0.bias", "1.bias"]
    steps = [w0 + 1.0, w0 + 3.0, w0 + 2.0]
    expect = w0.clone()
    for t, w in enumerate(steps):
        with torch.no_grad():
            net[0].weight.copy_(w)
        ema.update(net)
        d = min(0.9, (1 + t) / (10 + t))  # 0.1, 2/11, 3/12
        expect = d * expect + (1 - d) * w
    torch.testing.assert_close(ema.average[0], expect)
    assert ema.updates == 3


def test_swapped_in_holds_the_average_then_puts_the_weights_back():
    net = _net()
    ema = WeightAverage(net, 0.5)
    with torch.no_grad():
        net[0].weight.add_(10.0)
    mine = net[0].weight.detach().clone()
    ema.update(net)
    with ema.swapped_in(net):
        torch.testing.assert_close(net[0].weight, ema.average[0])
        assert not torch.equal(net[0].weight, mine)
    assert torch.equal(net[0].weight, mine)
    with pytest.raises(RuntimeError), ema.swapped_in(net):  # restored on errors too
        raise RuntimeError("boom")
    assert torch.equal(net[0].weight, mine)


def test_state_round_trip_and_a_foreign_state_is_refused():
    net = _net()
    ema = WeightAverage(net, 0.99)
    ema.update(net)
    other = WeightAverage(_net(), 0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.average[0], ema.average[0])
    with pytest.raises(ValueError, match="other parameters"):
        WeightAverage(nn.Linear(3, 3), 0.99).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, 1.0)


def test_a_run_with_ema_validates_and_saves_the_average(make_cfg):
    res = fit(make_cfg(steps=3, val_every=3, ema_decay=0.5))
    val = res.last_val
    for k in ("val_ema_miou", "val_ema_iou_box", "val_ema_iou_click"):
        assert 0 <= val[k] <= 1
    assert "val_ema_objects" not in val
    assert res.ema_checkpoint == res.run_dir / "ema.pt"
    averaged, last = load_model(res.ema_checkpoint), load_model(res.last_checkpoint)
    key = "sam_mask_decoder.output_upscaling.0.weight"
    assert not torch.equal(averaged.state_dict()[key], last.state_dict()[key])
    assert read_checkpoint(res.ema_checkpoint).metadata["train"]["step"] == 3


def test_a_run_without_ema_writes_no_average(make_cfg):
    res = fit(make_cfg(steps=1))
    assert res.ema_checkpoint is None and "val_ema_miou" not in (res.last_val or {})


def test_stop_then_resume_keeps_the_average_exact(make_cfg, tmp_path):
    kw = dict(steps=4, ema_decay=0.7)
    ref = fit(make_cfg(out=str(tmp_path / "a"), **kw))
    job = TrainJob(make_cfg(out=str(tmp_path / "b"), **kw))
    for rec in job:
        if rec.message == "train" and rec.step == 2:
            job.stop()
    res = fit(make_cfg(out=str(tmp_path / "b"), **kw), resume=True)
    a = load_model(ref.ema_checkpoint).state_dict()
    b = load_model(res.ema_checkpoint).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("val_ema_miou" in r for r in recs)
