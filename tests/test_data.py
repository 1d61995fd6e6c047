import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, FIXTURES, copy_records
from cinc2020.config import Config
from cinc2020.batches import collate, duration_batches
from cinc2020.data import ONE_SOURCE, auxiliary_codes, load_training_set, sources_of
from cinc2020.labels import loss_mask
from cinc2020.preprocess import prepare
from cinc2020.records import find_records
from cinc2020.splits import development_and_test, stratified_folds
from cinc2020.labels import source_of
from cinc2020.records import read_record


@pytest.mark.shared_data
def test_prepare_gives_normalised_leads_at_model_rate():
    data, lines = read_record(FIXTURES / "cinc_snomed" / "S0001.hea")  # 1000 Hz, 38.4 s
    signal = prepare(data, lines, Config(normalisation="std"))
    assert signal.shape == (12, 3840) and signal.dtype == np.float32
    np.testing.assert_allclose(signal.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(signal.std(axis=1), 1, atol=1e-3)
    centred = prepare(data, lines, Config(normalisation="mean"))
    np.testing.assert_allclose(centred.mean(axis=1), 0, atol=1e-4)
    assert not np.allclose(centred.std(axis=1), 1)


@pytest.mark.shared_data
def test_flat_lead_stays_zero_unless_it_is_a_limb_lead():
    data, lines = read_record(FIXTURES / "cinc_snomed" / "A0002.hea")
    data[8] = 7.0  # V3: a constant, as a disconnected lead reads
    signal = prepare(data, lines, Config())
    assert np.all(signal[8] == 0) and np.isfinite(signal).all()
    data[3] = 7.0  # aVR: derived from the other limb leads instead
    centred = prepare(data, lines, Config(normalisation="mean"))
    np.testing.assert_allclose(centred[3], -(centred[0] + centred[1]) / 2, atol=2e-3)


@pytest.mark.shared_data
def test_stratified_split_keeps_class_shares_on_ptbxl():
    data = load_training_set(DATA / "ptbxl", Config())
    fold = stratified_folds(data.labels, [0.8, 0.2], seed=0)
    assert set(np.unique(fold)) == {0, 1}
    assert (fold == 1).mean() == pytest.approx(0.2, abs=0.01)
    positives = data.labels.sum(axis=0)
    share = data.labels[fold == 1].sum(axis=0) / positives
    for j, c in enumerate(data.classes):
        # each class within one record of its ideal 20 % share (rounding) or 3 points
        assert abs(share[j] - 0.2) <= max(1.5 / positives[j], 0.03), (c, share[j], positives[j])
    again = stratified_folds(data.labels, [0.8, 0.2], seed=0)
    np.testing.assert_array_equal(fold, again)


@pytest.mark.shared_data
def test_the_held_out_test_split_is_fixed_apart_from_the_configuration():
    data = load_training_set(DATA / "ptbxl", Config(min_positives=50))  # a run's own classes do not move it
    development, test = development_and_test(data.names, data.dx)
    assert (len(development), len(test)) == (4880, 1220)
    assert sorted(np.concatenate([development, test]).tolist()) == list(range(len(data.names)))
    # the 1,220 test records every figure of docs/results.md used
    test_names = ",".join(data.names[i] for i in test).encode()
    assert hashlib.sha256(test_names).hexdigest() == "446155e923767c9becf7ac831889ee91bfb6c416d82087344d0e243b176e6696"


def test_stratified_folds_with_unlabelled_rows():
    labels = np.zeros((10, 3))
    labels[:4, 0] = 1
    fold = stratified_folds(labels, [0.5, 0.5], seed=1)
    assert np.bincount(fold).tolist() == [5, 5]
    assert labels[fold == 0, 0].sum() == 2


def test_duration_batches_group_lengths_and_cover_every_record():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([np.full(41, 1000), np.full(20, 3000), [60000]])
    batches = duration_batches(lengths, 20, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(b) >= 2 for b in batches)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded / lengths.sum() < 1.4   # random batches would pad about 10 times over


def test_batches_of_records_of_distinct_lengths_change_from_epoch_to_epoch():
    """CPSC's records, 6 to 60 s, all of distinct lengths: sorted by length alone, most batches would be the
    same every epoch."""
    lengths = np.random.default_rng(0).integers(3000, 30000, 400)  # 6-60 s at 500 Hz
    compositions = [{frozenset(b.tolist()) for b in duration_batches(lengths, 20, np.random.default_rng(epoch))}
                    for epoch in range(3)]
    for first, second in ((0, 1), (1, 2)):
        assert len(compositions[first] & compositions[second]) <= 2   # almost every batch is new
    for epoch in range(3):
        batches = duration_batches(lengths, 20, np.random.default_rng(epoch))
        padded = sum(len(b) * lengths[b].max() for b in batches)
        assert padded / lengths.sum() < 1.15                          # and padding stays small


def test_collate_pads():
    signals = [np.ones((12, 50), np.float32), np.ones((12, 120), np.float32)]
    batch, lengths = collate(signals)
    assert batch.shape == (2, 12, 120) and lengths.tolist() == [50, 120]
    assert batch[0, :, 50:].abs().sum() == 0 and batch[0, :, :50].min() == 1


def test_training_set_refuses_a_folder_without_labels(tmp_path):
    (tmp_path / "X.hea").write_text("X 12 500 10\n")
    with pytest.raises(ValueError, match="no usable labelled record"):
        load_training_set(tmp_path, Config())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no records"):
        load_training_set(empty, Config())
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_training_set(tmp_path / "missing", Config())


def test_small_sets_still_get_a_validation_share():
    labels = np.repeat(np.eye(9), 2, axis=0)[:12]  # 12 records, every class at most twice
    fold = stratified_folds(labels, [0.8, 0.2], seed=0)
    assert 2 <= (fold == 1).sum() <= 3


@pytest.mark.shared_data
def test_loss_mask_leaves_out_classes_a_source_never_labels():
    """Six sources in one folder: each record's loss counts only the classes its source labels here."""
    data = load_training_set(FIXTURES / "cinc_snomed", Config(min_positives=1))
    known = {name: {c for c, m in zip(data.classes, row) if m} for name, row in zip(data.names, data.mask)}
    sinus, af, tachycardia, low_voltage = "426783006", "164889003", "427084000", "251146004"
    assert known["A0002"] == known["A0003"] == {sinus, af}             # CPSC: sinus rhythm and AF here
    assert source_of("A0002") == "CPSC" and data.mask.shape == (12, len(data.classes))
    assert known["Q0001"] == known["Q0004"] == {tachycardia}
    assert known["S0001"] == known["S0008"] == {sinus, low_voltage}
    assert (data.mask[data.labels == 1] == 1).all()                      # a positive is always known
    assert 0 < data.mask.sum() < data.mask.size


def test_loss_mask_for_unnamed_sources_and_ventricular_ectopics():
    classes = ["426783006", "164889003", "427172004"]
    names = ["rec1", "rec2", "E00001", "E00002", "1", "2"]
    dx = [["426783006"], ["164884008", "426783006"], ["164884008"], ["17338001"], ["164889003"], ["426783006"]]
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float32)
    mask = loss_mask([source_of(n) for n in names], dx, labels, classes, "snomed")
    np.testing.assert_array_equal(mask, [[1, 0, 0],      # source "rec" writes sinus rhythm alone
                                         [1, 0, 0],      # ventricular ectopics: PVC undetermined anyway
                                         [0, 0, 0],      # Georgia labels no sinus rhythm or AF here; PVC undetermined
                                         [0, 0, 1],
                                         [1, 1, 0],      # names without a prefix: one source of their own
                                         [1, 1, 0]])
    assert (loss_mask([source_of(n) for n in names], dx, labels, classes, "cpsc")[:2] == mask[:2]).all()  # no PVC rule in that scheme


@pytest.mark.shared_data
def test_skipping_records_without_a_class_of_the_model_in_the_official_scheme():
    data = load_training_set(FIXTURES / "cinc_snomed", Config(min_positives=1, records_without_class="skip"))
    assert set(data.skipped) == {"Q0004", "S0008"}   # only unscored codes: 164861001, 428750005; 164865005
    assert len(data.names) == 10 and data.labels.any(axis=1).all()


@pytest.mark.shared_data
def test_auxiliary_codes_are_the_records_other_codes_and_the_loss_reads_them_after_the_classes():
    """With auxiliary labels, every code that names no class becomes an output the loss reads after the
    classes, known only for the sources that carry it here; without them, none."""
    data = load_training_set(FIXTURES / "cinc_snomed", Config(min_positives=1, auxiliary_labels=True))
    infarct, st_t, st_depression, t_wave = "164865005", "164861001", "164867002", "428750005"  # all unscored
    assert data.auxiliary == sorted([infarct, st_t, st_depression, t_wave])
    carrying = {code: [n for n, dx in zip(data.names, data.dx) if code in dx] for code in data.auxiliary}
    assert carrying == {infarct: ["S0008"], st_t: ["Q0004"], st_depression: ["Q0001"], t_wave: ["Q0004"]}
    for j, code in enumerate(data.auxiliary):
        assert [n for n, label in zip(data.names, data.auxiliary_labels[:, j]) if label] == carrying[code]
        known = {n[0] for n, m in zip(data.names, data.auxiliary_mask[:, j]) if m}
        assert known == {carrying[code][0][0]}  # the source that labels the code (S: PTB, Q: CPSC-Extra), no other
    assert not data.unknown_labels  # every code is learned now, if not answered
    rows = np.array([8, 0, 11])
    targets, mask = data.loss_targets(rows)
    n = len(data.classes)
    np.testing.assert_array_equal(targets[:, :n], data.labels[rows])
    np.testing.assert_array_equal(targets[:, n:], [[0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]])  # Q0001, A0002, S0008
    np.testing.assert_array_equal(mask[:, n:], [[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]])

    off = load_training_set(FIXTURES / "cinc_snomed", Config(min_positives=1))
    assert off.auxiliary == [] and off.loss_targets(rows)[0].shape == (3, len(off.classes))


def test_auxiliary_codes_need_min_positives_records_and_name_no_class():
    dx = [["426783006", "164865005"], ["164865005", "39732003"], ["59118001", "164884008"], ["39732003"]]
    official = Config(min_positives=2, auxiliary_labels=True)
    # right bundle branch block is the class of complete RBBB (equivalent); ventricular ectopics are on one record
    assert auxiliary_codes(dx, ["426783006", "713427006"], official) == ["164865005", "39732003"]
    assert auxiliary_codes(dx, ["426783006", "713427006"], Config(min_positives=3, auxiliary_labels=True)) == []


def test_auxiliary_codes_of_the_cpsc_scheme_leave_out_what_its_classes_translate():
    dx = [["164889003", "164865005"], ["AF", "39732003"], ["426783006", "39732003"], ["164884008"]]
    config = Config(labels="cpsc", min_positives=1, auxiliary_labels=True)
    # AF, its text and ventricular ectopics (PVC) are classes; infarct, axis deviation and sinus rhythm are not:
    # beside axis deviation, sinus rhythm is no normal ECG
    assert auxiliary_codes(dx, ["AF", "Normal", "PVC"], config) == ["164865005", "39732003", "426783006"]


def copy_record(source: Path, folder: Path) -> None:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".hea", ".mat"):
        shutil.copy(source.with_suffix(suffix), folder / source.with_suffix(suffix).name)


@pytest.mark.shared_data
def test_records_are_found_in_every_folder_below_the_ones_given(tmp_path):
    """The 2021 layout (training/<source>/g1/...) and archives extracted side by side."""
    fixtures = sorted((FIXTURES / "cinc_snomed").glob("*.hea"))
    for i, header in enumerate(fixtures):
        copy_record(header, tmp_path / "training" / f"source{i % 3}" / f"g{i % 2 + 1}")
    copy_record(fixtures[0], tmp_path / "training" / ".hidden")  # hidden folders are passed over
    found = find_records(tmp_path / "training")
    assert [p.stem for p in found] == sorted(p.stem for p in fixtures)
    assert [p.stem for p in find_records([tmp_path / "training" / "source0", tmp_path / "training" / "source1"])] \
        == sorted(p.stem for i, p in enumerate(fixtures) if i % 3 < 2)
    data = load_training_set(tmp_path / "training", Config(min_positives=1))
    assert data.names == [p.stem for p in found] and len(data.signals) == 12


@pytest.mark.shared_data
def test_a_record_found_twice_is_read_once_when_equal_and_an_error_when_not(tmp_path):
    header = FIXTURES / "cinc_snomed" / "A0002.hea"
    copy_record(header, tmp_path / "first")
    copy_record(header, tmp_path / "second")
    copy_record(FIXTURES / "cinc_snomed" / "E00001.hea", tmp_path / "second")
    assert [p.stem for p in find_records([tmp_path / "first", tmp_path / "second"])] == ["A0002", "E00001"]
    assert [p.stem for p in find_records([tmp_path, tmp_path / "first"])] == ["A0002", "E00001"]  # one file, twice
    changed = tmp_path / "second" / "A0002.hea"
    changed.write_text(changed.read_text().replace("#Age: 49", "#Age: 50"))
    with pytest.raises(ValueError, match="A0002 is found twice with different contents") as error:
        find_records([tmp_path / "first", tmp_path / "second"])
    assert str(tmp_path / "first" / "A0002.hea") in str(error.value) and str(changed) in str(error.value)


@pytest.mark.shared_data
def test_a_source_added_to_the_development_records_moves_no_ptbxl_record():
    alone = load_training_set(DATA / "ptbxl", Config())
    both = load_training_set([DATA / "ptbxl", DATA / "chapman"], Config())
    splits = [development_and_test(d.names, d.dx) for d in (alone, both)]
    for part in range(2):
        ptbxl = [both.names[i] for i in splits[1][part] if both.names[i].startswith("HR")]
        assert ptbxl == [alone.names[i] for i in splits[0][part]]
    chapman_test = [both.names[i] for i in splits[1][1] if both.names[i].startswith("JS")]
    assert 140 <= len(chapman_test) <= 168          # a fifth of Chapman-Shaoxing's 767


@pytest.mark.shared_data
def test_sources_come_from_name_prefixes_subfolders_or_nowhere(tmp_path):
    """The 2021 layout, training/<source>/...: Ningbo and Chapman-Shaoxing share the JS prefix, and only their
    folders tell them apart."""
    headers = find_records(DATA / "chapman")[:6]
    copy_records(headers[:3], tmp_path / "training" / "chapman_shaoxing")
    copy_records(headers[3:], tmp_path / "training" / "ningbo" / "g1", rename=lambda n: n.replace("JS", "JS9"))
    copy_records(find_records(DATA / "ptbxl")[:2], tmp_path / "training")  # directly in the folder given
    names = [h.stem for h in find_records(tmp_path / "training")]
    assert sources_of(names, tmp_path / "training", "name_prefix") == ["PTB-XL"] * 2 + ["Chapman-Shaoxing"] * 6
    assert sources_of(names, tmp_path / "training", "subfolder") == ["training"] * 2 + ["chapman_shaoxing"] * 3 + \
        ["ningbo"] * 3
    assert set(sources_of(names, tmp_path / "training", "one")) == {ONE_SOURCE}
    data = load_training_set(tmp_path / "training", Config(sources="subfolder", min_positives=1))
    assert data.sources == sources_of(data.names, tmp_path / "training", "subfolder")
