"""Pictures: a record's 12-lead ECG with the model's reading, and a scored run.

    python -m cinc2020.plot MODEL_DIR RECORD... --out DIR [--start SECONDS]

A record (its ``.hea`` or ``.mat`` path) becomes ``DIR/NAME.png``: 10 s of the 12
leads in the clinical layout (three rows of four leads, 2.5 s each, then a 10-s
lead II rhythm strip) on ECG paper at true scale (25 mm/s, 10 mm/mV, 1 mm and
5 mm lines, 5 pixels a millimetre); the record's name, age, sex, heart rate and
duration; its diagnoses and the model's classes, each with its probability and
threshold, told apart as correct, missed or false; and, shaded along the rhythm
strip, where the model looked for its top classes: gradient x input of the
model's combined output, which works for every architecture and ensemble.

``evaluate_12ECG_score.py ... --plot FILE.png`` draws a scored run with
``scored_run``: per class AUROC, AUPRC and F-measure with record counts, and the
Challenge metric's class-by-class confusion.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.signal import butter, find_peaks, sosfiltfilt  # noqa: E402

from . import checkpoint  # noqa: E402
from .decisions import decide  # noqa: E402
from .inference import LoadedModel, load_model  # noqa: E402
from .labels import representative  # noqa: E402
from .preprocess import demographic_inputs, normalise, preprocessing  # noqa: E402
from .records import STANDARD_LEADS, RecordError, parse_header, read_record, standard_leads  # noqa: E402
from .scoring import Scores, challenge_confusion  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MM = 1 / 25.4                      # inches per millimetre
DPI = 127                          # 5 pixels a millimetre
PAPER_SPEED, PAPER_GAIN = 25, 10   # mm per second, mm per millivolt
SHOWN_S = 10.0
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
ROW_MM = 35                        # each row spans 3.5 mV
LEFT_MM, RIGHT_MM, BOTTOM_MM, TEXT_MM = 12, 6, 8, 46
COLOURS = {"correct": "#1a7f37", "missed": "#d97706", "false": "#c2185b", "": "#444444"}
FONT_PT = 8.5


def class_names() -> dict[str, str]:
    """SNOMED CT code -> abbreviation, from the challenge's scored and unscored tables."""
    names = {}
    for table in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        with open(ROOT / table, newline="") as f:
            for row in csv.DictReader(f):
                names[row["SNOMED CT Code"]] = row["Abbreviation"]
    return names


def name_of(code: str, names: dict[str, str]) -> str:
    return names.get(code, code)  # CPSC words and unknown codes stand as they are


# --------------------------------------------------------------------------- the model's reading

def reading(model: LoadedModel, data: np.ndarray, header_lines: list[str],
            top: int = 2) -> tuple[np.ndarray, list[int], np.ndarray, float]:
    """(probabilities, the top predicted classes, saliency over time, its sampling rate).

    The saliency is |gradient x input| of the top classes' summed combined probability,
    summed over leads, at the first member's sampling rate, scaled to a peak of 1.
    """
    cleaned = model.preparations(data, header_lines)  # each preprocessing once, each member's normalisation
    inputs = [torch.tensor(normalise(cleaned[preprocessing(c)], c.normalisation)[None], device=model.device,
                           requires_grad=True) for c in model.configs]
    header = parse_header(header_lines)
    person = torch.from_numpy(demographic_inputs(header.age, header.sex)[None]).to(model.device)
    member_probabilities = []
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN's GRU has no backward in eval mode
        for network, x in zip(model.networks, inputs):
            network.eval()
            logits = network(x, torch.tensor([x.shape[-1]]), person)[0, :network.answered_classes]
            member_probabilities.append(torch.sigmoid(logits))
        combined = combine_differentiably(model, torch.stack(member_probabilities))
        probabilities = combined.detach().double().cpu().numpy()
        predicted = np.flatnonzero(decide(probabilities, model.thresholds)[0])
        chosen = sorted(predicted, key=lambda j: -probabilities[j])[:top]
        combined[chosen].sum().backward()
    fs = model.configs[0].fs
    length = inputs[0].shape[-1]
    saliency = np.zeros(length)
    for config, x in zip(model.configs, inputs):
        contribution = (x.grad * x).abs().sum(dim=1)[0].detach().cpu().numpy()
        saliency += np.interp(np.arange(length) / fs, np.arange(len(contribution)) / config.fs, contribution)
    window = max(1, int(0.2 * fs))  # a fifth of a second: about a QRS complex
    saliency = np.convolve(saliency, np.ones(window) / window, mode="same")
    return probabilities, [int(j) for j in chosen], saliency / max(saliency.max(), 1e-12), fs


def combine_differentiably(model: LoadedModel, member_probabilities: torch.Tensor) -> torch.Tensor:
    """``ensemble.combine`` for one record, in torch (members x classes -> classes)."""
    architectures = [c.model for c in model.configs]
    order = list(dict.fromkeys(architectures))
    means = {a: member_probabilities[[i for i, b in enumerate(architectures) if b == a]].mean(dim=0) for a in order}
    if model.stacker is None:
        return torch.stack(list(means.values())).mean(dim=0)
    from .ensemble import SMALLEST
    p = torch.cat([means[a] for a in model.stacker_inputs]).clamp(SMALLEST, 1 - SMALLEST)
    features = torch.log(p / (1 - p)).double()
    coefficients = torch.as_tensor(model.stacker["coefficients"], device=features.device)
    intercepts = torch.as_tensor(model.stacker["intercepts"], device=features.device)
    return torch.sigmoid(coefficients @ features + intercepts)


def heart_rate(lead: np.ndarray, fs: float) -> float:
    """Beats per minute from the R peaks of one lead (mV), or NaN."""
    if len(lead) < 2 * fs or fs < 40:
        return math.nan
    band = sosfiltfilt(butter(2, [5, min(15, 0.45 * fs)], btype="band", fs=fs, output="sos"), lead)
    energy = band ** 2
    peaks, _ = find_peaks(energy, height=0.25 * np.percentile(energy, 99.5), distance=int(0.3 * fs))
    if len(peaks) < 2:
        return math.nan
    return 60 * fs / float(np.median(np.diff(peaks)))


# --------------------------------------------------------------------------- the record's picture

def paper(figure, left_mm: float, bottom_mm: float, width_mm: float, height_mm: float):
    """ECG paper: an axes in millimetres with 1 mm and 5 mm lines."""
    width_in, height_in = figure.get_size_inches() / MM
    axis = figure.add_axes([left_mm / width_in, bottom_mm / height_in, width_mm / width_in, height_mm / height_in])
    axis.set(xlim=(0, width_mm), ylim=(0, height_mm))
    axis.set_axis_off()
    for step, colour, width in ((1, "#f6c9c9", 0.4), (5, "#e58a8a", 0.8)):
        xs, ys = np.arange(0, width_mm + 1e-9, step), np.arange(0, height_mm + 1e-9, step)
        axis.vlines(xs, 0, height_mm, colors=colour, linewidth=width, gid=f"grid-{step}mm-x")
        axis.hlines(ys, 0, width_mm, colors=colour, linewidth=width, gid=f"grid-{step}mm-y")
    return axis


def trace_axes(figure, left_mm: float, bottom_mm: float, seconds: float, start: float):
    """A transparent axes at true scale over the paper: seconds across, millivolts up."""
    width_in, height_in = figure.get_size_inches() / MM
    axis = figure.add_axes([left_mm / width_in, bottom_mm / height_in, seconds * PAPER_SPEED / width_in,
                            ROW_MM / height_in])
    half = ROW_MM / PAPER_GAIN / 2
    axis.set(xlim=(start, start + seconds), ylim=(-half, half))
    axis.set_axis_off()
    axis.patch.set_alpha(0)
    return axis


def record_figure(path: Path, model: LoadedModel, start: float = 0.0):
    """The picture of one record (a matplotlib figure; the caller saves it)."""
    data, header_lines = read_record(path)
    header = parse_header(header_lines)
    signal = standard_leads(data, header)  # 12 x samples, mV; missing limb leads derived from two others
    recorded = {lead.name.lower() for lead, row in zip(header.leads, data) if np.ptp(row) > 0}
    fs = header.fs
    duration = signal.shape[1] / fs
    start = min(max(0.0, start), max(0.0, duration - SHOWN_S))
    probabilities, top, saliency, saliency_fs = reading(model, data, header_lines)

    width_mm = LEFT_MM + SHOWN_S * PAPER_SPEED + RIGHT_MM
    rows = len(LAYOUT) + 1
    height_mm = BOTTOM_MM + rows * ROW_MM + TEXT_MM
    figure = plt.figure(figsize=(width_mm * MM, height_mm * MM), dpi=DPI)
    paper(figure, LEFT_MM, BOTTOM_MM, SHOWN_S * PAPER_SPEED, rows * ROW_MM)
    time = np.arange(signal.shape[1]) / fs
    quarter = SHOWN_S / 4
    for row, leads in enumerate(LAYOUT):
        bottom = BOTTOM_MM + (rows - 1 - row) * ROW_MM
        for column, lead in enumerate(leads):
            t0 = start + column * quarter
            axis = trace_axes(figure, LEFT_MM + column * quarter * PAPER_SPEED, bottom, quarter, t0)
            shown = (time >= t0) & (time < t0 + quarter)
            axis.plot(time[shown], signal[STANDARD_LEADS.index(lead), shown], color="black", linewidth=0.7,
                      gid=f"trace-{lead}")
            derived = lead.lower() not in recorded and signal[STANDARD_LEADS.index(lead)].any()
            axis.text(t0 + 0.05, ROW_MM / PAPER_GAIN / 2 - 0.15, lead + (" (derived)" if derived else ""),
                      fontsize=FONT_PT, va="top", fontweight="bold", gid=f"label-{lead}")
    strip = trace_axes(figure, LEFT_MM, BOTTOM_MM, SHOWN_S, start)
    shown = (time >= start) & (time < start + SHOWN_S)
    strip.plot(time[shown], signal[STANDARD_LEADS.index("II"), shown], color="black", linewidth=0.7,
               gid="trace-II-rhythm")
    strip.text(start + 0.05, ROW_MM / PAPER_GAIN / 2 - 0.15, "II", fontsize=FONT_PT, va="top", fontweight="bold")
    half = ROW_MM / PAPER_GAIN / 2
    looked = np.arange(len(saliency)) / saliency_fs
    inside = (looked >= start) & (looked < start + SHOWN_S)
    end = start + inside.sum() / saliency_fs  # a record shorter than the strip ends before it
    strip.imshow(saliency[inside][None, :], extent=(start, end, -half, half), aspect="auto",
                 cmap="Blues", vmin=0, vmax=1.6, alpha=0.45, zorder=0, interpolation="bilinear")

    names = class_names()
    describe_record(figure, header, duration, start, heart_rate(signal[STANDARD_LEADS.index("II")], fs),
                    model, probabilities, top, names, height_mm, width_mm)
    return figure


def outcome(truth: bool, predicted: bool) -> str:
    return "correct" if truth and predicted else "missed" if truth else "false" if predicted else ""


def describe_record(figure, header, duration: float, start: float, rate: float, model: LoadedModel,
                    probabilities: np.ndarray, top: list[int], names: dict[str, str], height_mm: float,
                    width_mm: float) -> None:
    """The text above the tracing: who, what the header says, what the model says."""
    def at(x_mm, y_mm, text, **style):
        figure.text(x_mm / width_mm, y_mm / height_mm, text, **{"fontsize": FONT_PT, "va": "top", **style})

    top_mm = height_mm - 3
    age = "unknown" if math.isnan(header.age) else ("over 89" if header.age >= 300 else f"{header.age:g}")
    rate_text = "n/a" if math.isnan(rate) else f"{rate:.0f} bpm"
    at(LEFT_MM, top_mm, f"{header.name}", fontsize=FONT_PT + 3, fontweight="bold")
    at(LEFT_MM, top_mm - 6, f"age {age}, sex {header.sex}, heart rate {rate_text}, {duration:.1f} s at "
                            f"{header.fs:g} Hz; shown {start:.1f} to {start + SHOWN_S:.1f} s")
    truth = {representative(code) for code in header.dx} | set(header.dx)
    at(LEFT_MM, top_mm - 11, "Header diagnoses: " + (", ".join(name_of(c, names) for c in header.dx) or "none"))
    predicted = decide(probabilities, model.thresholds)[0].astype(bool)
    shown = [j for j in range(len(model.classes)) if predicted[j] or model.classes[j] in truth]
    shown.sort(key=lambda j: -probabilities[j])
    at(LEFT_MM, top_mm - 17, "Model (probability / threshold):", fontweight="bold")
    per_column = 3
    for k, j in enumerate(shown[: 4 * per_column]):
        kind = outcome(model.classes[j] in truth, bool(predicted[j]))
        text = f"{name_of(model.classes[j], names)} {probabilities[j]:.2f} / {model.thresholds[j]:.2f}  {kind}"
        at(LEFT_MM + (k // per_column) * 62, top_mm - 22 - (k % per_column) * 4.5, text, color=COLOURS[kind])
    if len(shown) > 4 * per_column:
        at(width_mm - RIGHT_MM - 40, top_mm - 17, f"(+{len(shown) - 4 * per_column} more)")
    looked = ", ".join(name_of(model.classes[j], names) for j in top) or "no class"
    at(LEFT_MM, BOTTOM_MM - 1.5, f"Shaded on the rhythm strip: where the model looked for {looked} "
                                 f"(gradient x input). 25 mm/s, 10 mm/mV.", color="#1f4e79")


def save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    plt.close(figure)


# --------------------------------------------------------------------------- a scored run

def scored_run(scores: Scores, labels: np.ndarray, outputs: np.ndarray, title: str):
    """Per-class AUROC, AUPRC and F-measure (best AUROC on top), and the Challenge metric's
    class-by-class confusion (rows: label, columns: output; each record shared among its classes),
    over the classes that some record carries or some output names."""
    confusion = challenge_confusion(labels, outputs)
    present = np.flatnonzero(labels.any(axis=0) | outputs.any(axis=0))
    counts = labels.sum(axis=0).astype(int)
    order = present[np.argsort(np.nan_to_num(scores.auroc_classes[present], nan=-1), kind="stable")]
    names = class_names()
    n = len(present)
    figure, (bars, heat) = plt.subplots(1, 2, figsize=(15, max(5.0, 0.34 * n + 2.2)), dpi=110,
                                        gridspec_kw={"width_ratios": [1, 1.2]})
    y = np.arange(n)
    for offset, values, name in ((0.27, scores.auroc_classes, "AUROC"), (0, scores.auprc_classes, "AUPRC"),
                                 (-0.27, scores.f_measure_classes, "F-measure")):
        bars.barh(y + offset, np.nan_to_num(values[order]), height=0.26, label=name)
    bars.set(yticks=y, xlim=(0, 1), title="Per class: scores (records with the label)")
    bars.set_yticklabels([f"{name_of(scores.classes[k], names)} ({counts[k]})" for k in order], fontsize=FONT_PT)
    bars.legend(loc="lower right", fontsize=FONT_PT)
    bars.grid(axis="x", alpha=0.3)
    shown = confusion[np.ix_(present, present)]
    heat.imshow(shown, cmap="Blues")
    short = [name_of(scores.classes[k], names) for k in present]
    heat.set_xticks(range(n), short, rotation=90, fontsize=FONT_PT)
    heat.set_yticks(range(n), short, fontsize=FONT_PT)
    heat.set(xlabel="output", ylabel="label", title="Challenge metric's confusion: records, shared among their classes")
    for i, j in zip(*np.nonzero(shown >= 0.05)):
        heat.text(j, i, f"{shown[i, j]:.1f}" if shown[i, j] < 10 else f"{shown[i, j]:.0f}", ha="center",
                  va="center", fontsize=FONT_PT, color="white" if shown[i, j] > 0.6 * shown.max() else "black")
    summary = (f"Challenge metric {scores.challenge_metric:.3f}, " if not math.isnan(scores.challenge_metric)
               else "") + f"AUROC {scores.auroc:.3f}, F-beta {scores.f_beta:.3f}, G-beta {scores.g_beta:.3f}"
    figure.suptitle(f"{title}. {summary}", fontsize=FONT_PT + 3)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- command line

def plot_history(history: list[dict], best_epoch: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    validated = "val_loss" in history[0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], label="training")
    if validated:
        left.plot(epochs, [h["val_loss"] for h in history], label="validation")
    left.set(xlabel="epoch", ylabel="binary cross-entropy", title="Loss")
    left.legend()
    if validated:
        for key, name in (("val_challenge_metric", "Challenge metric"), ("val_auroc", "macro AUROC"),
                          ("val_f_beta", "F-beta")):
            right.plot(epochs, [h[key] for h in history], label=name)
        right.set(xlabel="epoch", title="Validation scores (thresholds 0.5)")
        right.legend()
    else:  # a refit, or val_fraction 0: nothing to validate on
        right.plot(epochs, [h["lr"] for h in history])
        right.set(xlabel="epoch", title="Learning rate at the end of each epoch")
    for axis in (left, right):
        axis.axvline(best_epoch, color="grey", linestyle=":", label="_kept")
    left.annotate(f"kept: epoch {best_epoch}", (best_epoch, 0.98), xycoords=("data", "axes fraction"),
                  ha="right", va="top", fontsize=8, color="grey")
    figure.tight_layout()
    checkpoint.atomic_write(path, lambda p: figure.savefig(p, dpi=100, format="png"))
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("records", nargs="+", help=".hea or .mat files")
    parser.add_argument("--out", required=True, type=Path, help="folder for the pictures (NAME.png)")
    parser.add_argument("--start", type=float, default=0.0, help="first second shown (default 0)")
    args = parser.parse_args(argv)
    model = load_model(args.model_dir)
    failed = 0
    for record in args.records:
        path = Path(record).with_suffix(".hea")
        try:
            save(record_figure(path, model, args.start), args.out / f"{path.stem}.png")
        except (RecordError, OSError) as error:
            print(f"error: {record}: {error}", file=sys.stderr)
            failed += 1
            continue
        print(args.out / f"{path.stem}.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
