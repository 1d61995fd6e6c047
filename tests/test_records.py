import errno
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from conftest import DATA, FIXTURES, SAMPLES
from cinc2020 import records as records_module
from cinc2020.records import (STANDARD_LEADS, RecordError, find_records, parse_header, read_record, resample,
                              standard_leads, with_leads)

SNOMED = FIXTURES / "cinc_snomed"


def header_text(fs=500, n=5000, gain="1000/mV", leads=STANDARD_LEADS, comments=("#Age: 60", "#Sex: Male", "#Dx: 426783006")):
    lines = [f"REC {len(leads)} {fs} {n}"]
    lines += [f"REC.mat 16+24 {gain} 16 0 0 0 0 {lead}" for lead in leads]
    return "\n".join([*lines, *comments]) + "\n"


@pytest.mark.shared_data
def test_reads_every_fixture_record():
    for header_path in sorted(FIXTURES.glob("*/*.hea")):
        data, lines = read_record(header_path)
        header = parse_header(lines)
        assert header.fs in (500, 1000)
        assert data.shape == (12, header.n_samples)
        assert [lead.name for lead in header.leads] == list(STANDARD_LEADS)
        assert header.dx


@pytest.mark.shared_data
def test_header_quirks_of_real_records():
    nan_age = parse_header((SNOMED / "E00001.hea").read_text())
    assert math.isnan(nan_age.age) and nan_age.sex == "Female" and nan_age.dx == ["426783006"]
    lower_unit = parse_header((SNOMED / "HR00001.hea").read_text())  # gains written 1000/mv
    assert lower_unit.leads[0].gain == 1000 and lower_unit.leads[0].scale_to_mv == 1.0
    long_record = parse_header((SNOMED / "S0008.hea").read_text())
    assert long_record.fs == 1000 and long_record.n_samples == 115174
    ptbxl = parse_header((DATA / "ptbxl" / "HR00001.hea").read_text())
    assert ptbxl.fs == 100 and ptbxl.dx == ["251146004", "426783006"]


@pytest.mark.parametrize("gain,raw,expected_mv", [
    ("1000/mV", 1500, 1.5),
    ("1000.0(0)/mV", 1500, 1.5),
    ("1000/mv", -500, -0.5),
    ("200(-5)/mV", 195, 1.0),
    ("4.88(0)/uV", 4880, 1.0),
    ("0/mV", 400, 2.0),        # zero gain means WFDB's default of 200
    ("1000", 2000, 2.0),       # no units: millivolts
])
def test_gain_baseline_and_units(gain, raw, expected_mv):
    header = parse_header(header_text(gain=gain))
    data = np.full((12, 10), raw, dtype=np.int16)
    assert standard_leads(data, header)[0, 0] == pytest.approx(expected_mv, rel=1e-6)


def test_comment_variants():
    header = parse_header(header_text(comments=("# Age: 71.5", "# Sex: Unknown", "# Dx: 164889003, 59118001")))
    assert header.age == 71.5 and header.sex == "Unknown" and header.dx == ["164889003", "59118001"]
    bare = parse_header(header_text(comments=()))
    assert math.isnan(bare.age) and bare.sex == "Unknown" and bare.dx == []
    text_age = parse_header(header_text(comments=("#Age: NaN", "#Dx: AF")))
    assert math.isnan(text_age.age) and text_age.dx == ["AF"]


def test_leads_mapped_by_name_in_any_order():
    data, lines = read_record(SAMPLES / "A0002.hea")
    header = parse_header(lines)
    reference = standard_leads(data, header)
    order = np.random.default_rng(0).permutation(12)
    shuffled_lines = [lines[0]] + [lines[1 + i] for i in order] + lines[13:]
    shuffled = standard_leads(data[order], parse_header(shuffled_lines))
    np.testing.assert_array_equal(shuffled, reference)


def test_missing_leads_are_zero_and_unknown_names_ignored():
    header = parse_header(header_text(leads=("II", "v5", "Pleth")))
    out = standard_leads(np.ones((3, 20)) * 1000, header)
    assert out.shape == (12, 20)
    assert out[STANDARD_LEADS.index("II")].max() == 1.0 and out[STANDARD_LEADS.index("V5")].max() == 1.0
    assert np.count_nonzero(out.any(axis=1)) == 2


def test_nan_and_inf_samples_become_zero():
    header = parse_header(header_text())
    data = np.ones((12, 5)) * 1000
    data[0, 1], data[1, 2] = np.nan, np.inf
    out = standard_leads(data, header)
    assert np.isfinite(out).all() and out[0, 1] == 0 and out[0, 0] == 1.0


@pytest.mark.parametrize("text,match", [
    ("", "no record line"),
    ("REC", "no signal count"),
    ("REC 12 0 5000", "sampling frequency 0 is outside"),
    ("REC 12 1e-9 5000", "outside 10 to 20000 Hz"),
    ("REC 12 abc 5000", "not a number"),
    ("REC 2 500 100\nREC.mat 16 1000/mV 16 0 0 0 0 I", "describes 1"),
    ("REC 1 500 100\nREC.mat 16 lots/mV 16 0 0 0 0 I", "gain"),
])
def test_bad_headers_raise_record_error(text, match):
    with pytest.raises(RecordError, match=match):
        parse_header(text)


def test_lead_count_mismatch_and_empty_signal():
    header = parse_header(header_text())
    with pytest.raises(RecordError, match="12 leads but the signal has 11"):
        standard_leads(np.zeros((11, 100)), header)
    with pytest.raises(RecordError, match="no samples"):
        standard_leads(np.zeros((12, 0)), header)


def test_bad_signal_files(tmp_path):
    (tmp_path / "R.hea").write_text(header_text())
    with pytest.raises(RecordError, match="no such signal file"):
        read_record(tmp_path / "R.hea")
    (tmp_path / "R.mat").write_bytes(b"this is not matlab")
    with pytest.raises(RecordError, match="not a readable MATLAB file"):
        read_record(tmp_path / "R.hea")
    savemat(tmp_path / "R.mat", {"signal": np.zeros((12, 10))}, format="4")
    with pytest.raises(RecordError, match="no 'val'"):
        read_record(tmp_path / "R.hea")
    good = (SAMPLES / "A0002.mat").read_bytes()
    (tmp_path / "R.mat").write_bytes(good[: len(good) // 2])
    with pytest.raises(RecordError):
        read_record(tmp_path / "R.hea")


@pytest.mark.parametrize("fs_in", [257, 300, 500, 1000, 100])
def test_resampling_keeps_duration_and_waveform(fs_in):
    seconds, fs_out = 10, 100
    t = np.arange(int(seconds * fs_in)) / fs_in
    signal = np.tile(np.sin(2 * np.pi * 2.0 * t), (12, 1)).astype(np.float32)
    out = resample(signal, fs_in, fs_out)
    assert out.shape == (12, seconds * fs_out)
    t_out = np.arange(out.shape[1]) / fs_out
    inner = slice(50, -50)  # away from the filter's edge effects
    np.testing.assert_allclose(out[0, inner], np.sin(2 * np.pi * 2.0 * t_out)[inner], atol=0.02)


@pytest.mark.parametrize("fs_in, fs_out", [(500, 100), (1000, 100), (300, 100), (257, 100), (360, 100),
                                            (997, 100), (1000.5, 100), (100, 500), (100, 257)])
@pytest.mark.parametrize("samples", [2, 7, 31, 5000])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunk_values", [1 << 22, 20_000])  # one chunk; several outputs in each of many chunks
def test_resampling_equals_scipy_resample_poly(fs_in, fs_out, samples, dtype, chunk_values):
    """The numpy resampler reproduces scipy's, filter design and edge handling included, in scipy's
    arithmetic (float32 for float32 signals)."""
    from scipy.signal import resample_poly

    signal = (50 + np.cumsum(np.random.default_rng(samples).standard_normal((12, samples)), axis=1)).astype(dtype)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    expected = resample_poly(signal, ratio.numerator, ratio.denominator, axis=-1, padtype="line")
    out = resample(signal, fs_in, fs_out, chunk_values=chunk_values)
    assert out.shape == expected.shape and out.dtype == np.float32
    scale = np.abs(expected).max()
    np.testing.assert_allclose(out, expected, rtol=0, atol=(1e-6 if dtype == np.float64 else 4e-6) * scale)
    np.testing.assert_allclose(resample(signal[3], fs_in, fs_out), out[3], rtol=0, atol=1e-6 * scale)  # one lead


@pytest.mark.parametrize("leads", [("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"), ("I", "II"),
                                   ("III", "aVF", "V2"), ("aVR", "aVL")])
def test_missing_limb_leads_are_derived_from_any_two(leads):
    """An 8-lead archive record (I, II, V1-V6), or any two limb leads, loses no limb-lead information."""
    data, lines = read_record(SAMPLES / "A0002.hea")
    full = standard_leads(data, parse_header(lines))
    subset_data, subset_lines = with_leads(data, lines, leads)
    assert parse_header(subset_lines).fs == 500 and [lead.name for lead in parse_header(subset_lines).leads] == \
        [name for name in STANDARD_LEADS if name in leads] and subset_data.shape == (len(leads), 5000)
    derived = standard_leads(subset_data, parse_header(subset_lines))
    np.testing.assert_allclose(derived[:6], full[:6], atol=5e-3)  # stored to 1 uV: within 5 uV (solving from aVR and aVL amplifies rounding)
    for name in STANDARD_LEADS[6:]:
        row = STANDARD_LEADS.index(name)
        np.testing.assert_array_equal(derived[row], full[row] if name in leads else 0)


def test_a_limb_lead_stored_as_zeros_is_derived_too():
    data, lines = read_record(SAMPLES / "A0002.hea")
    full = standard_leads(data, parse_header(lines))
    data = data.copy()
    data[2:6] = 0  # III, aVR, aVL, aVF written as zeros, as reduced-lead sets are often stored
    np.testing.assert_allclose(standard_leads(data, parse_header(lines))[:6], full[:6], atol=3e-3)


def linked_tree(tmp_path, records):
    """A training folder with 20 records of its own and a linked subfolder holding 20 more."""
    own, elsewhere = tmp_path / "training" / "own", tmp_path / "elsewhere"
    for folder, chosen in ((own, records[:20]), (elsewhere, records[20:40])):
        folder.mkdir(parents=True)
        for header in chosen:
            for path in (header, header.with_suffix(".mat")):
                (folder / path.name).symlink_to(path)
    (tmp_path / "training" / "linked").symlink_to(elsewhere, target_is_directory=True)
    return tmp_path / "training"


@pytest.mark.shared_data
def test_a_linked_subfolder_is_followed_and_a_link_back_up_is_read_once(tmp_path):
    records = find_records(DATA / "ptbxl")[:40]
    training = linked_tree(tmp_path, records)
    (tmp_path / "elsewhere" / "loop").symlink_to(training, target_is_directory=True)  # round and round
    assert [p.stem for p in find_records(training)] == [p.stem for p in records]


@pytest.mark.shared_data
def test_a_folder_that_cannot_be_read_is_an_error_not_fewer_records(tmp_path, monkeypatch):
    training = linked_tree(tmp_path, find_records(DATA / "ptbxl")[:40])
    real = os.scandir

    def refusing(path="."):  # as root, chmod refuses nothing: the fault is injected
        if Path(path).name == "linked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(ValueError, match="cannot read the folder .*linked \\(Permission denied\\)"):
        find_records(training)


@pytest.mark.parametrize("fault", [PermissionError(errno.EACCES, "Permission denied"),
                                   OSError(errno.EIO, "Input/output error"), MemoryError()])
def test_a_machine_fault_while_reading_is_no_record_error(tmp_path, monkeypatch, fault):
    """The record is not to blame: the fault passes up (the cache then does not remember it, the driver
    still answers the record with zeros), where a corrupt file is the record's RecordError."""
    (tmp_path / "r.hea").write_text(header_text())
    savemat(tmp_path / "r.mat", {"val": np.zeros((12, 5000), dtype=np.int16)}, format="4")

    def failing(*args, **kwargs):
        raise fault

    monkeypatch.setattr(records_module, "loadmat", failing)
    with pytest.raises(type(fault)):
        read_record(tmp_path / "r.hea")
    monkeypatch.setattr(records_module, "loadmat", lambda *a, **k: (_ for _ in ()).throw(OSError("not a MATLAB file")))
    with pytest.raises(RecordError, match="not a readable MATLAB file"):
        read_record(tmp_path / "r.hea")
