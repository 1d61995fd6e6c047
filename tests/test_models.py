import pytest
import torch

from cinc2020.config import Config, config_from_environment, given_options
from cinc2020.models import CRNN, CNNAttentionGRU, MaskedBatchNorm, SEResNet, build_model, n_windows

# The source designs' plain stages (15 layers, the first at full rate); the defaults are the screened SE stages.
PLAIN = dict(block="plain", conv_channels=(16, 32, 32, 48, 48), stage_strides=(1, 2, 2, 2, 2))
CONFIG = Config(model="crnn", **PLAIN)


def count_convolutions(model):
    return sum(isinstance(m, torch.nn.Conv1d) for m in model.modules())


def test_crnn_follows_the_design():
    model = build_model(CONFIG, 24)
    assert isinstance(model, CRNN)
    assert count_convolutions(model) == 15
    assert model.convolutions.stages[-1].convolutions[-1].conv.out_channels == CONFIG.features_per_window == 12
    assert not any(isinstance(m, MaskedBatchNorm) for m in model.modules())  # the design's plain convolutions
    assert model.gru.bidirectional and model.gru.hidden_size == 128
    assert isinstance(model.head[1], torch.nn.BatchNorm1d)


@pytest.mark.parametrize("length", [1, 37, 299, 300, 301, 450, 1000, 6000, 180_000])
def test_output_shape_for_every_length(length):
    torch.manual_seed(0)
    model = build_model(CONFIG, 9).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 12, length), torch.tensor([length]))
    assert logits.shape == (1, 9) and torch.isfinite(logits).all()


def test_window_count():
    assert [n_windows(n, 300, 150) for n in (1, 300, 301, 450, 451, 1000)] == [1, 1, 2, 2, 3, 6]


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model(Config(model="transformer"), 3)


ATTENTION = Config(model="cnn_attention", normalisation="mean", **PLAIN)


def test_attention_model_follows_the_design():
    model = build_model(ATTENTION, 24)
    assert isinstance(model, CNNAttentionGRU)
    assert count_convolutions(model) == 15
    assert model.gru.bidirectional and model.gru.hidden_size == 128
    assert model.classify.in_features == 256 and model.classify.out_features == 24


def test_choosing_an_architecture_brings_its_designs_class_weights_and_standardisation_unless_told(monkeypatch):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    assert config_from_environment().normalisation == "std" and config_from_environment().class_weights
    assert config_from_environment(model="crnn").normalisation == "std"
    assert not config_from_environment(model="crnn").class_weights
    assert config_from_environment(model="cnn_attention", normalisation="mean").normalisation == "mean"


STRONG = dict(block="se_residual", conv_channels=(32, 32, 64, 128, 128), stage_strides=(2, 2, 2, 2, 2))
EVERY_NETWORK = {
    "crnn": CONFIG, "crnn se_residual": Config(model="crnn", **STRONG),
    "attention": ATTENTION, "attention se_residual": Config(model="cnn_attention", **STRONG),
    "se_resnet": Config(model="se_resnet", **STRONG), "attention with age and sex": Config(model="cnn_attention",
                                                                                        demographics=True),
}


def as_if_trained(model):
    """Random biases, batch-norm scales and running statistics, as training leaves them: a fresh model's
    zero biases and unit statistics could hide a padding leak."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)) and module.bias is not None:
                module.bias.normal_(0, 0.5)
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.5)
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("lengths", [(1000, 4000), (1, 37), (299, 5000)])
@pytest.mark.parametrize("network", list(EVERY_NETWORK))
def test_every_network_ignores_batch_padding(network, lengths):
    """A record's output is the same alone and zero-padded beside a longer one."""
    torch.manual_seed(0)
    model = as_if_trained(build_model(EVERY_NETWORK[network], 5))
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


@pytest.mark.parametrize("network", list(EVERY_NETWORK))
def test_a_record_scores_the_same_in_any_batch(network):
    """In evaluation, the other records of a batch change nothing (no batch statistics, no padding)."""
    torch.manual_seed(1)
    model = as_if_trained(build_model(EVERY_NETWORK[network], 4))
    records = torch.randn(3, 12, 1500)
    lengths = torch.tensor([1500, 900, 1200])
    people = torch.tensor([[0.6, 1, 1, 0], [0.3, 1, 0, 1], [0, 0, 0, 0]])
    with torch.no_grad():
        together = model(records, lengths, people)
        for i in range(3):
            alone = model(records[i:i + 1, :, :lengths[i]], lengths[i:i + 1], people[i:i + 1])
            torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=1e-5)


def test_batch_statistics_never_see_padding():
    """In training, masked batch normalisation equals plain batch normalisation over the records' own samples."""
    torch.manual_seed(2)
    norm = MaskedBatchNorm(6).train()
    x = torch.randn(2, 6, 50)
    mask = torch.ones(2, 1, 50)
    mask[0, :, 30:] = 0
    x = x * mask
    out = norm(x, mask)
    inside = torch.cat([x[0, :, :30], x[1]], dim=1)[None]  # 1 x channels x (30 + 50) samples
    reference = torch.nn.BatchNorm1d(6).train()
    expected = reference(inside)[0]
    torch.testing.assert_close(torch.cat([out[0, :, :30], out[1]], dim=1), expected, atol=1e-5, rtol=1e-5)
    assert out[0, :, 30:].abs().sum() == 0
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)


def test_the_crnn_computes_a_records_own_windows_only():
    """A 10 s record at 100 Hz is 6 windows of 3 s with a 1.5 s hop; the stack runs on those 6 alone."""
    model = build_model(EVERY_NETWORK["crnn se_residual"], 3).eval()
    seen = []
    model.convolutions.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    with torch.no_grad():
        model(torch.randn(2, 12, 4000), torch.tensor([1000, 4000]))
    assert seen == [n_windows(1000, 300, 150) + n_windows(4000, 300, 150)] == [6 + 26]


def test_strong_stages_are_residual_with_squeeze_excitation():
    for name in ("crnn se_residual", "attention se_residual", "se_resnet"):
        model = build_model(EVERY_NETWORK[name], 3)
        assert len(model.convolutions.stages) == 5 and count_convolutions(model) == 15
        assert all(stage.residual and stage.excite is not None for stage in model.convolutions.stages)
        assert [stage.entry.conv.out_channels for stage in model.convolutions.stages] == [32, 32, 64, 128, 128]
    assert isinstance(build_model(EVERY_NETWORK["se_resnet"], 3), SEResNet)
    crnn = build_model(EVERY_NETWORK["crnn se_residual"], 3)
    assert crnn.features.out_features == 12  # still 12 features per window


def test_age_and_sex_reach_the_output_when_used():
    torch.manual_seed(3)
    x, n = torch.randn(1, 12, 1000), torch.tensor([1000])
    older, younger = torch.tensor([[0.8, 1, 1, 0]]), torch.tensor([[0.2, 1, 0, 1]])
    with torch.no_grad():
        used = build_model(EVERY_NETWORK["attention with age and sex"], 3).eval()
        assert not torch.allclose(used(x, n, older), used(x, n, younger))
        torch.testing.assert_close(used(x, n), used(x, n, torch.zeros(1, 4)))  # none given: all unknown
        unused = build_model(ATTENTION, 3).eval()
        torch.testing.assert_close(unused(x, n, older), unused(x, n, younger))


def test_kernel_sizes_are_parameters_not_guessed_from_channels():
    """A first block of 12 channels (the number of leads) once gave kernel 7 to four convolutions."""
    for architecture in ("crnn", "cnn_attention"):
        config = Config(model=architecture, **{**PLAIN, "conv_channels": (12, 32, 32, 48, 48)})
        kernels = [m.kernel_size[0] for m in build_model(config, 3).modules() if isinstance(m, torch.nn.Conv1d)]
        assert kernels == [7] + [5] * 14
        config = Config(model=architecture, first_kernel_size=9, kernel_size=3, **PLAIN)
        kernels = [m.kernel_size[0] for m in build_model(config, 3).modules() if isinstance(m, torch.nn.Conv1d)]
        assert kernels == [9] + [3] * 14


def test_a_configuration_from_the_environment_is_announced(monkeypatch, capsys):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    config_from_environment()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("CINC2020_CONFIG", '{"epochs": 3}')
    assert config_from_environment().epochs == 3
    assert capsys.readouterr().err.strip() == '$CINC2020_CONFIG changes the configuration: {"epochs": 3}'


def test_an_override_of_none_means_none_and_a_command_line_passes_only_what_it_was_given(monkeypatch):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    assert Config().gradient_clip is not None and config_from_environment(gradient_clip=None).gradient_clip is None
    assert given_options(labels=None, epochs=3, class_weights=False) == {"epochs": 3, "class_weights": False}


def test_records_without_class_follow_the_label_scheme(monkeypatch):
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    assert config_from_environment(labels="cpsc").records_without_class == "skip"
    assert config_from_environment().records_without_class == "negative"
    assert config_from_environment(labels="cpsc", records_without_class="negative").records_without_class == "negative"
    assert Config.from_json(Config(labels="cpsc").to_json()).records_without_class == "skip"


def test_stage_strides_set_how_fast_the_stack_shrinks_time():
    x, n = torch.randn(1, 12, 1000), torch.tensor([1000])
    for strides, steps in (((1, 2, 2, 2, 2), 63), ((2, 2, 2, 2, 2), 32)):
        model = build_model(Config(model="cnn_attention", stage_strides=strides), 3).eval()
        with torch.no_grad():
            _, lengths, _ = model.convolutions(x, n)
        assert lengths.tolist() == [steps]
    with pytest.raises(ValueError, match="one stride per stage"):
        Config(stage_strides=(1, 2))
