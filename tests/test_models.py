import pytest
import torch

from cinc2020.config import Config, config_from_environment
from cinc2020.models import CRNN, CNNAttentionGRU, build_model, n_windows

CONFIG = Config()


def count_convolutions(model):
    return sum(isinstance(m, torch.nn.Conv1d) for m in model.modules())


def test_crnn_follows_the_design():
    model = build_model(CONFIG, 24)
    assert isinstance(model, CRNN)
    assert count_convolutions(model) == 15
    assert model.convolutions[-3].out_channels == CONFIG.features_per_window == 12
    assert model.gru.bidirectional and model.gru.hidden_size == 128
    assert isinstance(model.head[1], torch.nn.BatchNorm1d)


@pytest.mark.parametrize("length", [1, 37, 299, 300, 301, 450, 1000, 6000, 180_000])
def test_output_shape_for_every_length(length):
    torch.manual_seed(0)
    model = build_model(CONFIG, 9).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 12, length), torch.tensor([length]))
    assert logits.shape == (1, 9) and torch.isfinite(logits).all()


def test_padding_does_not_change_a_record():
    torch.manual_seed(0)
    model = build_model(CONFIG, 5).eval()
    short, long = torch.randn(1, 12, 1000), torch.randn(1, 12, 4000)
    batch = torch.zeros(2, 12, 4000)
    batch[0, :, :1000], batch[1] = short[0], long[0]
    with torch.no_grad():
        alone = model(short, torch.tensor([1000]))
        together = model(batch, torch.tensor([1000, 4000]))
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)


def test_window_count():
    assert [n_windows(n, 300, 150) for n in (1, 300, 301, 450, 451, 1000)] == [1, 1, 2, 2, 3, 6]


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model(Config(model="transformer"), 3)


ATTENTION = Config(model="cnn_attention", normalisation="mean")


def test_attention_model_follows_the_design():
    model = build_model(ATTENTION, 24)
    assert isinstance(model, CNNAttentionGRU)
    assert count_convolutions(model) == 15
    assert model.gru.bidirectional and model.gru.hidden_size == 128
    assert model.head.in_features == 256 and model.head.out_features == 24


def test_choosing_the_attention_model_brings_its_defaults(monkeypatch):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    assert config_from_environment(model="cnn_attention").normalisation == "mean"
    assert config_from_environment().normalisation == "std"
    assert config_from_environment(model="cnn_attention", normalisation="std").normalisation == "std"
    assert config_from_environment(model="cnn_attention").class_weights and not config_from_environment().class_weights


@pytest.mark.parametrize("lengths", [(1000, 4000), (1, 37), (299, 5000)])
def test_attention_model_ignores_batch_padding(lengths):
    """A record's output is the same alone and zero-padded beside a longer one."""
    torch.manual_seed(0)
    model = build_model(ATTENTION, 5).eval()
    short_n, long_n = lengths
    short, long = torch.randn(1, 12, short_n), torch.randn(1, 12, long_n)
    batch = torch.zeros(2, 12, long_n)
    batch[0, :, :short_n], batch[1] = short[0], long[0]
    with torch.no_grad():
        alone = model(short, torch.tensor([short_n]))
        together = model(batch, torch.tensor([short_n, long_n]))
        long_alone = model(long, torch.tensor([long_n]))
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together[1], long_alone[0], atol=1e-5, rtol=1e-5)


def test_kernel_sizes_are_parameters_not_guessed_from_channels():
    """A first block of 12 channels (the number of leads) once gave kernel 7 to four convolutions."""
    for architecture in ("crnn", "cnn_attention"):
        config = Config(model=architecture, conv_channels=(12, 32, 32, 48, 48))
        kernels = [m.kernel_size[0] for m in build_model(config, 3).modules() if isinstance(m, torch.nn.Conv1d)]
        assert kernels == [7] + [5] * 14
        config = Config(model=architecture, first_kernel_size=9, kernel_size=3)
        kernels = [m.kernel_size[0] for m in build_model(config, 3).modules() if isinstance(m, torch.nn.Conv1d)]
        assert kernels == [9] + [3] * 14


def test_a_configuration_from_the_environment_is_announced(monkeypatch, capsys):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    config_from_environment()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("CINC2020_CONFIG", '{"epochs": 3}')
    assert config_from_environment().epochs == 3
    assert capsys.readouterr().err.strip() == '$CINC2020_CONFIG changes the configuration: {"epochs": 3}'


def test_records_without_class_follow_the_label_scheme(monkeypatch):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    assert config_from_environment(labels="cpsc").records_without_class == "skip"
    assert config_from_environment().records_without_class == "negative"
    assert config_from_environment(labels="cpsc", records_without_class="negative").records_without_class == "negative"
    assert Config.from_json(Config(labels="cpsc").to_json()).records_without_class == "skip"
