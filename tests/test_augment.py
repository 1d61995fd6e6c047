import numpy as np
import pytest

from conftest import SAMPLES
from cinc2020.augment import augment, keep_leads, lead_mask, network_leads
from cinc2020.batches import random_crop, training_input
from cinc2020.records import LEAD_SETS_2021
from cinc2020.config import Config
from cinc2020.preprocess import clean
from cinc2020.records import STANDARD_LEADS, read_record

LIMB = slice(0, 6)
# Every part of the augmentation off: what is left must give back the record itself.
NOTHING = dict(augment=True, scale_sd=0.0, noise_sd=0.0, wander_mv=0.0, shift_s=0.0, lead_dropout=0.0)


@pytest.fixture(scope="module")
def record():
    """A real 12-lead record (CPSC A0002, 500 Hz) cleaned at 100 Hz: millivolts, centred."""
    return clean(*read_record(SAMPLES / "A0002.hea"), Config())


def test_with_every_part_off_the_record_comes_back_unchanged(record):
    out = augment(record, Config(**NOTHING), np.random.default_rng(0))
    np.testing.assert_allclose(out, record, atol=1e-6)


def test_draws_come_from_the_generator_alone(record):
    config = Config(augment=True, lead_dropout=1.0)
    first = augment(record, config, np.random.default_rng(7))
    again = augment(record, config, np.random.default_rng(7))
    other = augment(record, config, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and first.shape[0] == 12 and np.isfinite(first).all()
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_random_start_shortens_by_at_most_shift_s(record):
    config = Config(**{**NOTHING, "shift_s": 0.5})
    lengths = {augment(record, config, np.random.default_rng(seed)).shape[1] for seed in range(40)}
    assert min(lengths) >= record.shape[1] - 50 and max(lengths) <= record.shape[1] and len(lengths) > 10
    out = augment(record, config, np.random.default_rng(3))
    np.testing.assert_allclose(out, record[:, record.shape[1] - out.shape[1]:], atol=1e-6)  # the same samples, later start


def test_amplitude_scales_each_lead_by_a_lognormal_factor(record):
    config = Config(**{**NOTHING, "scale_sd": 0.1})
    factors = np.array([[augment(record, config, np.random.default_rng(seed))[lead, 100] / record[lead, 100]
                         for lead in (0, 7)] for seed in range(400)])
    assert np.log(factors).std() == pytest.approx(0.1, rel=0.15)
    assert abs(np.log(factors).mean()) < 0.02
    assert not np.allclose(factors[:, 0], factors[:, 1])  # leads scaled apart


def test_baseline_wander_is_slow_and_bounded(record):
    config = Config(**{**NOTHING, "wander_mv": 0.3})
    wander = augment(record, config, np.random.default_rng(1)) - record
    assert np.abs(wander).max() <= 0.3 + 1e-5 and np.abs(wander).max() > 0.01
    spectrum = np.abs(np.fft.rfft(wander, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(wander.shape[1], 1 / 100)
    assert spectrum[:, frequencies <= 1.0].sum() > 0.95 * spectrum.sum()  # its power below 1 Hz


def test_noise_is_white_at_the_asked_share_of_each_lead(record):
    config = Config(**{**NOTHING, "noise_sd": 0.05})
    noise = augment(record, config, np.random.default_rng(2)) - record
    np.testing.assert_allclose(noise.std(axis=1), 0.05 * record.std(axis=1), rtol=0.15)


@pytest.mark.parametrize("lead_set", list(LEAD_SETS_2021))
def test_a_lead_set_reads_as_that_record_would_with_only_those_leads(record, lead_set):
    kept = lead_mask(LEAD_SETS_2021[lead_set])
    out = keep_leads(record, kept)
    precordial = slice(6, 12)
    np.testing.assert_array_equal(out[precordial][~kept[precordial]], 0)
    np.testing.assert_array_equal(out[precordial][kept[precordial]], record[precordial][kept[precordial]])
    # Two limb leads or more are kept in every 2021 set: all six are back (the record's own agree within 3 uV).
    np.testing.assert_allclose(out[LIMB], record[LIMB], atol=3e-3)


def test_fewer_than_two_limb_leads_are_not_derived(record):
    kept = lead_mask(["II", "V1", "V5"])
    out = keep_leads(record, kept)
    np.testing.assert_array_equal(out[~kept], 0)
    np.testing.assert_array_equal(out[kept], record[kept])


def test_lead_dropout_draws_the_2021_sets_and_random_subsets(record):
    config = Config(**{**NOTHING, "lead_dropout": 1.0})
    seen = set()
    for seed in range(200):
        out = augment(record, config, np.random.default_rng(seed))
        present = tuple(np.array(STANDARD_LEADS)[out.any(axis=1)])
        seen.add(present)
        if out[:6].any(axis=1).sum() >= 2:  # two limb leads or more: the six are all there
            assert out[:6].any(axis=1).all()
    for lead_set in ("6 leads", "4 leads", "3 leads", "2 leads"):
        derived = tuple(sorted(set(LEAD_SETS_2021[lead_set]) | set(LEAD_SETS_2021["6 leads"]),
                               key=STANDARD_LEADS.index))
        assert derived in seen, lead_set
    assert len(seen) > 10  # and random subsets beside them


def test_training_input_crops_and_normalises(record):
    config = Config(train_crop_s=4.0, augment=False, normalisation="std")
    out = training_input(record, config, np.random.default_rng(0))
    assert out.shape == (12, 400)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-3)
    assert random_crop(record, 10_000, np.random.default_rng(0)) is record  # short records stay whole


@pytest.mark.parametrize("lead_set", list(LEAD_SETS_2021))
def test_a_network_for_one_lead_set_trains_on_those_leads_alone(record, lead_set):
    config = Config(train_crop_s=4.0, augment=False, normalisation="mean", network_leads=lead_set)
    expected = keep_leads(record, lead_mask(LEAD_SETS_2021[lead_set]))
    np.testing.assert_array_equal(network_leads(record, config), expected)
    out = training_input(record, config, np.random.default_rng(0))
    np.testing.assert_array_equal(out.any(axis=1), expected.any(axis=1))  # the same leads reach it, no others
    if lead_set == "12 leads":
        assert network_leads(record, config) is record
