import errno
import multiprocessing
import os
import shutil
import time

import numpy as np
import pytest

from conftest import FIXTURES
from cinc2020 import cache as cache_module
from cinc2020 import preprocess as preprocess_module
from cinc2020.config import Config
from cinc2020.cache import cached_records
from cinc2020.data import load_training_set
from cinc2020.preprocess import clean
from cinc2020.records import read_record

pytestmark = pytest.mark.shared_data


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setenv("CINC2020_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "records"
    shutil.copytree(FIXTURES / "cinc_snomed", folder)
    return folder


def cache_folders(records):
    return sorted(p.name for p in (records.parent / "cache").iterdir() if not p.name.startswith("."))


def test_cache_holds_exactly_the_preprocessed_signals(records):
    store, names, dx, demographics, skipped = cached_records(records, Config())
    assert len(store) == len(names) == len(demographics) == 12 and not skipped
    for i, name in enumerate(names):
        direct = clean(*read_record(records / f"{name}.hea"), Config())
        np.testing.assert_array_equal(store[i], direct)
    a0002 = names.index("A0002")  # #Age: 49, #Sex: Female
    np.testing.assert_array_equal(demographics[a0002], np.array([0.49, 1, 0, 1], np.float32))
    view = store.subset(np.array([3, 1]))
    np.testing.assert_array_equal(view[1], store[1])


def test_cache_is_reused_until_something_changes(records, monkeypatch):
    cached_records(records, Config())
    (first,) = cache_folders(records)
    built = os.stat(records.parent / "cache" / first / "signals.f32").st_mtime_ns
    cached_records(records, Config(epochs=3, lr=0.1))  # training settings do not touch preprocessing
    assert cache_folders(records) == [first]
    assert os.stat(records.parent / "cache" / first / "signals.f32").st_mtime_ns == built

    cached_records(records, Config(normalisation="mean"))  # normalisation follows the cache: the same cache
    assert cache_folders(records) == [first]
    cached_records(records, Config(bandpass_hz=(0.5, 45.0)))  # another preprocessing: a second cache beside the first
    assert len(cache_folders(records)) == 2 and first in cache_folders(records)
    cached_records(records, Config())  # two architectures of one run each keep theirs
    assert len(cache_folders(records)) == 2
    before = cache_folders(records)

    def edited_bandpass(signal, fs, low_hz, high_hz):  # a fork's edit of the preprocessing: no filter at all
        return signal

    monkeypatch.setattr(preprocess_module, "bandpass", edited_bandpass)
    monkeypatch.setattr(cache_module, "available_cpus", lambda: 1)  # one process: the edited code runs
    store, *_ = cached_records(records, Config(bandpass_hz=(0.5, 45.0)))  # that setting's cache is replaced
    after = cache_folders(records)
    assert len(after) == 2 and first in after and after != before
    np.testing.assert_array_equal(store[0], clean(*read_record(sorted(records.glob("*.hea"))[0]), Config()))


def test_changed_or_new_records_rebuild_the_cache(records):
    store, names, *_ = cached_records(records, Config())
    (first,) = cache_folders(records)
    header = records / "A0002.hea"
    header.write_text(header.read_text().replace("#Dx: 426783006", "#Dx: 164889003"))
    _, _, dx, *_ = cached_records(records, Config())
    assert cache_folders(records) != [first] and dx[names.index("A0002")] == ["164889003"]
    (records / "A0003.mat").unlink()
    _, names_after, *_, skipped = cached_records(records, Config())
    assert "A0003" not in names_after and "no such signal file" in skipped["A0003"]


def test_failed_build_leaves_no_cache(records, monkeypatch):
    monkeypatch.setattr(cache_module, "available_cpus", lambda: 1)  # one process: the patched clean runs
    calls = {"n": 0}
    real = cache_module.clean

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as if the run were stopped halfway
        return real(*args)

    monkeypatch.setattr(cache_module, "clean", failing)
    with pytest.raises(KeyboardInterrupt):
        cached_records(records, Config())
    assert cache_folders(records) == []
    monkeypatch.setattr(cache_module, "clean", real)
    assert len(load_training_set(records, Config()).names) == 12


def build_alongside(records, cache, calls):
    """One of two runs started at once on the same folder (a spawned process)."""
    os.environ["CINC2020_CACHE"] = str(cache)
    real = cache_module.clean

    def slow_clean(*args):
        with open(calls, "a") as log:
            log.write("x")
        time.sleep(0.05)  # keep both runs inside the build at once
        return real(*args)

    cache_module.clean = slow_clean
    cache_module.available_cpus = lambda: 1  # build in this process, where clean is patched
    store, names, *_ = cached_records(records, Config())
    return names, [store[i].sum() for i in range(len(store))]


def test_two_runs_at_once_build_one_cache_and_share_it(records, tmp_path):
    calls = tmp_path / "clean-calls"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        runs = [pool.apply_async(build_alongside, (records, records.parent / "cache", calls)) for _ in range(2)]
        first, second = [run.get(timeout=300) for run in runs]
    assert first == second and len(first[0]) == 12
    assert len(calls.read_text()) == 12            # one build; the other run waited and reused it
    assert len(cache_folders(records)) == 1


def test_a_cache_removed_by_another_run_stays_readable(records):
    store, names, *_ = cached_records(records, Config())
    before = [store[i].copy() for i in range(len(store))]
    header = records / "A0002.hea"
    header.write_text(header.read_text() + "\n")  # the records change: the next run rebuilds and removes the old cache
    cached_records(records, Config())
    assert len(cache_folders(records)) == 1
    for i, signal in enumerate(before):
        np.testing.assert_array_equal(store[i], signal)


def test_parallel_build_equals_the_serial_one(records, monkeypatch):
    built = {}
    for workers in (1, 2):
        monkeypatch.setattr(cache_module, "available_cpus", lambda: workers)
        monkeypatch.setenv("CINC2020_CACHE", str(records.parent / f"cache-{workers}"))
        cached_records(records, Config())
        (folder,) = [p for p in (records.parent / f"cache-{workers}").iterdir() if not p.name.startswith(".")]
        built[workers] = ((folder / "signals.f32").read_bytes(), (folder / "index.json").read_text())
    assert built[1] == built[2] and len(built[1][0]) > 0


def test_a_cache_folder_that_cannot_be_written_falls_back_to_the_temporary_folder(records, monkeypatch, tmp_path,
                                                                                  capfd):
    """No home (``HOME=/nonexistent``), or one whose cache cannot be written (``docker run --user``): a
    home that is a file fails for root too."""
    import tempfile

    monkeypatch.delenv("CINC2020_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    (tmp_path / "home").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert len(load_training_set(records, Config()).names) == 12
    assert "set CINC2020_CACHE" in capfd.readouterr().err
    assert len([p for p in (tmp_path / "tmp").glob("cinc2020-cache-*/*") if not p.name.startswith(".")]) == 1


def test_a_killed_build_is_removed_by_the_next_build(records):
    cached_records(records, Config())
    (first,) = cache_folders(records)
    killed = records.parent / "cache" / f".building-{first[:-16]}k1ll3d"  # what SIGKILL leaves of a build
    killed.mkdir()
    (killed / "signals.f32").write_bytes(b"0" * 1000)
    cached_records(records, Config())
    assert killed.exists()  # a finished cache is read, not built: nothing to clean yet
    (records / "A0002.hea").write_text((records / "A0002.hea").read_text() + "\n")
    cached_records(records, Config())
    assert not killed.exists()


def test_an_unexpected_error_in_one_record_is_that_records_failure(records, monkeypatch):
    monkeypatch.setattr(cache_module, "available_cpus", lambda: 1)  # one process: the patched clean runs
    real = cache_module.clean

    def failing_on_e00001(data, header_lines, config):
        if header_lines[0].startswith("E00001"):
            raise ZeroDivisionError("a fork's bug")
        return real(data, header_lines, config)

    monkeypatch.setattr(cache_module, "clean", failing_on_e00001)
    store, names, *_, skipped = cached_records(records, Config())
    assert len(names) == 11 and "E00001" not in names
    assert skipped == {"E00001": "unexpected ZeroDivisionError: a fork's bug"}


@pytest.mark.parametrize("fault", [PermissionError(errno.EACCES, "Permission denied"),
                                   OSError(errno.EIO, "Input/output error"), MemoryError()])
def test_a_record_the_machine_could_not_read_is_read_again_next_time(records, monkeypatch, capsys, fault):
    """A permission or I/O error, or no memory, says nothing of the record: this run skips it, the next reads
    it (chmod changes neither size nor modification time, so a cache that remembered it would keep it
    skipped). As root permissions refuse nothing: the fault is injected."""
    monkeypatch.setattr(cache_module, "available_cpus", lambda: 1)  # one process: the patched reader runs
    real = cache_module.read_record

    def faulty(path):
        if path.stem == "E00001":
            raise fault
        return real(path)

    monkeypatch.setattr(cache_module, "read_record", faulty)
    _, names, *_, skipped = cached_records(records, Config())
    assert "E00001" not in names and "E00001" in skipped
    assert "could not be read because of the machine" in capsys.readouterr().err
    monkeypatch.setattr(cache_module, "read_record", real)
    _, names, *_, skipped = cached_records(records, Config())
    assert "E00001" in names and not skipped
    assert len(cache_folders(records)) == 1  # the faulty build was used once and kept nowhere
