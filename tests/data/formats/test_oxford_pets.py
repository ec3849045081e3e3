import shutil

import numpy as np
import pytest
from PIL import Image

from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import oxford_pets as oxford
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.progress import run_job


def read_png(path):
    with Image.open(path) as im:
        return np.array(im)


def test_dev_set_converts_all_240_losslessly(oxford_dev_canonical, oxford_dev):
    out, summary = oxford_dev_canonical
    assert summary.converted == 240 and summary.skipped == ()
    records = canon.load_manifest(out)["items"]
    assert len(records) == 240
    for rec in records:
        trimap = read_png(oxford_dev / "trimaps" / f"{rec['name']}.png")
        masks, ignore = canon.read_masks(out, rec)
        assert masks.shape == (1, *trimap.shape)
        assert np.array_equal(masks[0], trimap == 1), rec["name"]
        assert np.array_equal(ignore, trimap == 3), rec["name"]


def test_dev_set_images_are_byte_identical(oxford_dev_canonical, oxford_dev):
    out, summary = oxford_dev_canonical
    assert summary.notes == ()  # all RGB JPEGs without EXIF rotation: copied as they are
    for rec in canon.load_manifest(out)["items"]:
        stored = canon.item_paths(out, rec["name"]).image.read_bytes()
        assert stored == (oxford_dev / "images" / f"{rec['name']}.jpg").read_bytes()


def test_species_and_breed_from_list_txt(oxford_dev_canonical):
    out, _ = oxford_dev_canonical
    recs = canon.items_by_name(canon.load_manifest(out))
    assert recs["Bengal_63"]["species"] == "cat" and recs["Bengal_63"]["breed"] == "Bengal"
    pit = recs[next(n for n in recs if n.startswith("american_pit_bull_terrier"))]
    assert pit["species"] == "dog" and pit["breed"] == "american_pit_bull_terrier"
    assert len({r["breed"] for r in recs.values()}) == 37
    assert sum(r["species"] == "cat" for r in recs.values()) == 81


def test_split_is_stratified_by_breed(oxford_dev_canonical):
    out, summary = oxford_dev_canonical
    assert summary.splits == {"train": 192, "val": 48}
    recs = canon.load_manifest(out)["items"]
    val_breeds = {r["breed"] for r in recs if r["split"] == "val"}
    assert len(val_breeds) >= 30  # 48 val items spread over the 37 breeds
    assert len(canon.read_list(out, "train_tiny")) == 8


def test_read_pet_list_and_names(oxford_dev):
    infos = oxford.read_pet_list(oxford_dev / "list.txt")
    assert len(infos) == 240
    assert infos["Bengal_63"] == oxford.PetInfo(6, "cat", "Bengal", 2)
    assert oxford.breed_from_name("great_pyrenees_12") == "great_pyrenees"
    assert oxford.species_from_name("Sphynx_3") == "cat"


def _official_layout(src, dst, names):
    (dst / "images").mkdir(parents=True)
    (dst / "annotations" / "trimaps").mkdir(parents=True)
    lines = ["#Image CLASS-ID SPECIES BREED ID"]
    for n in names:
        shutil.copy(src / "images" / f"{n}.jpg", dst / "images")
        shutil.copy(src / "trimaps" / f"{n}.png", dst / "annotations" / "trimaps")
    infos = {
        ln.split()[0]: ln
        for ln in (src / "list.txt").read_text().splitlines()
        if not ln.startswith("#")
    }
    lines += [infos[n] for n in names]
    (dst / "annotations" / "list.txt").write_text("\n".join(lines) + "\n")
    (dst / "annotations" / "trainval.txt").write_text(infos[names[0]] + "\n")
    (dst / "annotations" / "test.txt").write_text(infos[names[1]] + "\n")


def test_official_layout(tmp_path, oxford_dev):
    names = (
        ["Bengal_63", "beagle_101"]
        if (oxford_dev / "images/beagle_101.jpg").exists()
        else ["Bengal_63", "Abyssinian_146"]
    )
    _official_layout(oxford_dev, tmp_path / "src", names)
    lay = oxford.find_layout(tmp_path / "src")
    assert lay.trimaps.name == "trimaps" and lay.test_txt is not None
    summary = run_job(convert_oxford_pets(tmp_path / "src", tmp_path / "out"), show=False)
    assert summary.converted == 2
    recs = canon.items_by_name(canon.load_manifest(tmp_path / "out"))
    assert recs[names[0]]["oxford_split"] == "trainval"
    assert recs[names[1]]["oxford_split"] == "test"


def test_missing_layout_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        oxford.find_layout(tmp_path)


def test_trimap_checks(tmp_path):
    Image.fromarray(np.full((4, 4), 2, np.uint8)).save(tmp_path / "bg.png")
    pair = oxford.OxfordPair("x_1", tmp_path / "x.jpg", tmp_path / "bg.png", None)
    with pytest.raises(BadInputError, match="no foreground"):
        oxford.read_pair(pair, (4, 4))
    with pytest.raises(BadInputError, match="differs"):
        oxford.read_pair(pair, (5, 4))
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(BadInputError, match="subset"):
        oxford.read_trimap(tmp_path / "odd.png")


@pytest.fixture(scope="module")
def bad_oxford(tmp_path_factory, oxford_dev):
    """A flat Oxford folder with one good pair and one of each kind of bad input."""
    src = tmp_path_factory.mktemp("bad") / "my pets ü"
    (src / "images").mkdir(parents=True)
    (src / "trimaps").mkdir()
    good = "Bengal_63"
    img = oxford_dev / "images" / f"{good}.jpg"
    tri = oxford_dev / "trimaps" / f"{good}.png"
    rgb = np.asarray(Image.open(img))

    def pair(name, writer):
        shutil.copy(tri, src / "trimaps" / f"{name}.png")
        writer(src / "images" / f"{name}.jpg")

    pair(good, lambda p: shutil.copy(img, p))
    pair("Bengal_2", lambda p: p.write_bytes(img.read_bytes()[:5000]))  # truncated
    pair("Bengal_3", lambda p: p.write_bytes(b"garbage"))  # corrupt
    pair("Bengal_4", lambda p: Image.fromarray(rgb).convert("P").save(p, "GIF"))
    pair("Bengal_5", lambda p: Image.fromarray(rgb).convert("RGBA").save(p, "PNG"))
    pair("Bengal_6", lambda p: Image.fromarray(rgb[..., 0].astype(np.uint16) * 200).save(p, "PNG"))
    pair("Bengal_7", lambda p: Image.fromarray(rgb).convert("L").save(p, "JPEG"))
    pair("Bengal 8 ünïcode", lambda p: shutil.copy(img, p))
    pair("Bengal_9", lambda p: Image.fromarray(rgb[:100]).save(p, "JPEG"))  # size mismatch
    shutil.copy(tri, src / "trimaps" / "Bengal_10.png")  # missing image
    shutil.copy(img, src / "images" / "Bengal_11.jpg")  # missing trimap
    shutil.copy(img, src / "images" / "Bengal_12.jpg")
    Image.fromarray(np.full(rgb.shape[:2], 2, np.uint8)).save(src / "trimaps" / "Bengal_12.png")
    return src


def test_bad_inputs_are_reported_and_the_rest_converts(bad_oxford, tmp_path):
    out = tmp_path / "out"
    summary = run_job(convert_oxford_pets(bad_oxford, out), show=False)
    reasons = {i.source.split("/")[-1]: i.reason for i in summary.skipped}
    assert "truncated" in reasons["Bengal_2.jpg"]
    assert "not a readable image" in reasons["Bengal_3.jpg"]
    assert "differs" in reasons["Bengal_9.jpg"] and "500x375" in reasons["Bengal_9.jpg"]
    assert "missing image" in reasons["Bengal_10.png"]
    assert "no trimap" in reasons["Bengal_11.jpg"]
    assert "no foreground" in reasons["Bengal_12.jpg"]
    assert len(summary.skipped) == 6
    assert summary.converted == 6
    notes = {i.source.split("/")[-1]: i.reason for i in summary.notes}
    assert "GIF named .jpg" in notes["Bengal_4.jpg"]
    assert "alpha" in notes["Bengal_5.jpg"] and "PNG named .jpg" in notes["Bengal_5.jpg"]
    assert "stretched" in notes["Bengal_6.jpg"]
    assert "greyscale" in notes["Bengal_7.jpg"]
    names = set(canon.read_list(out, "train")) | set(canon.read_list(out, "val"))
    assert "Bengal_8_unicode" in names
    text = summary.format()
    assert "skipped 6" in text and "Bengal_2.jpg" in text


def test_existing_folders_are_not_overwritten(bad_oxford, tmp_path):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "thesis.docx").write_text("precious")
    with pytest.raises(FileExistsError, match="not a sam-pets dataset"):
        run_job(convert_oxford_pets(bad_oxford, tmp_path / "user"), show=False)
    assert (tmp_path / "user" / "thesis.docx").read_text() == "precious"
    out = tmp_path / "ds"
    cfg = ConvertConfig()
    run_job(convert_oxford_pets(bad_oxford, out, cfg), show=False)
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_job(convert_oxford_pets(bad_oxford, out, cfg), show=False)
    again = run_job(convert_oxford_pets(bad_oxford, out, ConvertConfig(overwrite=True)), show=False)
    assert again.converted == 6
    assert len(canon.load_manifest(out)["items"]) == 6
