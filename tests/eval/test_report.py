"""Evaluation report files and the report-folder rules."""

from __future__ import annotations

import csv
import json

import pytest

from sam_pets.data.errors import BadInputError
from sam_pets.eval.evaluate import EvalConfig, NamedModel, iter_evaluate
from sam_pets.eval.html import (
    REPORT_MANIFEST,
    check_report_dir,
    clear_report_dir,
    report_files,
    table,
)
from sam_pets.eval.report import write_eval_report
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


def test_report_dir_rules(synthetic_dataset, tmp_path):
    out = tmp_path / "rep"
    check_report_dir(out, overwrite=False)
    assert not out.exists()  # checking creates nothing
    res = run_job(iter_evaluate(_one_model(), synthetic_dataset, EvalConfig()), show=False)
    write_eval_report(res, clear_report_dir(out))
    written = set(report_files(out))
    assert {"index.html", "metrics.json", "per_image.csv", "grid_worst.png"} <= written
    assert {p.name for p in out.iterdir()} == written | {REPORT_MANIFEST}
    (out / "notes.txt").write_text("mine")
    (out / "holiday.png").write_text("mine")  # a user's picture: not in the manifest
    with pytest.raises(BadInputError, match="--overwrite"):
        check_report_dir(out, overwrite=False)
    check_report_dir(out, overwrite=True)
    clear_report_dir(out)
    assert sorted(p.name for p in out.iterdir()) == ["holiday.png", "notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="not a folder"):
        check_report_dir(tmp_path / "file", overwrite=True)


def test_folder_without_our_report_is_refused_even_with_overwrite(tmp_path):
    # once, any *.png, per_image.csv and examples/ in a folder without index.html were
    # deleted: a folder of the user's photos lost them
    photos = tmp_path / "photos"
    (photos / "examples").mkdir(parents=True)
    (photos / "my_vacation.png").write_bytes(b"png")
    (photos / "per_image.csv").write_text("mine")
    (photos / "examples" / "holiday_photo.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(BadInputError, match="holds no sam-pets report"):
            check_report_dir(photos, overwrite=overwrite)
    clear_report_dir(photos)  # without a manifest there is nothing of ours to remove
    assert (photos / "my_vacation.png").read_bytes() == b"png"
    assert (photos / "examples" / "holiday_photo.txt").read_text() == "mine"
    assert (photos / "per_image.csv").read_text() == "mine"


def test_manifest_cannot_point_outside_the_folder(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (tmp_path / "victim.txt").write_text("mine")
    (out / REPORT_MANIFEST).write_text(json.dumps({"files": ["../victim.txt"]}))
    with pytest.raises(BadInputError, match="not inside the folder"):
        check_report_dir(out, overwrite=True)
    with pytest.raises(BadInputError, match="not inside the folder"):
        clear_report_dir(out)
    (out / REPORT_MANIFEST).write_text("{broken")
    with pytest.raises(BadInputError, match="not a sam-pets report manifest"):
        check_report_dir(out, overwrite=True)
    assert (tmp_path / "victim.txt").read_text() == "mine"


def _one_model():
    return [NamedModel("m", FakePredictor(), {"source": "a.pt"})]


def test_table_escapes():
    html = table(["a<b"], [["<script>", 0.12345, None]])
    assert "&lt;script&gt;" in html and "0.123" in html and "\u2013" in html
