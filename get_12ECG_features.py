"""The Challenge example's feature hook. Our models learn their own features, so a
record's features are the network's input: 12 standard leads, resampled and normalised."""

from cinc2020.config import Config
from cinc2020.preprocess import prepare


def get_12ECG_features(data, header_data, config=None):
    """A (12 x samples) float32 array at the model's sampling rate."""
    return prepare(data, header_data, config or Config())
