"""The Challenge's inference entry points, for each of the organisers' 2020 drivers.

* final (official phase): ``load_12ECG_model(model_dir)``, then
  ``run_12ECG_classifier(data, header_data, model)`` -> ``(labels, scores, classes)``;
* July 2020: ``load_12ECG_model(model_dir)``, then
  ``run_12ECG_classifier(data, header_data, classes, model)`` -> ``(labels, scores)`` for the
  ``classes`` the driver found in the test headers (sorted SNOMED CT codes);
* unofficial phase (February 2020): ``load_12ECG_model()`` with no folder, then the same
  four-argument call with the sorted CPSC text classes. Both shipped models are loaded; the
  first call's classes pick the one that speaks them.

``data`` is the .mat ``val`` array (leads x samples, ADC units), ``header_data`` the .hea
file's lines. A class the model cannot answer is 0 and negative.
"""

from cinc2020.cpus import inference_threads, use_threads
from cinc2020.inference import ShippedModels, answer_for, classify, load_model, load_shipped_models


def load_12ECG_model(input_directory=None):
    """The model saved in ``input_directory``, or both shipped models when none is given (once per run)."""
    use_threads(inference_threads())
    return load_shipped_models() if input_directory is None else load_model(input_directory)


def run_12ECG_classifier(data, header_data, *classes_and_model):
    """``(labels, scores, classes)`` given the model alone; ``(labels, scores)`` for ``classes`` given
    ``classes, model``."""
    if len(classes_and_model) == 1:
        return classify(data, header_data, classes_and_model[0])
    classes, model = classes_and_model
    if isinstance(model, ShippedModels):
        model = model.pick(classes)
    labels, scores, known = classify(data, header_data, model)
    return answer_for(list(classes), labels, scores, known)
