"""The configuration: every choice checked when it is made, before any record is read."""

import json

import pytest

from conftest import FIXTURES, ROOT, run_script
from cinc2020.config import CHOICES, Config
from cinc2020.models import ARCHITECTURES
from cinc2020.records import LEAD_SETS_2021


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_a_value_outside_a_choice_is_refused_with_the_allowed_ones(name):
    with pytest.raises(ValueError) as error:
        Config(**{name: "typo"})
    assert "typo" in str(error.value) and all(value in str(error.value) for value in CHOICES[name])


@pytest.mark.parametrize("name", ["epochs", "batch_size", "folds", "patience", "min_positives"])
def test_counts_below_one_are_refused(name):
    with pytest.raises(ValueError, match=f"{name} must be 1 or more, not 0"):
        Config(**{name: 0})


@pytest.mark.parametrize("change,message", [
    ({"bandpass_hz": (40, 0.5)}, "bandpass_hz must be \\[low, high\\] with 0 < low < high, not \\[40, 0.5\\]"),
    ({"bandpass_hz": (0, 40)}, "bandpass_hz must be"),
    ({"loader_workers": -1}, "loader_workers must be 0 or more"),
    ({"lr": 0}, "lr must be above 0, not 0"),
    ({"fs": -100}, "fs must be above 0"),
    ({"dropout": 1.0}, "dropout must be at least 0 and below 1, not 1.0"),
    ({"lead_dropout": 1.5}, "lead_dropout must be between 0 and 1"),
    ({"noise_sd": -0.1}, "noise_sd must be 0 or more"),
    ({"gradient_clip": 0}, "gradient_clip must be above 0"),
    ({"conv_channels": (32, 0, 64, 192, 192)}, "conv_channels and stage_strides must be 1 or more"),
])
def test_numbers_no_run_can_use_are_refused_when_the_configuration_is_made(change, message):
    with pytest.raises(ValueError, match=message):
        Config(**change)


def test_a_saved_configuration_that_only_training_refuses_still_loads():
    """A constant schedule without a validation share cannot pick an epoch to keep, so training refuses it;
    a model saved with it has trained all the same, and loads for inference."""
    saved = Config(schedule="constant", val_fraction=0.0, refit=False)
    assert Config.from_json(saved.to_json()) == saved
    with pytest.raises(ValueError, match="val_fraction 0 keeps its last epoch"):
        saved.check_trainable()
    with pytest.raises(ValueError, match="a refit keeps its last epoch"):
        Config(schedule="constant", val_fraction=0.2, refit=True).check_trainable()
    with pytest.raises(ValueError, match="two folds or more"):
        Config(folds=1).check_trainable()


def test_a_change_that_cannot_alter_results_keeps_a_run_resumable():
    assert Config(loader_workers=2).same_results(Config(loader_workers=0))
    assert Config(refit=False).same_results(Config())  # a fold network is the same whatever follows it
    assert not Config(seed=1).same_results(Config()) and not Config(folds=3).same_results(Config())


def test_a_configuration_saved_before_the_sources_folds_and_refit_fields_loads_with_the_defaults():
    older = {k: v for k, v in Config().to_json().items() if k not in ("sources", "folds", "refit")}
    assert Config.from_json(older) == Config()


def test_the_lead_sets_a_network_may_read_are_the_2021_sets():
    assert CHOICES["network_leads"] == tuple(LEAD_SETS_2021)


def test_the_architectures_a_configuration_allows_are_those_the_models_build():
    assert CHOICES["model"] == tuple(ARCHITECTURES)
    assert "choices=CHOICES[\"model\"]" in (ROOT / "train_model.py").read_text()  # listed once, in config.py


@pytest.mark.shared_data
def test_a_bad_configuration_stops_training_before_a_record_is_read(tmp_path):
    result = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", tmp_path / "model",
                        env={"CINC2020_CONFIG": json.dumps({"normalisation": "standard"})})
    assert result.returncode != 0 and "unknown normalisation 'standard': use one of std, mean" in result.stderr
    assert "preprocessing records" not in result.stderr and not (tmp_path / "model" / "model.json").exists()


def test_the_defaults_are_the_shipped_models_configuration():
    shipped = json.loads((ROOT / "model" / "model.json").read_text())["members"][0]["config"]
    assert Config.from_json(shipped) == Config() and set(shipped) <= set(Config().to_json())


def test_an_architecture_brings_its_designs_class_weights_and_every_one_standardises_unless_told_otherwise():
    assert (Config(model="crnn").normalisation, Config(model="crnn").class_weights) == ("std", False)
    assert (Config().normalisation, Config().class_weights) == ("std", True)  # std won for the attention network
    assert Config(model="crnn", normalisation="mean").normalisation == "mean"
    assert Config.from_json(Config(model="crnn").to_json()) == Config(model="crnn")  # saved resolved
