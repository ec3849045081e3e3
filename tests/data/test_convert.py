import numpy as np
import tifffile
from PIL import Image

from sam_pets.data.convert import ConvertConfig, convert_label_images
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.formats.label_images import write_label_image
from sam_pets.progress import Progress


def _drive(job):
    records = []
    try:
        while True:
            records.append(next(job))
    except StopIteration as stop:
        return records, stop.value


def test_label_images_convert_and_report(tmp_path):
    imgs, labs = tmp_path / "images", tmp_path / "labels"
    imgs.mkdir()
    labs.mkdir()
    lab = np.zeros((12, 16), np.uint16)
    lab[2:6, 2:6] = 4
    lab[7:11, 8:15] = 9
    for name in ("a", "b", "c", "d", "e", "g"):
        Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(imgs / f"{name}.png")
    write_label_image(labs / "a.png", lab)
    write_label_image(labs / "b.tif", lab[None])
    write_label_image(labs / "c.tif", np.stack([lab, lab]))
    write_label_image(labs / "d.png", np.zeros_like(lab))
    write_label_image(labs / "e.png", lab[:, :10])
    write_label_image(labs / "f.png", lab)
    tifffile.imwrite(labs / "g.tif", lab.astype(np.float32))
    records, summary = _drive(
        convert_label_images(imgs, labs, tmp_path / "out", ConvertConfig(workers=1))
    )
    assert all(isinstance(r, Progress) for r in records) and records[-1].step == 7
    assert records[-1].total == 7 and summary.converted == 2
    reasons = {i.source.split("/")[-1]: i.reason for i in summary.skipped}
    assert "only 2-D" in reasons["c.tif"] and "empty" in reasons["d.png"]
    assert "16x12" in reasons["e.png"] and "10x12" in reasons["e.png"]
    assert "no image" in reasons["f.png"] and "integer" in reasons["g.tif"]
    rec = canon.items_by_name(canon.load_manifest(tmp_path / "out"))["a"]
    masks, _ = canon.read_masks(tmp_path / "out", rec)
    assert [o["id"] for o in rec["objects"]] == [4, 9]
    assert np.array_equal(masks[0], lab == 4) and np.array_equal(masks[1], lab == 9)


def test_jobs_do_nothing_until_driven(tmp_path):
    from sam_pets.data.convert import convert_coco, convert_labelme, convert_oxford_pets

    jobs = [
        convert_oxford_pets(tmp_path / "a", tmp_path / "o"),
        convert_coco(tmp_path / "a.json", tmp_path, tmp_path / "o"),
        convert_labelme(tmp_path / "a", tmp_path / "o"),
    ]
    assert not (tmp_path / "o").exists()
    for job in jobs:
        try:
            next(job)
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("expected FileNotFoundError")
