"""Two CPU processes with gloo: identical weights on both ranks and one run directory."""

from __future__ import annotations

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sam_pets.model import load_model
from sam_pets.train.config import TrainConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, cfg: dict, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from sam_pets.train.loop import fit

    res = fit(TrainConfig.from_dict(cfg))
    torch.save(res.model.state_dict(), f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_process_gloo_run_agrees(make_cfg, tmp_path):
    cfg = make_cfg(steps=3, val_every=2, out=str(tmp_path / "run"))
    mp.spawn(_worker, args=(2, cfg.to_dict(), _free_port(), str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    saved = load_model(tmp_path / "run" / "last.pt").state_dict()
    assert all(torch.equal(saved[k], w0[k]) for k in saved)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == sorted(
        ["best.pt", "config.yaml", "last.pt", "loss.png", "metrics.jsonl", "state.pt", "val.png"]
    )
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3]  # rank 0 logs, once
    assert recs[0]["objects"] == 2  # each rank's own batch of 2 images
