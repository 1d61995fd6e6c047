"""The Challenge's inference entry points."""

from cinc2020.inference import classify, load_model


def load_12ECG_model(input_directory):
    """Load the model saved in ``input_directory`` (once per run)."""
    return load_model(input_directory)


def run_12ECG_classifier(data, header_data, loaded_model):
    """``(labels, scores, classes)`` for one record: ``data`` is the .mat ``val`` array
    (leads x samples, ADC units), ``header_data`` the .hea file's lines."""
    return classify(data, header_data, loaded_model)
