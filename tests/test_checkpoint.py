import json

import numpy as np
import pytest
import torch

from conftest import FIXTURES
from cinc2020 import checkpoint
from cinc2020.checkpoint import ModelFileError
from cinc2020.config import Config
from cinc2020.inference import classify, load_model
from cinc2020.models import build_model
from cinc2020.records import read_record

CLASSES = ["164889003", "426783006", "713427006"]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    network = build_model(Config(), len(CLASSES))
    single = checkpoint.SavedModel(CLASSES, [0.5, 0.4, 0.3], [checkpoint.Member(Config(), network.state_dict())])
    checkpoint.save(tmp_path, single, validation={"loss": 0.1})
    return tmp_path, network


@pytest.mark.shared_data
def test_round_trip_gives_identical_predictions(saved):
    folder, network = saved
    loaded = load_model(folder)
    assert loaded.classes == CLASSES and loaded.thresholds.tolist() == [0.5, 0.4, 0.3]
    assert loaded.description["validation"] == {"loss": 0.1}
    assert not list(folder.glob("*.tmp"))
    data, lines = read_record(FIXTURES / "cinc_snomed" / "A0002.hea")
    labels, scores, classes = classify(data, lines, loaded)
    network.eval()
    from cinc2020.preprocess import prepare
    x = torch.from_numpy(prepare(data, lines, Config()))[None]
    with torch.no_grad():
        expected = torch.sigmoid(network(x, torch.tensor([x.shape[-1]])))[0].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert classes == CLASSES and labels.sum() >= 1


def test_weights_are_plain_safetensors(saved):
    folder, _ = saved
    (weights,) = folder.glob("weights-*.safetensors")
    raw = weights.read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_size])
    assert all(set(entry) >= {"dtype", "shape", "data_offsets"} for k, entry in header.items() if k != "__metadata__")


def test_truncated_or_altered_weights_name_the_file(saved):
    folder, _ = saved
    (weights,) = folder.glob("weights-*.safetensors")
    original = weights.read_bytes()
    weights.write_bytes(original[:1000])
    with pytest.raises(ModelFileError, match=weights.name + ": contents do not match"):
        load_model(folder)
    altered = bytearray(original)
    altered[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(altered))
    with pytest.raises(ModelFileError, match="do not match the SHA-256"):
        load_model(folder)
    weights.unlink()
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(folder)


def test_weights_name_cannot_leave_the_folder(saved):
    folder, _ = saved
    document = json.loads((folder / "model.json").read_text())
    document["weights"] = "../../etc/passwd"
    (folder / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="must name a weights"):
        load_model(folder)


def test_saving_again_replaces_the_weights_file(saved):
    folder, network = saved
    for p in network.parameters():
        p.data += 1
    checkpoint.save(folder, checkpoint.SavedModel(CLASSES, [0.5] * 3, [checkpoint.Member(Config(), network.state_dict())]))
    assert len(list(folder.glob("weights-*.safetensors"))) == 1
    assert load_model(folder).thresholds.tolist() == [0.5] * 3


def test_tampered_description_names_the_file(saved):
    folder, _ = saved
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="model.json: not valid JSON"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"format": 3, "members": [{"config": {"model": "crnn", "evil": 1}}],
                                                   "classes": CLASSES, "thresholds": [0.5] * 3}))
    with pytest.raises(ModelFileError, match="unknown configuration keys: evil"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"format": 1, "config": {}, "classes": CLASSES}))
    with pytest.raises(ModelFileError, match="not a model description of format 3 \\(it is format 1, written by an older version"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"format": 3, "members": [], "classes": CLASSES,
                                                   "thresholds": [0.5] * 3}))
    with pytest.raises(ModelFileError, match="at least one network"):
        load_model(folder)


def test_weights_that_do_not_fit_the_config(saved):
    folder, _ = saved
    document = json.loads((folder / "model.json").read_text())
    document["members"][0]["config"]["gru_units"] = 64
    (folder / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nothing")


def test_a_model_saved_before_the_configuration_gained_fields_loads_as_it_was_trained(saved):
    """model.json of commit e306040 (format 3) wrote each architecture's normalisation and class weights
    out, and had no training_precision, loader_workers or deterministic: it loads with the same weights and
    the configuration it was trained with."""
    folder, network = saved
    document = json.loads((folder / "model.json").read_text())
    for member in document["members"]:
        for field in ("training_precision", "loader_workers", "deterministic"):
            del member["config"][field]
        member["config"] |= {"normalisation": "mean", "class_weights": True}
    (folder / "model.json").write_text(json.dumps(document))
    loaded = load_model(folder)
    assert loaded.configs == [Config(normalisation="mean")]
    for name, tensor in network.state_dict().items():
        assert torch.equal(loaded.networks[0].state_dict()[name], tensor)
