"""``sam-pets eval`` and ``sam-pets robustness`` in-process on real pet images (test config)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import convert_pets_dev
from sam_pets.cli import main
from sam_pets.data.formats import sam2_folder as canon


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return convert_pets_dev(tmp_path_factory, tiny=4)


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_compare_end_to_end(dataset, tmp_path, capsys):
    out = tmp_path / "rep"
    args = [
        "eval",
        str(dataset),
        "--config",
        "test",
        "--compare",
        "random:test",
        "--limit",
        "3",
        "--max-clicks",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    summary = _last_json(capsys)
    assert summary["images"] == 3
    assert set(summary["results"]) == {"random:test", "random:test (2)"}
    a, b = summary["results"].values()
    assert a == b  # the same seed-0 weights under both names: identical numbers
    assert 0 <= a["box"]["miou"] <= 1 and 1 <= a["clicks"]["noc85"] <= 20
    assert a["center"]["miou_3cat"] is not None
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 3 and metrics["config"]["max_clicks"] == 3
    for name in (
        "index.html",
        "per_image.csv",
        "grid_worst.png",
        "grid_best.png",
        "grid_changed.png",
        "miou_at_k.png",
        "per_breed.png",
        "protocols.png",
    ):
        assert (out / name).is_file(), name
    # a second run refuses to replace the report unless told to
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    args_one = [
        "eval",
        str(dataset),
        "--config",
        "test",
        "--limit",
        "1",
        "--prompt",
        "center",
        "--out",
        str(out),
        "--overwrite",
        "--quiet",
    ]
    assert main(args_one) == 0
    assert set(_last_json(capsys)["results"]["random:test"]) == {"center"}
    assert not (out / "miou_at_k.png").exists()  # the old report's files are gone


def test_eval_and_robustness_never_delete_a_users_files(dataset, tmp_path, capsys):
    # a folder of photos (no report of ours) is refused, with or without --overwrite
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "my_vacation.png").write_bytes(b"png")
    (photos / "cat.jpg").write_bytes(b"jpg")
    common = ["--config", "test", "--limit", "1", "--quiet"]
    for extra in ([], ["--overwrite"]):
        argv = ["eval", str(dataset), *common, "--prompt", "box", "--out", str(photos), *extra]
        assert main(argv) == 2
        assert "holds no sam-pets report" in capsys.readouterr().err
    assert sorted(p.name for p in photos.iterdir()) == ["cat.jpg", "my_vacation.png"]
    # a user's file put into an earlier report's folder survives --overwrite
    rob = tmp_path / "rob"
    argv = ["robustness", str(dataset), *common, "--levels", "2", "--out", str(rob)]
    argv += ["--perturbation", "occlusion"]
    assert main(argv) == 0
    (rob / "examples" / "holiday_photo.txt").write_text("mine")
    (rob / "per_image.csv").write_text("mine")
    assert main([*argv, "--overwrite"]) == 0
    assert (rob / "examples" / "holiday_photo.txt").read_text() == "mine"
    assert (rob / "per_image.csv").read_text() == "mine"
    assert (rob / "examples" / "occlusion.png").is_file()


def test_robustness_fewer_levels(dataset, tmp_path, capsys):
    out = tmp_path / "rob"
    args = [
        "robustness",
        str(dataset),
        "--config",
        "test",
        "--levels",
        "2",
        "--limit",
        "1",
        "--prompt",
        "center",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    summary = _last_json(capsys)
    assert len(summary["mean_dice"]) == 8
    assert all(len(v) == 2 for v in summary["mean_dice"].values())
    clean = {v[0] for v in summary["mean_dice"].values()}
    assert len(clean) == 1  # level 0 is the clean image for every perturbation
    results = json.loads((out / "results.json").read_text())
    assert results["perturbations"]["gaussian_noise"]["levels"] == [0, 18]
    assert (out / "robustness.png").is_file() and (out / "examples" / "occlusion.png").is_file()
    assert "salt_and_pepper" in (out / "index.html").read_text()


def test_help(capsys):
    for cmd in ("eval", "robustness"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    assert "--levels" in capsys.readouterr().out


def test_missing_dataset_and_model(tmp_path, capsys, dataset):
    assert (
        main(["eval", str(tmp_path / "none"), "--config", "test", "--out", str(tmp_path / "r")])
        == 2
    )
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--config", "test", "--out", str(tmp_path / "r")]) == 2
    assert "not a sam-pets dataset" in capsys.readouterr().err
    assert (
        main(
            [
                "robustness",
                str(dataset),
                "--model",
                str(tmp_path / "x.pt"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "no such checkpoint" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert (
        main(["eval", str(dataset), "--checkpoint", str(junk), "--out", str(tmp_path / "r")]) == 2
    )
    assert "junk.pt" in capsys.readouterr().err
    assert main(["eval", str(dataset), "--config", "nosuch", "--out", str(tmp_path / "r")]) == 2
    assert "unknown model config" in capsys.readouterr().err


def _break_items(dataset, tmp_path) -> tuple[Path, list[str]]:
    """A copy of ``dataset`` with a text file as one label PNG and another item's JPEG gone."""
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    names = sorted(canon.items_by_name(canon.load_manifest(broken)))[:2]
    canon.item_paths(broken, names[0]).labels.write_text("not a png")
    canon.item_paths(broken, names[1]).image.unlink()
    return broken, names


def test_unreadable_items_are_skipped_and_listed(dataset, tmp_path, capsys):
    broken, names = _break_items(dataset, tmp_path)
    out = tmp_path / "r"
    args = [
        "eval",
        str(broken),
        "--config",
        "test",
        "--prompt",
        "box",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["images"] == 2
    reasons = {s["item"]: s["reason"] for s in summary["skipped"]}
    assert list(reasons) == names
    assert "not a readable image" in reasons[names[0]]
    assert "image file missing" in reasons[names[1]]
    err = captured.err.splitlines()
    assert f"skipped item {names[0]!r}: cannot read its files" in err[0]
    assert names[1] in err[-1] and "skipped 2 unreadable items" in err[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 2 and [s["item"] for s in metrics["skipped"]] == names
    assert "Skipped items (2)" in (out / "index.html").read_text()

    rob = tmp_path / "rob"
    args = ["robustness", str(broken), "--config", "test", "--levels", "2", "--out", str(rob)]
    assert main([*args, "--perturbation", "occlusion", "--quiet"]) == 1
    summary = _last_json(capsys)
    assert summary["images"] == 2 and [s["item"] for s in summary["skipped"]] == names
    results = json.loads((rob / "results.json").read_text())
    assert [s["item"] for s in results["skipped"]] == names


def test_every_item_unreadable_is_one_error(dataset, tmp_path, capsys):
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    for name in canon.items_by_name(canon.load_manifest(broken)):
        canon.item_paths(broken, name).image.unlink()
    out = tmp_path / "report"
    args = ["eval", str(broken), "--config", "test", "--prompt", "box", "--out", str(out)]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error: " in err[-1] and "none of the 4 items can be read" in err[-1]
    assert "image file missing" in err[-1]
    assert not (out / "metrics.json").exists()


def test_mask_image_mismatch(tmp_path, capsys):
    from eval.conftest import square, write_dataset

    ds = tmp_path / "ds"
    write_dataset(
        ds,
        [
            {
                "name": "odd",
                "masks": [square(2, 2, 5)],
                "species": "cat",
                "image": np.zeros((20, 20, 3), np.uint8),
            }
        ],
    )
    assert (
        main(
            [
                "robustness",
                str(ds),
                "--config",
                "test",
                "--levels",
                "2",
                "--out",
                str(tmp_path / "r"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "differs from image size" in capsys.readouterr().err


def test_eval_and_robustness_score_with_and_without_zoom(dataset, tmp_path, capsys):
    base = ["--model", "pets", "--limit", "1", "--quiet"]
    runs = {}
    for flag in ("--zoom", "--no-zoom", None):
        out = tmp_path / f"rep{flag}"
        argv = ["eval", str(dataset), *base, "--prompt", "box", "--prompt", "clicks"]
        argv += ["--max-clicks", "3", "--out", str(out)] + ([flag] if flag else [])
        assert main(argv) == 0
        runs[flag] = _last_json(capsys)["results"]["pets"]
        info = json.loads((out / "metrics.json").read_text())["models"]["pets"]
        assert info["zoom"] is (flag != "--no-zoom")  # the built-in model zooms by default
    assert runs["--zoom"] == runs[None]
    assert runs["--zoom"]["box"]["miou"] != runs["--no-zoom"]["box"]["miou"]
    out = tmp_path / "rob"
    argv = ["robustness", str(dataset), *base, "--levels", "2", "--perturbation", "occlusion"]
    assert main([*argv, "--out", str(out), "--no-zoom"]) == 0
    plain = _last_json(capsys)["mean_dice"]["occlusion"]
    assert main([*argv, "--out", str(out), "--zoom", "--overwrite"]) == 0
    assert _last_json(capsys)["mean_dice"]["occlusion"] != plain
