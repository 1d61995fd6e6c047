"""The configuration: every choice checked when it is made, before any record is read."""

import json

import pytest

from conftest import FIXTURES, ROOT, run_script
from cinc2020.config import CHOICES, Config
from cinc2020.models import ARCHITECTURES


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_a_value_outside_a_choice_is_refused_with_the_allowed_ones(name):
    with pytest.raises(ValueError) as error:
        Config(**{name: "typo"})
    assert "typo" in str(error.value) and all(value in str(error.value) for value in CHOICES[name])


@pytest.mark.parametrize("name", ["epochs", "batch_size"])
def test_counts_below_one_are_refused(name):
    with pytest.raises(ValueError, match=f"{name} must be 1 or more, not 0"):
        Config(**{name: 0})


def test_the_architectures_a_configuration_allows_are_those_the_models_build():
    assert CHOICES["model"] == tuple(ARCHITECTURES)


@pytest.mark.shared_data
def test_a_bad_configuration_stops_training_before_a_record_is_read(tmp_path):
    result = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", tmp_path / "model",
                        env={"CINC2020_CONFIG": json.dumps({"normalisation": "standard"})})
    assert result.returncode != 0 and "unknown normalisation 'standard': use one of std, mean" in result.stderr
    assert "preprocessing records" not in result.stderr and not (tmp_path / "model" / "model.json").exists()


def test_the_defaults_are_the_shipped_models_configuration():
    shipped = json.loads((ROOT / "model" / "model.json").read_text())["members"][0]["config"]
    assert Config.from_json(shipped) == Config() and set(shipped) == set(Config().to_json())


def test_an_architecture_brings_its_source_designs_choices_unless_told_otherwise():
    assert (Config(model="crnn").normalisation, Config(model="crnn").class_weights) == ("std", False)
    assert (Config().normalisation, Config().class_weights) == ("mean", True)
    assert Config(model="crnn", normalisation="mean").normalisation == "mean"
    assert Config.from_json(Config(model="crnn").to_json()) == Config(model="crnn")  # saved resolved
