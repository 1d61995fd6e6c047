"""The 2021 challenge's entry points ("Will Two Do?"), called by the organisers' train_model.py and
test_model.py (their own copies; this file needs none of their helper code):

* ``training_code(data_directory, model_directory)``: the recipe of ``train_model.py`` (2020), changed by
  ``$CINC2020_CONFIG`` as there; the model it saves carries thresholds tuned per 2021 lead set;
* ``load_model(model_directory, leads)``: once per distinct lead set of the test headers;
* ``run_model(model, header, recording)`` -> ``(classes, labels, probabilities)`` over the 2021 table's
  classes, where ``header`` is the header file's text and ``recording`` the raw ``val`` array (the header's
  leads only, in its order). It never raises: a record it cannot use gets all zeros and one stderr line.

The organisers' 2021 ``train_model.py`` takes the place of ours (same name) when they run an entry; both
reach the same training.
"""

from cinc2020.cpus import inference_threads, use_threads
from cinc2020.inference import classify_2021, load_for_leads
from train_12ECG_classifier import train_12ECG_classifier


def training_code(data_directory, model_directory):
    train_12ECG_classifier(data_directory, model_directory)


def load_model(model_directory, leads):
    use_threads(inference_threads())
    return load_for_leads(model_directory, leads)


def run_model(model, header, recording):
    return classify_2021(header, recording, model)
