from sam_pets._atomic import atomic_write_text
from sam_pets.data.fsutil import safe_name, unique_name


def test_safe_name():
    assert safe_name("Abyssinian_1") == "Abyssinian_1"
    assert safe_name("my cat ünï.jpg") == "my_cat_uni_jpg"
    assert safe_name("IMG.rf.0b6b") == "IMG_rf_0b6b"  # no dots: SAM 2 list files strip them
    assert safe_name("猫").startswith("item_") and safe_name("猫") != safe_name("犬")
    assert safe_name("../../etc/passwd") == "etc_passwd"


def test_unique_name():
    assert unique_name("a", set()) == "a"
    assert unique_name("a", {"a", "a_2"}) == "a_3"


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two" and [q.name for q in p.parent.iterdir()] == ["f.txt"]
