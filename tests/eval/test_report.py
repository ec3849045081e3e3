"""Evaluation report files and the report-folder rules."""

from __future__ import annotations

import csv
import json

import pytest

from sam_pets.data.errors import BadInputError
from sam_pets.eval.evaluate import EvalConfig, NamedModel, iter_evaluate
from sam_pets.eval.html import check_report_dir, clear_report_dir, table
from sam_pets.eval.report import EVAL_FILES, write_eval_report
from sam_pets.progress import run_job

from .conftest import FakePredictor


def test_eval_report_files(synthetic_dataset, tmp_path):
    models = [
        NamedModel("before", FakePredictor(), {"source": "a.pt"}),
        NamedModel("after", FakePredictor(), {"source": "b.pt"}),
    ]
    res = run_job(iter_evaluate(models, synthetic_dataset, EvalConfig(max_clicks=3)), show=False)
    out = tmp_path / "rep"
    index = write_eval_report(res, out)
    page = index.read_text()
    for needle in (
        "before",
        "after",
        "3-cat mIoU",
        "NoC@85",
        "grid_worst.png",
        "per_image.csv",
        "miou_at_k.png",
        "per_breed.png",
        "grid_changed.png",
    ):
        assert needle in page
    for name in (
        "grid_worst.png",
        "grid_best.png",
        "grid_changed.png",
        "protocols.png",
        "miou_at_k.png",
        "per_breed.png",
    ):
        assert (out / name).stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["results"]["after"]["box"]["miou"] == 1.0
    assert len(metrics["results"]["before"]["clicks"]["miou_at_k"]) == 3
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 5 * 4  # models x protocols x objects
    assert {r["protocol"] for r in rows} == {"box", "box-jitter", "center", "random", "clicks"}


def test_report_dir_rules(tmp_path):
    out = tmp_path / "rep"
    check_report_dir(out, overwrite=False)
    assert not out.exists()  # checking creates nothing
    clear_report_dir(out, EVAL_FILES)
    (out / "index.html").write_text("old")
    (out / "old.png").write_text("x")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="--overwrite"):
        check_report_dir(out, overwrite=False)
    check_report_dir(out, overwrite=True)
    clear_report_dir(out, EVAL_FILES)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="not a folder"):
        check_report_dir(tmp_path / "file", overwrite=True)


def test_table_escapes():
    html = table(["a<b"], [["<script>", 0.12345, None]])
    assert "&lt;script&gt;" in html and "0.123" in html and "\u2013" in html
