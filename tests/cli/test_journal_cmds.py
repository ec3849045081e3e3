"""``sam-pets journal list|prune``."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from sam_pets.cli import main
from sam_pets.data.journal import Journal


@pytest.fixture
def journal():
    j = Journal()  # in the test's own data folder (tests/conftest.py)
    lab = np.zeros((10, 10), np.uint16)
    lab[2:5, 2:5] = 1
    j.record("aa" * 16, lab, {1: {"model": "pets"}}, {"name": "cat"})
    lab[6:8, 6:8] = 2
    j.record("bb" * 16, lab, {}, {"name": "dog"})
    old = time.time() - 30 * 86400
    os.utime(j.path("aa" * 16), (old, old))
    return j


def test_list(journal, capsys):
    assert main(["journal", "list", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["aa" * 16]["image"] == "cat" and rows["bb" * 16]["objects"] == 2
    assert main(["journal", "list"]) == 0
    assert "dog: 2 objects" in capsys.readouterr().out


def test_prune_by_age_key_or_all(journal, capsys):
    assert main(["journal", "prune", "--older-than", "7"]) == 0
    assert journal.keys() == ["bb" * 16]
    assert main(["journal", "prune", "cc" * 16]) == 2
    assert "no journal entry" in capsys.readouterr().err
    assert main(["journal", "prune"]) == 2  # says what it needs
    assert main(["journal", "prune", "bb" * 16]) == 0
    assert journal.keys() == []
    journal.record("dd" * 16, np.ones((3, 3), np.int32))
    assert main(["journal", "prune", "--all"]) == 0
    assert journal.keys() == [] and "pruned 1" in capsys.readouterr().out
