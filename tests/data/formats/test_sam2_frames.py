import numpy as np
import pytest

from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.formats import sam2_frames


def test_plain_sam2_folder_converts(tmp_path, oxford_dev_canonical):
    import shutil

    from sam_pets.data.convert import convert_sam2_folder
    from sam_pets.progress import run_job

    ds, _ = oxford_dev_canonical
    src = tmp_path / "meta"
    names = canon.read_list(ds, "val_tiny")[:3]
    for n in names:  # one single-frame video per pet, no manifest, no Ignore/
        shutil.copytree(ds / "JPEGImages" / n, src / "JPEGImages" / n)
        shutil.copytree(ds / "Annotations" / n, src / "Annotations" / n)
    video = src / "JPEGImages" / "clip"
    video.mkdir(parents=True)
    shutil.copy(canon.item_paths(ds, names[0]).image, video / "00000.jpg")
    shutil.copy(canon.item_paths(ds, names[1]).image, video / "00005.jpg")
    (src / "Annotations" / "clip").mkdir()
    shutil.copy(canon.item_paths(ds, names[0]).labels, src / "Annotations" / "clip" / "00000.png")
    frames = sam2_frames.find_frames(src)
    assert [f.name for f in frames if f.name.startswith("clip")] == ["clip_00000", "clip_00005"]
    summary = run_job(convert_sam2_folder(src, tmp_path / "out"), show=False)
    assert summary.converted == 4
    assert [(i.source.split("/")[-1], i.reason) for i in summary.skipped] == [
        ("00005.jpg", "no annotation PNG for this frame")
    ]
    recs = canon.items_by_name(canon.load_manifest(tmp_path / "out"))
    src_rec = canon.items_by_name(canon.load_manifest(ds))[names[2]]
    masks, _ = canon.read_masks(tmp_path / "out", recs[names[2]])
    want, _ = canon.read_masks(ds, src_rec)
    assert np.array_equal(masks, want)


def test_find_frames_needs_jpegimages(tmp_path):
    with pytest.raises(FileNotFoundError):
        sam2_frames.find_frames(tmp_path)
