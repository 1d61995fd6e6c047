import csv
import os

import pytest

from conftest import DATA, FIXTURES
from cinc2020.config import Config
from cinc2020.data import load_training_set
from cinc2020.labels import (CPSC_CLASSES, SNOMED_TO_CPSC, representative, source_of, to_scheme,
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
                                         ("JS00001", "Chapman-Shaoxing"), ("patient7", None), ("X0001", None),
                                         ("A0001b", None)])
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
