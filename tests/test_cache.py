import os
import shutil

import numpy as np
import pytest

from conftest import FIXTURES
from cinc2020 import data as data_module
from cinc2020.config import Config
from cinc2020.data import cached_records, load_training_set, prepare
from cinc2020.records import read_record


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setenv("CINC2020_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "records"
    shutil.copytree(FIXTURES / "cinc_snomed", folder)
    return folder


def cache_folders(records):
    return sorted(p.name for p in (records.parent / "cache").iterdir())


def test_cache_holds_exactly_the_preprocessed_signals(records):
    store, names, dx, skipped = cached_records(records, Config())
    assert len(store) == len(names) == 12 and not skipped
    for i, name in enumerate(names):
        direct = prepare(*read_record(records / f"{name}.hea"), Config())
        np.testing.assert_array_equal(store[i], direct)
    view = store.subset(np.array([3, 1]))
    np.testing.assert_array_equal(view[1], store[1])


def test_cache_is_reused_until_something_changes(records, monkeypatch):
    cached_records(records, Config())
    (first,) = cache_folders(records)
    built = os.stat(records.parent / "cache" / first / "signals.f32").st_mtime_ns
    cached_records(records, Config(epochs=3, lr=0.1))  # training settings do not touch preprocessing
    assert cache_folders(records) == [first]
    assert os.stat(records.parent / "cache" / first / "signals.f32").st_mtime_ns == built

    cached_records(records, Config(normalisation="mean"))  # another preprocessing: a second cache beside the first
    assert len(cache_folders(records)) == 2 and first in cache_folders(records)
    cached_records(records, Config())  # the two architectures of one run both keep theirs
    assert len(cache_folders(records)) == 2
    monkeypatch.setattr(data_module, "PREPROCESSING_VERSION", data_module.PREPROCESSING_VERSION + 1)
    before = cache_folders(records)
    cached_records(records, Config(normalisation="mean"))  # code of prepare() changed: that setting's cache is replaced
    after = cache_folders(records)
    assert len(after) == 2 and first in after and after != before


def test_changed_or_new_records_rebuild_the_cache(records):
    store, names, _, _ = cached_records(records, Config())
    (first,) = cache_folders(records)
    header = records / "A0002.hea"
    header.write_text(header.read_text().replace("#Dx: 426783006", "#Dx: 164889003"))
    _, _, dx, _ = cached_records(records, Config())
    assert cache_folders(records) != [first] and dx[names.index("A0002")] == ["164889003"]
    (records / "A0003.mat").unlink()
    _, names_after, _, skipped = cached_records(records, Config())
    assert "A0003" not in names_after and "no such signal file" in skipped["A0003"]


def test_failed_build_leaves_no_cache(records, monkeypatch):
    calls = {"n": 0}
    real = data_module.prepare

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as if the run were stopped halfway
        return real(*args)

    monkeypatch.setattr(data_module, "prepare", failing)
    with pytest.raises(KeyboardInterrupt):
        cached_records(records, Config())
    assert cache_folders(records) == []
    monkeypatch.setattr(data_module, "prepare", real)
    assert len(load_training_set(records, Config()).names) == 12
