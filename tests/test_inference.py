"""Running a saved model: how a record longer than the training crop is cut into pieces."""

import numpy as np
import pytest

from cinc2020.inference import pieces


def test_a_record_no_longer_than_a_piece_is_one_piece():
    assert pieces(6000, 6000) == [(0, 6000)] and pieces(500, 6000) == [(0, 500)] and pieces(9000, None) == [(0, 9000)]


def test_pieces_are_evenly_spaced_so_the_tail_counts_no_more_than_the_rest():
    assert pieces(12100, 6000) == [(0, 6000), (3050, 9050), (6100, 12100)]


@pytest.mark.parametrize("length", [6001, 9000, 12000, 12100, 18000, 180_000, 180_017])
def test_pieces_cover_the_record_with_the_fewest_pieces_and_even_overlaps(length):
    cut = pieces(length, 6000)
    starts = np.array([start for start, _ in cut])
    assert len(cut) == -(-length // 6000) and all(end - start == 6000 for start, end in cut)
    assert cut[0][0] == 0 and cut[-1][1] == length
    assert np.ptp(np.diff(starts)) <= 1  # evenly spaced, to the sample
    covered = np.zeros(length, dtype=int)
    for start, end in cut:
        covered[start:end] += 1
    assert covered.min() >= 1
    if np.ptp(np.diff(starts)) == 0:  # exactly even: the overlaps lie alike from either end
        assert np.array_equal(covered, covered[::-1])


def test_a_network_for_one_lead_set_predicts_from_those_leads_alone():
    import torch

    from conftest import SAMPLES
    from cinc2020.augment import keep_leads, lead_mask
    from cinc2020.config import Config
    from cinc2020.inference import predict_probabilities
    from cinc2020.models import build_model
    from cinc2020.preprocess import N_DEMOGRAPHICS, clean
    from cinc2020.records import LEAD_SETS_2021, read_record

    torch.manual_seed(0)
    config = Config(network_leads="2 leads")
    network = build_model(config, 5).eval()
    record = clean(*read_record(SAMPLES / "A0002.hea"), config)
    person = np.zeros((2, N_DEMOGRAPHICS))
    whole, reduced = predict_probabilities(network, config, [record, keep_leads(record, lead_mask(LEAD_SETS_2021["2 leads"]))],
                                           person, torch.device("cpu"))
    np.testing.assert_allclose(whole, reduced, atol=1e-6)  # the precordial leads never reach it
    everything = predict_probabilities(network, Config(), [record], person[:1], torch.device("cpu"))[0]
    assert np.abs(everything - whole).max() > 1e-4  # while a 12-lead reading of the same weights sees them
