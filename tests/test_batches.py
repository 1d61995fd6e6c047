"""The input pipeline of training: duration-grouped batches."""

import numpy as np
import pytest
import torch

from cinc2020.batches import duration_batches, mixup


@pytest.mark.parametrize("records", [21, 41, 61, 2, 3])
def test_a_lone_last_record_joins_a_batch_and_every_record_is_in_exactly_one(records):
    batches = duration_batches(np.arange(records) + 1000, 20, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(records))
    assert min(map(len, batches)) >= 2 or records < 2


def test_mixup_mixes_signals_and_targets_by_one_weight_a_record_and_keeps_only_labels_both_sources_give():
    rng = np.random.default_rng(3)
    signals = torch.randn(5, 12, 40)
    lengths = torch.tensor([40, 30, 40, 20, 35])
    targets = (rng.random((5, 4)) > 0.5).astype(np.float32)
    mask = np.ones((5, 4), dtype=np.float32)
    mask[1, 2] = 0  # a label record 1's source does not give
    demographics = rng.random((5, 3)).astype(np.float32)
    mixed, mixed_lengths, mixed_targets, mixed_mask, mixed_demographics = mixup(
        signals, lengths, targets, mask, demographics, 0.2, np.random.default_rng(7))
    draws = np.random.default_rng(7)  # the same stream: the partner permutation, then the weights
    partner = draws.permutation(5)
    weight = draws.beta(0.2, 0.2, size=5).astype(np.float32)
    for i, j in enumerate(partner):
        assert torch.allclose(mixed[i], weight[i] * signals[i] + (1 - weight[i]) * signals[j])
        np.testing.assert_allclose(mixed_targets[i], weight[i] * targets[i] + (1 - weight[i]) * targets[j], rtol=1e-6)
        np.testing.assert_allclose(mixed_demographics[i], weight[i] * demographics[i] + (1 - weight[i]) * demographics[j],
                                   rtol=1e-6)
        assert mixed_lengths[i] == max(lengths[i], lengths[j])
        assert (mixed_mask[i] == mask[i] * mask[j]).all()
    assert mixed_mask[1, 2] == 0 and mixed_mask[list(partner).index(1), 2] == 0

