"""Random and mutated headers and signal files raise RecordError or nothing else."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SAMPLES
from cinc2020.config import Config
from cinc2020.preprocess import prepare
from cinc2020.records import RecordError, parse_header, read_signal_file, standard_leads

REAL_HEADER = (SAMPLES / "A0002.hea").read_text()
REAL_MAT = (SAMPLES / "A0002.mat").read_bytes()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def only_record_errors(call, *args):
    try:
        return call(*args)
    except RecordError:
        return None


@FUZZ
@given(st.text(max_size=400))
def test_random_header_text(text):
    only_record_errors(parse_header, text)


tokens = st.sampled_from(["", " ", "NaN", "-1", "0", "1e400", "inf", "12", "500", "1000(0)/mV", "x/", "(",
                          "#Dx:", "#Age:", ":", ",", "\n", "16+24", "aVR", "V7", "\t", "1/0", "1e-9"])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10_000), st.lists(tokens, min_size=1, max_size=4)), max_size=8))
def test_mutated_real_header(edits):
    text = REAL_HEADER
    for position, inserted in edits:
        position %= len(text) + 1
        text = text[:position] + " ".join(inserted) + text[position + 3:]
    header = only_record_errors(parse_header, text)
    if header is not None:
        data = np.random.default_rng(0).integers(-2000, 2000, (len(header.leads), 500)).astype(float)
        only_record_errors(prepare, data, text, Config())


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(REAL_MAT) - 1), st.integers(0, 255)), max_size=20),
       st.integers(0, len(REAL_MAT)))
def test_mutated_signal_file(tmp_path_factory, flips, cut):
    raw = bytearray(REAL_MAT[:cut])
    for position, value in flips:
        if position < len(raw):
            raw[position] = value
    path = tmp_path_factory.mktemp("mat") / "R.mat"
    path.write_bytes(bytes(raw))
    data = only_record_errors(read_signal_file, path)
    if data is not None:
        header = parse_header(REAL_HEADER)
        only_record_errors(standard_leads, data, header)


@FUZZ
@given(st.binary(max_size=300))
def test_random_signal_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("mat") / "R.mat"
    path.write_bytes(raw)
    only_record_errors(read_signal_file, path)


@FUZZ
@given(st.integers(1, 16), st.integers(0, 40), st.sampled_from([np.int16, np.float64, np.int32]),
       st.sampled_from([np.nan, np.inf, 0.0, 1e30]))
def test_odd_shapes_and_values_reach_the_model_input(leads, samples, dtype, special):
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "X", "Y", "Z", "vx"]
    lines = [f"R {leads} 500 {samples}"] + [f"R.mat 16+24 1000/mV 16 0 0 0 0 {names[i]}" for i in range(leads)]
    data = np.ones((leads, samples), dtype=dtype)
    if samples and (np.issubdtype(dtype, np.floating) or np.isfinite(special) and abs(special) < 1e9):
        data[0, 0] = special
    signal = only_record_errors(prepare, data, "\n".join(lines), Config())
    if signal is not None:
        assert signal.shape[0] == 12 and np.isfinite(signal).all()


def test_a_signal_file_whose_header_claims_more_than_it_holds_is_the_records_error(tmp_path):
    """Found by the fuzz test: one byte of the rows field changed, the file cut after its header. Reading it
    asks for more memory than there is, which is the file's fault, not the machine's (tests/test_records.py:
    a machine fault passes up)."""
    raw = bytearray(REAL_MAT[:20])
    raw[6] = 39
    path = tmp_path / "R.mat"
    path.write_bytes(bytes(raw))
    with pytest.raises(RecordError, match="claims more values than the file holds"):
        read_signal_file(path)
