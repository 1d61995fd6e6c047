"""The Challenge's training entry point: train_12ECG_classifier(input_directory, output_directory)."""

from cinc2020.config import config_from_environment
from cinc2020.recipe import MODELS, STACKING, train_ensemble


def train_12ECG_classifier(input_directory, output_directory, resume=False, models=None, stacking=None,
                           keep_networks=False, **overrides):
    """Train on the records of ``input_directory``; save the model in ``output_directory``.

    The recipe (cinc2020/recipe.py): ``folds``-fold cross-validation of each of
    ``models``, their fold models ensembled (or with ``refit``, one network per
    architecture retrained on every record), thresholds tuned out of fold, and a
    stacking meta-classifier when there are two architectures and ``stacking``.
    Each network's configuration is the default one, changed by ``$CINC2020_CONFIG``
    (JSON, or a path to a JSON file) and then by keyword ``overrides``, applied as given, None
    included (a command line passes only the options given: ``config.given_options``). With
    ``resume``, a killed run keeps its finished folds and continues the one under way. ``keep_networks``: see ``recipe.train_ensemble``.
    """
    configs = [config_from_environment(model=model, **overrides) for model in (models or MODELS)]
    return train_ensemble(input_directory, output_directory, configs, STACKING if stacking is None else stacking,
                          resume=resume, keep_networks=keep_networks)
