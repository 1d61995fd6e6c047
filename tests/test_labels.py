import os

import pytest

from conftest import DATA, FIXTURES
from cinc2020.config import Config
from cinc2020.data import load_training_set
from cinc2020.labels import CPSC_CLASSES, SNOMED_TO_CPSC, representative, to_scheme


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


def test_normal_only_without_another_mapped_code():
    assert to_scheme(["426783006"], "cpsc") == {"Normal"}
    assert to_scheme(["426783006", "164865005"], "cpsc") == {"Normal"}  # MI is not a CPSC class
    assert to_scheme(["426783006", "59118001"], "cpsc") == {"RBBB"}
    assert to_scheme(["426783006", "164889003", "429622005"], "cpsc") == {"AF", "STD"}
    assert to_scheme(["164865005"], "cpsc") == set()


def test_text_labels_pass_through():
    assert to_scheme(["AF"], "cpsc") == {"AF"}
    assert to_scheme(["Normal"], "cpsc") == {"Normal"}
    assert to_scheme(["I-AVB", "RBBB"], "cpsc") == {"I-AVB", "RBBB"}


def test_table_targets_only_cpsc_classes():
    assert set(SNOMED_TO_CPSC.values()) <= set(CPSC_CLASSES) - {"Normal"}
    with pytest.raises(ValueError, match="unknown label scheme"):
        to_scheme(["AF"], "icd10")


def test_mixed_folder_of_text_and_code_labels(tmp_path):
    picks = [FIXTURES / "cpsc_text" / "A0021", FIXTURES / "cpsc_text" / "A0023",
             DATA / "ptbxl" / "HR00001", DATA / "ptbxl" / "HR00004", FIXTURES / "cinc_snomed" / "Q0004"]
    for stem in picks:
        for suffix in (".hea", ".mat"):
            os.symlink(stem.with_suffix(suffix), tmp_path / (stem.name + suffix))
    data = load_training_set(tmp_path, Config(labels="cpsc"))
    assert data.classes == list(CPSC_CLASSES)
    got = {name: {c for c, v in zip(data.classes, row) if v} for name, row in zip(data.names, data.labels)}
    assert got["A0021"] == {"STE"}
    assert got["HR00004"] == {"Normal"}                 # sinus rhythm alone
    assert got["HR00001"] == {"Normal"}                 # 251146004 is not in the table
    assert "Q0004" in data.skipped                      # no code of the table
    assert "maps to a CPSC class" in data.skipped["Q0004"]
