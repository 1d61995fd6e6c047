import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from conftest import ROOT, SAMPLES, SCORER_CASES, run_script
from cinc2020 import plot
from cinc2020.ensemble import combine
from cinc2020.inference import load_model
from cinc2020.records import STANDARD_LEADS, parse_header, read_record, standard_leads
from cinc2020.scorer import read_run
from cinc2020.scoring import challenge_confusion, challenge_metric


@pytest.fixture(scope="module")
def model():
    return load_model(ROOT / "model")


@pytest.fixture(scope="module")
def figure(model):
    drawn = plot.record_figure(SAMPLES / "JS00001.hea", model, start=0.0)
    drawn.canvas.draw()
    yield drawn
    plot.plt.close(drawn)


def millimetres(figure, axis):
    width_in, height_in = figure.get_size_inches()
    box = axis.get_position()
    return box.width * width_in * 25.4, box.height * height_in * 25.4


def test_traces_are_the_record_in_millivolts_at_25_mm_per_s_and_10_mm_per_mv(figure):
    data, lines = read_record(SAMPLES / "JS00001.hea")
    header = parse_header(lines)
    signal = standard_leads(data, header)
    time = np.arange(signal.shape[1]) / header.fs
    traces = {line.get_gid(): (axis, line) for axis in figure.axes for line in axis.get_lines() if line.get_gid()}
    assert set(traces) == {f"trace-{lead}" for lead in STANDARD_LEADS} | {"trace-II-rhythm"}
    for gid, (axis, line) in traces.items():
        lead = gid.split("-")[1]
        x, y = line.get_xdata(), line.get_ydata()
        samples = np.searchsorted(time, x)
        np.testing.assert_array_equal(time[samples], x)
        np.testing.assert_array_equal(signal[STANDARD_LEADS.index(lead), samples], y)
        width_mm, height_mm = millimetres(figure, axis)
        assert width_mm / np.ptp(axis.get_xlim()) == pytest.approx(25)
        assert height_mm / np.ptp(axis.get_ylim()) == pytest.approx(10)
    assert traces["trace-II-rhythm"][1].get_xdata()[-1] == pytest.approx(10, abs=0.01)
    assert traces["trace-V6"][1].get_xdata()[0] == pytest.approx(7.5)


def test_paper_has_1_and_5_mm_lines(figure):
    paper = next(axis for axis in figure.axes if any(c.get_gid() == "grid-1mm-x" for c in axis.collections))
    width_mm, height_mm = millimetres(figure, paper)
    assert width_mm == pytest.approx(np.ptp(paper.get_xlim())) and height_mm == pytest.approx(np.ptp(paper.get_ylim()))
    for step in (1, 5):
        for direction, coordinate in (("x", 0), ("y", 1)):
            (lines,) = [c for c in paper.collections if c.get_gid() == f"grid-{step}mm-{direction}"]
            positions = np.array([segment[0][coordinate] for segment in lines.get_segments()])
            np.testing.assert_allclose(np.diff(positions), step)


def test_text_is_legible_named_from_the_tables_and_never_overlaps(figure, model):
    renderer = figure.canvas.get_renderer()
    texts = [t for t in figure.findobj(plot.matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
    assert all(t.get_fontsize() >= 8 for t in texts)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    words = " ".join(t.get_text() for t in texts)
    # JS00001: 164889003, 59118001, 164934002 -> AF, RBBB, TAb in dx_mapping_scored.csv
    assert "Header diagnoses: AF, RBBB, TAb" in words and "JS00001" in words
    assert "heart rate" in words and "bpm" in words and "10.0 s at 500 Hz" in words
    assert any(kind in words for kind in ("correct", "missed", "false"))


def test_png_has_at_least_4_pixels_a_millimetre(tmp_path, model):
    result = run_script("-m", "cinc2020.plot", ROOT / "model", SAMPLES / "A0003.mat", SAMPLES / "E00001.hea",
                        "--out", tmp_path, "--start", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("A0003", "E00001"):
        width, height = Image.open(tmp_path / f"{name}.png").size
        figure = plot.record_figure(SAMPLES / f"{name}.hea", model, start=2)
        width_in, height_in = figure.get_size_inches()
        plot.plt.close(figure)
        assert (width, height) == (round(width_in * plot.DPI), round(height_in * plot.DPI))
        assert width / (width_in * 25.4) >= 4


def test_missing_leads_an_odd_rate_and_a_short_record_still_draw(tmp_path, model):
    fs, n = 257, 257 * 6  # 6 s, as the shortest challenge records
    t = np.arange(n) / fs
    leads = ("I", "II", "V1", "V2", "V5", "V6")
    data = (800 * np.sin(2 * np.pi * 1.1 * t) ** 21 * np.ones((len(leads), 1))).astype(np.int16)
    savemat(tmp_path / "odd.mat", {"val": data}, format="4")
    lines = [f"odd {len(leads)} {fs} {n}"] + [f"odd.mat 16 1000/mV 16 0 0 0 0 {lead}" for lead in leads]
    (tmp_path / "odd.hea").write_text("\n".join(lines + ["#Age: NaN", "#Sex: Unknown", "#Dx: 164889003"]) + "\n")
    figure = plot.record_figure(tmp_path / "odd.hea", model)
    traces = {line.get_gid(): line for axis in figure.axes for line in axis.get_lines()}
    assert not traces["trace-V3"].get_ydata().any() and traces["trace-II"].get_ydata().any()  # missing: flat
    avf = traces["trace-aVF"]  # derived from I and II: II - I/2, half the common trace here
    shown = np.round(avf.get_xdata() * fs).astype(int)
    np.testing.assert_allclose(avf.get_ydata(), data[0, shown] / 1000 / 2, atol=1e-6)
    labels = {text.get_gid(): text.get_text() for axis in figure.axes for text in axis.texts}
    assert labels["label-aVF"] == "aVF (derived)" and labels["label-II"] == "II" and labels["label-V3"] == "V3"
    (shading,) = [image for axis in figure.axes for image in axis.get_images()]
    assert shading.get_extent()[:2] == pytest.approx([0, 6], abs=0.02)     # aligned with the 6 s of trace
    assert traces["trace-II-rhythm"].get_xdata()[-1] < 6
    plot.save(figure, tmp_path / "odd.png")
    assert (tmp_path / "odd.png").stat().st_size > 10_000


def test_the_reading_is_the_models_own(model):
    data, lines = read_record(SAMPLES / "Q0001.hea")
    probabilities, top, saliency, fs = plot.reading(model, data, lines)
    np.testing.assert_allclose(probabilities, model.probabilities(data, lines), rtol=1e-5, atol=1e-7)
    assert top and saliency.max() == pytest.approx(1) and saliency.min() >= 0
    assert len(saliency) == round(10 * fs)


def test_the_reading_normalises_and_reads_age_and_sex_as_the_driver_does(tmp_path):
    """A std-normalised CRNN with age and sex beside a mean-normalised attention network, both with outputs for
    auxiliary codes: the picture's probabilities are the driver's, over the classes."""
    from cinc2020 import checkpoint
    from cinc2020.config import config_from_environment
    from cinc2020.models import build_model
    classes = ["164889003", "426783006", "713427006"]
    members = []
    for seed, overrides in enumerate(({"model": "crnn", "demographics": True},
                                      {"model": "cnn_attention", "normalisation": "mean"})):
        torch.manual_seed(seed)
        config = config_from_environment(**overrides)
        members.append(checkpoint.Member(config, build_model(config, 3, 2).eval().state_dict(), {"fold": 1}))
    checkpoint.save(tmp_path / "m", checkpoint.SavedModel(classes, [0.5] * 3, members,
                                                          auxiliary=["164865005", "164861001"]))
    two = load_model(tmp_path / "m")
    assert [c.normalisation for c in two.configs] == ["std", "mean"]
    data, lines = read_record(SAMPLES / "A0002.hea")  # #Age: 49, #Sex: Female
    probabilities, *_ = plot.reading(two, data, lines)
    assert probabilities.shape == (3,)
    np.testing.assert_allclose(probabilities, two.probabilities(data, lines), rtol=1e-5, atol=1e-7)
    older = [line.replace("#Age: 49", "#Age: 80") for line in lines]
    assert not np.allclose(two.probabilities(data, older), two.probabilities(data, lines))  # age is read


def test_differentiable_combination_equals_the_ensembles():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.01, 0.99, size=(4, 1, 3))
    architectures = ["crnn", "crnn", "cnn_attention", "cnn_attention"]
    stacker = {"coefficients": rng.normal(size=(3, 6)), "intercepts": rng.normal(size=3)}
    for chosen, inputs in ((None, []), (stacker, ["crnn", "cnn_attention"])):
        model = SimpleNamespace(configs=[SimpleNamespace(model=a) for a in architectures], stacker=chosen,
                                stacker_inputs=inputs)
        ours = plot.combine_differentiably(model, torch.tensor(members[:, 0])).numpy()
        np.testing.assert_allclose(ours, combine(members, architectures, chosen, inputs)[0], rtol=1e-6)


def test_challenge_confusion_gives_the_challenge_metric():
    classes, labels, binary, _, weights = read_run(SCORER_CASES / "official_small" / "labels",
                                                   SCORER_CASES / "official_small" / "outputs")
    normal = np.zeros_like(labels)
    normal[:, classes.index("426783006")] = True
    credit = {name: np.sum(weights * challenge_confusion(labels, outputs))
              for name, outputs in (("observed", binary), ("correct", labels), ("inactive", normal))}
    expected = json.loads((SCORER_CASES / "official_small" / "expected.json").read_text())["challenge_metric"]
    assert (credit["observed"] - credit["inactive"]) / (credit["correct"] - credit["inactive"]) == pytest.approx(
        expected, abs=1e-9)
    assert challenge_metric(labels, binary, weights, classes) == pytest.approx(expected, abs=1e-9)


def test_scorer_draws_a_scored_run(tmp_path):
    case = SCORER_CASES / "official_small"
    result = run_script(ROOT / "evaluate_12ECG_score.py", case / "labels", case / "outputs", "--plot",
                        tmp_path / "run.png")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Challenge metric" in result.stdout                      # the summary is printed as before
    width, height = Image.open(tmp_path / "run.png").size
    assert width >= 1600 and height >= 600
