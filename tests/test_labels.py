import csv
import os

import numpy as np
import pytest

from conftest import DATA, FIXTURES
from cinc2020.config import Config
from cinc2020.data import load_training_set
from cinc2020.labels import (CPSC_CLASSES, SNOMED_TO_CPSC, UNNAMED_SOURCE, known_labels, representative,
                             source_of, to_scheme,
                             undetermined_classes)


def test_equivalent_codes_share_one_class():
    assert representative("59118001") == "713427006"
    assert representative("63593006") == "284470004"
    assert representative("17338001") == "427172004"
    assert representative("164889003") == "164889003"
    assert to_scheme(["59118001", "713427006", "426783006"], "snomed") == {"713427006", "426783006"}


@pytest.mark.parametrize("codes,expected", [
    (["164889003"], {"AF"}),
    (["270492004"], {"I-AVB"}),
    (["164909002"], {"LBBB"}), (["733534002"], {"LBBB"}), (["251120003"], {"LBBB"}),
    (["284470004"], {"PAC"}), (["63593006"], {"PAC"}),
    (["164884008"], {"PVC"}), (["427172004"], {"PVC"}), (["17338001"], {"PVC"}),
    (["59118001"], {"RBBB"}), (["713427006"], {"RBBB"}),
    (["429622005"], {"STD"}),
    (["164931005"], {"STE"}),
])
def test_each_mapping_rule(codes, expected):
    assert to_scheme(codes, "cpsc") == expected


def test_normal_only_when_every_code_is_normal():
    assert to_scheme(["426783006"], "cpsc") == {"Normal"}
    assert to_scheme(["426783006", "427393009"], "cpsc") == {"Normal"}   # sinus arrhythmia: a normal variant
    assert to_scheme(["426783006", "39732003"], "cpsc") == set()         # left axis deviation is no normal ECG
    assert to_scheme(["426783006", "164934002"], "cpsc") == set()        # nor a T-wave abnormality
    assert to_scheme(["426783006", "164865005"], "cpsc") == set()        # nor an infarct
    assert to_scheme(["426783006", "59118001"], "cpsc") == {"RBBB"}
    assert to_scheme(["426783006", "164889003", "429622005"], "cpsc") == {"AF", "STD"}
    assert to_scheme(["164865005"], "cpsc") == set()


@pytest.mark.shared_data
def test_sinus_rhythm_records_of_the_dev_set_split_as_described():
    """About 5,000 dev records carry sinus rhythm, about 1,760 nothing else; the others are no longer Normal."""
    rows = list(csv.DictReader(open(DATA / "ptbxl" / "INDEX.csv")))
    dx = [row["dx"].split(",") for row in rows]
    sinus = sum("426783006" in codes for codes in dx)
    normal = sum(to_scheme(codes, "cpsc") == {"Normal"} for codes in dx)
    alone = sum(codes == ["426783006"] for codes in dx)
    assert (sinus, alone) == (5038, 1761)
    assert normal == alone + sum(sorted(codes) == ["426783006", "427393009"] for codes in dx)
    assert sinus - normal > 2500


def test_ventricular_ectopics_leave_pvc_undetermined_in_the_official_scheme():
    assert to_scheme(["164884008"], "snomed") == {"164884008"}           # unscored, as the scorer has it
    assert undetermined_classes(["164884008", "426783006"], "snomed") == {"427172004"}
    assert undetermined_classes(["164884008", "17338001"], "snomed") == set()  # a PVC label decides
    assert undetermined_classes(["164884008"], "cpsc") == set() and to_scheme(["164884008"], "cpsc") == {"PVC"}


@pytest.mark.parametrize("name,source", [("A0001", "CPSC"), ("Q0004", "CPSC-Extra"), ("I0001", "St Petersburg INCART"),
                                         ("S0001", "PTB"), ("HR00001", "PTB-XL"), ("E00001", "Georgia"),
                                         ("JS00001", "Chapman-Shaoxing"), ("patient7", "patient"), ("X0001", "X"),
                                         ("A0001b", UNNAMED_SOURCE)])
def test_source_from_record_name(name, source):
    assert source_of(name) == source


def test_text_labels_pass_through():
    assert to_scheme(["AF"], "cpsc") == {"AF"}
    assert to_scheme(["Normal"], "cpsc") == {"Normal"}
    assert to_scheme(["I-AVB", "RBBB"], "cpsc") == {"I-AVB", "RBBB"}


def test_table_targets_only_cpsc_classes():
    assert set(SNOMED_TO_CPSC.values()) <= set(CPSC_CLASSES) - {"Normal"}
    with pytest.raises(ValueError, match="unknown label scheme"):
        to_scheme(["AF"], "icd10")


@pytest.mark.shared_data
def test_mixed_folder_of_text_and_code_labels(tmp_path):
    picks = [FIXTURES / "cpsc_text" / "A0021", FIXTURES / "cpsc_text" / "A0023",
             DATA / "ptbxl" / "HR00001", DATA / "ptbxl" / "HR00004", FIXTURES / "cinc_snomed" / "Q0004"]
    for stem in picks:
        for suffix in (".hea", ".mat"):
            os.symlink(stem.with_suffix(suffix), tmp_path / (stem.name + suffix))
    data = load_training_set(tmp_path, Config(labels="cpsc", records_without_class="negative"))
    assert data.classes == list(CPSC_CLASSES)
    got = {name: {c for c, v in zip(data.classes, row) if v} for name, row in zip(data.names, data.labels)}
    assert got["A0021"] == {"STE"}
    assert got["HR00004"] == {"Normal"}                 # sinus rhythm alone
    assert got["HR00001"] == set()                      # sinus rhythm with low QRS voltages: no CPSC class
    assert got["Q0004"] == set() and not data.skipped   # kept as a negative for every class
    skipping = load_training_set(tmp_path, Config(labels="cpsc"))  # the cpsc scheme's default
    assert set(skipping.skipped) == {"HR00001", "Q0004"}
    assert "names a class of the model" in skipping.skipped["Q0004"]
    assert Config().records_without_class == "negative"  # the snomed scheme keeps them, as it always did


# The 2020 training sources' sizes; their per-class counts are the columns of dx_mapping_scored.csv.
SOURCE_SIZES = {"CPSC": 6877, "CPSC-Extra": 3453, "StPetersburg": 74, "PTB": 516, "PTB-XL": 21837, "Georgia": 10344}
SINUS, AF, QWAVE, LAD, BRADY = "426783006", "164889003", "164917005", "39732003", "426627000"
RBBB = representative("59118001")  # merged with complete RBBB


def official_draw(seed: int = 0):
    """Records of the six 2020 sources with the official per-source class counts (equivalent codes merged),
    each class on random records of its source, except CPSC's sinus rhythm, which CPSC writes only on its
    Normal records: those carry no other class."""
    import csv

    from conftest import ROOT

    rng = np.random.default_rng(seed)
    rows = list(csv.DictReader((ROOT / "dx_mapping_scored.csv").open()))
    classes = list(dict.fromkeys(representative(row["SNOMED CT Code"]) for row in rows))
    sources = np.repeat(list(SOURCE_SIZES), list(SOURCE_SIZES.values()))
    labels = np.zeros((len(sources), len(classes)), dtype=bool)
    for source in SOURCE_SIZES:
        mine = np.flatnonzero(sources == source)
        for row in sorted(rows, key=lambda r: r["SNOMED CT Code"] == SINUS):  # sinus rhythm last
            count, c = int(row[source]), classes.index(representative(row["SNOMED CT Code"]))
            pool = mine[~labels[mine].any(axis=1)] if (source, c) == ("CPSC", classes.index(SINUS)) else mine
            labels[rng.choice(pool, count, replace=False), c] = True
    return sources, classes, labels


def test_label_rules_on_the_official_per_source_counts():
    sources, classes, labels = official_draw()
    known = known_labels(sources, labels)
    column = {c: classes.index(c) for c in (SINUS, AF, QWAVE, RBBB, LAD, BRADY)}

    def known_on(source, c, carrying=None, lacking=None):
        rows = sources == source
        if carrying is not None:
            rows &= labels[:, column[carrying]]
        if lacking is not None:
            rows &= ~labels[:, column[lacking]]
        assert rows.any()
        return set(known[rows, column[c]].tolist())

    extra_others = (sources == "CPSC-Extra") & ~labels[:, column[SINUS]]
    assert not known[extra_others, column[SINUS]].any()                 # 4 of 3,453: unknown on the others
    assert not known[(sources == "CPSC-Extra") & ~labels[:, column[QWAVE]], column[QWAVE]].any()  # 1 of 3,453
    assert known_on("CPSC", SINUS, carrying=SINUS) == {True}              # its Normal records
    assert known_on("CPSC", SINUS, carrying=RBBB) == {False}              # its RBBB records: sinus or not, unsaid
    cpsc_nothing = (sources == "CPSC") & ~labels.any(axis=1)
    assert not cpsc_nothing.any() or known[cpsc_nothing, column[SINUS]].all()
    assert known_on("PTB-XL", SINUS, lacking=SINUS) == {True}             # PTB-XL writes it beside others
    assert known_on("CPSC", AF, lacking=AF) == {True}
    assert known_on("CPSC", LAD) == {False} and known_on("PTB-XL", BRADY) == {False}  # never written
    assert known_on("CPSC-Extra", BRADY, lacking=BRADY) == {True}
    assert known[labels].all()                                            # a positive is always known


def test_label_rules_with_one_source_are_as_before():
    """Trained on one source, a class is labelled once any record carries it, alone or not."""
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=bool)
    known = known_labels(["A"] * 4, labels)
    np.testing.assert_array_equal(known, np.ones((4, 3), dtype=bool))
    np.testing.assert_array_equal(known_labels(["A"] * 4, labels[:, :2] & False), np.zeros((4, 2), dtype=bool))


@pytest.mark.shared_data
def test_label_rules_on_the_development_sources():
    """PTB-XL and Chapman-Shaoxing: Chapman's rare classes (3 and 2 of 767) are labels it gives; PTB-XL's
    sinus bradycardia, 1/17 of Chapman's rate, too; neither labels bradycardia; PVC is Chapman's alone."""
    from conftest import DATA

    data = load_training_set([DATA / "ptbxl", DATA / "chapman"], Config())
    sources = np.array([source_of(n) for n in data.names])
    assert {s: int((sources == s).sum()) for s in set(sources)} == {"PTB-XL": 6100, "Chapman-Shaoxing": 767}
    known = data.mask.astype(bool)
    chapman = sources == "Chapman-Shaoxing"

    def share_known(rows, code):
        return known[rows, data.classes.index(code)].mean()

    for code in ("111975006", "164947007", SINUS, "426177001"):  # LQT, LPR, sinus rhythm, sinus bradycardia
        assert share_known(chapman, code) == 1 and share_known(~chapman, code) == 1
    assert share_known(chapman, "427172004") == 1 and share_known(~chapman, "427172004") == 0   # PVC
    assert share_known(chapman, "445118002") == 0                       # left anterior fascicular block
    assert BRADY not in data.classes


def test_a_class_written_alone_is_unknown_beside_unscored_codes_too():
    """CPSC's PVC, STD and STE records carry only unscored codes in the official scheme: no class, yet not
    'nothing else'. Sinus rhythm is unsaid on them as on its AF records."""
    from cinc2020.labels import loss_mask

    classes = [SINUS, AF]
    names = [f"A{i:04d}" for i in range(12)] + [f"HR{i:05d}" for i in range(10)]
    dx = [[SINUS]] * 6 + [[AF]] * 3 + [["164884008"]] * 3 + [[SINUS, AF]] * 5 + [[SINUS, "164865005"]] * 5
    labels = np.array([[c in d for c in classes] for d in dx], dtype=np.float32)
    mask = loss_mask([source_of(n) for n in names], dx, labels, classes, "snomed")
    np.testing.assert_array_equal(mask[:12, 0], [1] * 6 + [0] * 6)    # CPSC: sinus known on its Normal records
    assert mask[12:].all() and mask[:12, 1].all()


def test_the_2021_scheme_reads_each_class_of_the_2021_table_as_one_model_class():
    """Every code of a "|"-joined class of weights_2021.csv names one class of a model (733534002, complete
    LBBB, is the 2020 LBBB class there), so that tuning for the 2021 metric and the 2021 scorer agree."""
    from cinc2020.scoring import WEIGHTS_2021_FILE, load_weights

    for name in load_weights(WEIGHTS_2021_FILE)[0]:
        assert len({frozenset(to_scheme([code], "2021")) for code in name.split("|")}) == 1, name
    assert to_scheme(["733534002"], "snomed") == {"733534002"}  # the 2020 scheme keeps them apart
