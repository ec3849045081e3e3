import json
import os
from pathlib import Path

import pytest

from sam_pets.cli import main
from sam_pets.data.formats import sam2_folder as canon

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

SHARED_DATA = (
    Path(os.environ["SAM_PETS_SHARED"]) / "data"
    if os.environ.get("SAM_PETS_SHARED")
    else Path(__file__).resolve().parents[2].parent / "shared" / "data"
)


def data_path(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "--help"],
        ["convert", "oxford-pets", "--help"],
        ["convert", "coco", "--help"],
        ["convert", "labelme", "--help"],
        ["convert", "labels", "--help"],
        ["convert", "sam2", "--help"],
        ["export", "coco", "--help"],
    ],
)
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0 and "usage" in capsys.readouterr().out


def test_convert_oxford_tiny_then_export_coco(tmp_path, capsys):
    src = data_path("oxford_pets_dev")
    out = tmp_path / "pets ds"
    assert (
        main(
            [
                "convert",
                "oxford-pets",
                str(src),
                str(out),
                "--tiny",
                "5",
                "--seed",
                "3",
                "--val-fraction",
                "0.4",
                "-q",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "converted 5, skipped 0" in text and "train 3, val 2" in text
    assert len(canon.load_manifest(out)["items"]) == 5
    assert main(["convert", "oxford-pets", str(src), str(out), "--tiny", "5"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", "sam2", str(out), str(tmp_path / "again"), "-q"]) == 0
    assert "converted 5, skipped 0" in capsys.readouterr().out
    coco = tmp_path / "c.json"
    assert main(["export", "coco", str(out), str(coco)]) == 0
    assert len(json.loads(coco.read_text())["annotations"]) == 5
    assert main(["export", "coco", str(out), str(coco)]) == 2
    assert main(["export", "coco", str(out), str(coco), "--overwrite", "--polygons", "-q"]) == 0
    assert isinstance(json.loads(coco.read_text())["annotations"][0]["segmentation"], list)


def test_export_skips_an_unreadable_item(tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        main(
            [
                "convert",
                "oxford-pets",
                str(data_path("oxford_pets_dev")),
                str(out),
                "-q",
                "--tiny",
                "3",
            ]
        )
        == 0
    )
    bad = sorted(canon.items_by_name(canon.load_manifest(out)))[1]
    canon.item_paths(out, bad).labels.write_text("not a png")
    capsys.readouterr()
    assert main(["export", "coco", str(out), str(tmp_path / "c.json"), "-q"]) == 1
    captured = capsys.readouterr()
    assert "exported 2 images, skipped 1" in captured.out
    assert f"skipped item {bad!r}: cannot read its files" in captured.err
    assert len(json.loads((tmp_path / "c.json").read_text())["images"]) == 2


def test_convert_coco_and_labelme(tmp_path, capsys):
    coco = data_path("coco_sample")
    assert (
        main(
            [
                "convert",
                "coco",
                str(coco / "annotations.json"),
                str(coco / "images"),
                str(tmp_path / "c"),
                "--tiny",
                "2",
                "-q",
            ]
        )
        == 0
    )
    assert (
        main(["convert", "labelme", str(data_path("labelme_sample")), str(tmp_path / "l"), "-q"])
        == 0
    )
    out = capsys.readouterr().out
    assert "converted 2" in out and "converted 3" in out


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["convert", "oxford-pets", str(tmp_path / "nope"), str(tmp_path / "o")]) == 2
    assert "no Oxford-IIIT Pet trimaps" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert (
        main(["convert", "coco", str(tmp_path / "bad.json"), str(tmp_path), str(tmp_path / "o2")])
        == 2
    )
    assert "malformed JSON" in capsys.readouterr().err
    assert (
        main(["convert", "labelme", str(tmp_path), str(tmp_path / "o3"), "--val-fraction", "2"])
        == 2
    )
    assert main(["export", "coco", str(tmp_path), str(tmp_path / "x.json")]) == 2
    assert "not a sam-pets dataset" in capsys.readouterr().err


def test_nothing_converted_exits_1(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.json").write_text("[]")
    assert main(["convert", "labelme", str(tmp_path / "src"), str(tmp_path / "o"), "-q"]) == 1
    assert "skipped 1" in capsys.readouterr().out


def test_convert_label_images(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    (tmp_path / "im").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "im" / "x.jpg")
    lab = np.zeros((4, 5), np.uint8)
    lab[1:3, 1:3] = 2
    Image.fromarray(lab).save(tmp_path / "lab" / "x.png")
    argv = ["convert", "labels", str(tmp_path / "im"), str(tmp_path / "lab"), str(tmp_path / "o")]
    assert main([*argv, "-q"]) == 0
    assert "converted 1" in capsys.readouterr().out


def test_missing_coco_image_folder_is_one_error(tmp_path, capsys):
    coco = data_path("coco_sample")
    out = tmp_path / "out"
    argv = ["convert", "coco", str(coco / "annotations.json"), str(tmp_path / "nosuch"), str(out)]
    assert main([*argv, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sam-pets convert: error: image folder not found: {tmp_path / 'nosuch'}"]
    assert not out.exists()


def test_empty_labelme_folder_is_one_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert main(["convert", "labelme", str(tmp_path / "empty"), str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sam-pets convert: error: no LabelMe .json files in {tmp_path / 'empty'}"]
    assert not out.exists()


def test_export_coco_onto_a_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "lm"
    (folder / "JPEGImages").mkdir(parents=True)
    assert main(["export", "coco", str(folder), str(folder), "--overwrite", "-q"]) == 2
    err = capsys.readouterr().err
    assert "lm is a folder" in err and "Traceback" not in err
    assert (folder / "JPEGImages").is_dir()


def test_empty_image_folder_of_labels_is_one_error(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    (tmp_path / "im").mkdir()
    (tmp_path / "lab").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.ones((4, 5), np.uint8)).save(tmp_path / "lab" / f"{name}.png")
    out = tmp_path / "out"
    argv = ["convert", "labels", str(tmp_path / "im"), str(tmp_path / "lab"), str(out), "-q"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"sam-pets convert: error: no images in {tmp_path / 'im'}"
    ]
    assert "skipped" not in captured.out
    assert not out.exists()


def test_empty_coco_image_folder_is_one_error(tmp_path, capsys):
    coco = data_path("coco_sample")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    argv = ["convert", "coco", str(coco / "annotations.json"), str(tmp_path / "empty"), str(out)]
    assert main([*argv, "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"sam-pets convert: error: image folder is empty: {tmp_path / 'empty'}"
    ]
    assert "skipped" not in captured.out
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "coco", "{missing}", "{tmp}/x.json", "-q"],
        ["merge", "{tmp}/m", "{missing}"],
        ["train", "{missing}", "--out", "{tmp}/run", "--config", "test", "--steps", "1", "--quiet"],
    ],
)
def test_missing_dataset_folder_is_named_as_missing(tmp_path, capsys, argv):
    missing = tmp_path / "nosuch"
    assert main([a.format(missing=missing, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"dataset folder not found: {missing}"), err
