import numpy as np
import pytest

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.imaging import CanonicalImage, encode_jpeg
from sam_pets.data.pipeline import ConvertConfig, Task, run_conversion
from sam_pets.data.types import Annotation, ObjectInfo
from sam_pets.progress import run_job


def _task(name, fail=None):
    def load():
        if fail:
            raise fail
        masks = np.zeros((1, 4, 5), bool)
        masks[0, 1:3, 1:3] = True
        img = CanonicalImage(encode_jpeg(np.zeros((4, 5, 3), np.uint8)), (4, 5))
        return Annotation(name, masks, (ObjectInfo(1, "x"),)), img, {"k": 1}, ["hello"]

    return Task(f"src/{name}", name, "", load)


def test_engine_reports_and_renames(tmp_path):
    tasks = [_task("a b"), _task("a_b"), _task("boom", RuntimeError("disk on fire")), _task("c")]
    summary = run_job(run_conversion(tasks, tmp_path / "o", ConvertConfig(workers=2)), show=False)
    assert summary.converted == 3
    assert summary.skipped[0].reason == "unexpected error: RuntimeError: disk on fire"
    notes = {i.source: i.reason for i in summary.notes}
    assert notes["src/a b"] == "hello; stored as 'a_b'"
    assert notes["src/a_b"] == "hello; stored as 'a_b_2'"
    recs = canon.items_by_name(canon.load_manifest(tmp_path / "o"))
    assert sorted(recs) == ["a_b", "a_b_2", "c"] and recs["c"]["k"] == 1
    assert sum(summary.splits.values()) == 3


def test_nothing_converted_leaves_no_dataset(tmp_path):
    tasks = [_task("a", RuntimeError("bad")), _task("b", RuntimeError("worse"))]
    summary = run_job(run_conversion(tasks, tmp_path / "o", ConvertConfig(workers=1)), show=False)
    assert summary.converted == 0 and len(summary.skipped) == 2
    assert not (tmp_path / "o").exists()
    assert "no dataset written" in summary.format()
    with pytest.raises(BadInputError, match="nothing to convert"):
        run_job(run_conversion([], tmp_path / "p", ConvertConfig()), show=False)
    assert not (tmp_path / "p").exists()
