import numpy as np

from sam_pets.data.types import Annotation, ConvertSummary, FileIssue, ObjectInfo, as_metadata


def test_summary_format_caps_lines():
    issues = tuple(FileIssue(f"f{i}", "bad") for i in range(30))
    text = ConvertSummary("out", 5, issues, issues[:2], {"train": 4, "val": 1}).format(10)
    assert text.splitlines()[0] == "converted 5, skipped 30 -> out"
    assert "train 4, val 1" in text and "... and 20 more skipped lines" in text
    assert text.count("  note ") == 2


def test_annotation_properties_and_metadata():
    from pathlib import Path

    ann = Annotation("a", np.zeros((2, 3, 4), bool), (ObjectInfo(1), ObjectInfo(5)))
    assert ann.size_hw == (3, 4) and ann.object_ids == (1, 5)
    assert as_metadata({"p": Path("/x"), "n": np.int64(3), "l": (1, Path("y"))}) == {
        "p": "/x",
        "n": 3,
        "l": [1, "y"],
    }
