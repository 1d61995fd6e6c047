"""The Challenge's training entry point: train_12ECG_classifier(input_directory, output_directory)."""

from cinc2020.config import config_from_environment
from cinc2020.train import train


def train_12ECG_classifier(input_directory, output_directory, resume=False, **overrides):
    """Train on the records of ``input_directory``; save the model in ``output_directory``.

    The configuration is the default one, changed by ``$CINC2020_CONFIG`` (JSON,
    or a path to a JSON file) and then by keyword ``overrides``. With ``resume``,
    a killed run continues from its last completed epoch.
    """
    return train(input_directory, output_directory, config_from_environment(**overrides), resume=resume)
