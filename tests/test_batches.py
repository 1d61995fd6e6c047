"""The input pipeline of training: duration-grouped batches."""

import numpy as np
import pytest

from cinc2020.batches import duration_batches


@pytest.mark.parametrize("records", [21, 41, 61, 2, 3])
def test_a_lone_last_record_joins_a_batch_and_every_record_is_in_exactly_one(records):
    batches = duration_batches(np.arange(records) + 1000, 20, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(records))
    assert min(map(len, batches)) >= 2 or records < 2
