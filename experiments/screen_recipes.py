#!/usr/bin/env python
"""Screen training changes one at a time on a fixed protocol (issue 15).

    python experiments/screen_recipes.py WORK_DIR [--phase 2] [--stop-after NAME] [--report-only]

Protocol, fixed before any run: the 4,880 development records of the PTB-XL dev set
(``evaluate_recipe.py``'s split: the 1,220 test records are never read), 3 folds drawn
once (fold seed 0, shared by every run; a run whose overrides name ``folds`` draws that
many with the same seed), at most ``EPOCHS`` epochs a fold, each fold's checkpoint chosen
by validation loss on a stratified 20 % of its training part (unless a run says otherwise).
Every run is scored out of fold: the Challenge metric with thresholds tuned on the
other folds (the headline), macro AUROC, and the same thresholds applied to the
held-out records seen through the 6 limb leads and through leads I and II alone
(``augment.keep_leads``: the others zero, limb leads derived).

The baseline (the shipped recipe: the attention network, mean removal, class
weights, plain stages, constant learning rate) runs with ``SEEDS`` training seeds;
their spread (largest minus smallest headline) is the noise a change must beat.
The changes then run in order, each on top of the best recipe so far, and are kept
only when their headline exceeds that recipe's by more than the spread (the
augmentation, whose point is the reduced-lead scores, is kept when it lifts the
I-and-II score by more than the spread and costs the 12-lead headline no more than
it; a change made for speed, ``SPEED_CHANGES``, is kept when it costs no more than the
spread). ``OVERRIDDEN`` lists decisions taken against the rule. ``ALTERNATIVES`` run
after the changes, with every kept change, then ``LENGTHS`` (longer training), then
``STAGES_AND_RATE`` (wider stages, a higher peak learning rate); last, the best recipe
runs again with training seed 1, for the spread at the recipe the screening ends with.
WORK_DIR keeps each run, so a rerun (or ``--resume`` of a killed one) computes only what
is missing; the script then writes docs/screening.md and docs/screening.png. One process
(not under torchrun).

Phase 2 (``--phase 2``, docs/screening_2.md and .png) screens ``PHASE_2``'s changes the
same way on top of the recipe phase 1 ended with, the defaults when phase 2 began, at its own
length (``SHIPPED``), against the spread of that recipe's own two seeds. It shares
WORK_DIR with phase 1 (its runs have other names) and needs none of phase 1's runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cinc2020.augment import keep_leads, lead_mask  # noqa: E402
from cinc2020.records import LEAD_SETS_2021  # noqa: E402
from cinc2020.checkpoint import load as load_checkpoint  # noqa: E402
from cinc2020.config import Config, config_from_environment  # noqa: E402
from cinc2020.crossval import cross_validate  # noqa: E402
from cinc2020.data import load_training_set  # noqa: E402
from cinc2020.splits import development_and_test  # noqa: E402
from cinc2020.inference import load_model, predict_probabilities  # noqa: E402
from cinc2020.recipe import MODELS  # noqa: E402
from cinc2020.scoring import score_predictions  # noqa: E402
from cinc2020.decisions import cross_validated_outputs  # noqa: E402
from cinc2020.distributed import start_processes  # noqa: E402

PTBXL = ROOT.parent / "shared" / "data" / "ptbxl"
FOLDS, EPOCHS, FOLD_SEED = 3, 8, 0
VAL_FRACTION = 0.2  # the default while the screening ran: runs that drop it say so
LONGER = 12  # epochs of the longer runs: what the session's time allowed
SEEDS = (0, 1)
# The recipe shipped before the screening, written out: the defaults have since become the screened recipe.
BASELINE = {"model": "cnn_attention", "block": "plain", "conv_channels": [16, 32, 32, 48, 48],
            "stage_strides": [1, 2, 2, 2, 2], "schedule": "constant", "weight_decay": 0.0, "gradient_clip": None,
            "augment": False, "lr": 1e-3}
SCHEDULE = {"schedule": "cosine", "weight_decay": 0.01, "gradient_clip": 1.0}
STEPS = [  # (name, change, what it is)
    ("schedule", SCHEDULE, "warm-up and cosine learning rate, weight decay 0.01, gradient clipping at norm 1"),
    ("se_residual", {"block": "se_residual", "conv_channels": [32, 32, 64, 64, 64]},
     "SE-residual stages, wider (32-64 channels)"),
    ("augment", {"augment": True}, "augmentation: random start, amplitude, wander, noise, lead dropout"),
    ("stride", {"stage_strides": [2, 2, 2, 2, 2]}, "the first stage halves time too: half the cost, 3.1 steps a second"),
    ("bandpass", {"bandpass_hz": [0.5, 45.0]}, "0.5-45 Hz band-pass"),
    ("demographics", {"demographics": True}, "age and sex as inputs"),
    ("crop", {"train_crop_s": 5.0}, "5-s random training crops (whole records at inference)"),
]
ALTERNATIVES = [
    ("se_resnet_reference", {"model": "se_resnet", "block": "se_residual"},
     "reference: a pure 1-D SE-ResNet with every kept change (never shipped)"),
    ("crnn", {"model": "crnn", "normalisation": "std"}, "the sliding-window CRNN with every kept change"),
]
# Training length last, decided before any of these runs: at 1.5 times the cost of an 8-epoch run each, they
# would otherwise crowd the changes and alternatives the issue names out of a session's time.
LENGTHS = [
    ("longer", {"epochs": LONGER}, f"{LONGER} epochs"),
    # Added after "schedule" lost at 8 epochs, before any later run: a schedule decays the rate early in a
    # short run, so it is tried again over a longer one (11 of the 12 folds of the constant-rate 8-epoch runs
    # kept their last epoch or the one before). A refit, the one network the inference budget allows, needs
    # a schedule that ends.
    ("longer_schedule", {**SCHEDULE, "epochs": LONGER}, f"the schedule again, over {LONGER} epochs"),
    # Added before either ran: how many epochs the schedule wants. 20 is about what the default command's
    # 90 minutes on 2 CPU cores allow (3.5 minutes an epoch), so it runs first; 16 lies between.
    # 30 added after schedule_20 won with its folds keeping epochs 20, 19 and 17, before 16 or 30 ran: whether
    # longer still pays; the default command could afford it only with cheaper fold models.
    *((f"schedule_{epochs}", {**SCHEDULE, "epochs": epochs}, f"the schedule over {epochs} epochs")
      for epochs in (20, 16)),
    # Added while schedule_16 ran, before it or this ran; placed before schedule_30 so that 30 runs on top of
    # it. The shipped refit has no validation part and keeps its last epoch; fold models that train the same
    # way are its closer relatives (for the thresholds tuned on them) and see a quarter more records, and
    # schedule_20's folds kept epochs 20, 19 and 17 anyway.
    ("no_validation", {"val_fraction": 0.0}, "each fold model trains on all its records (no 20 % validation "
                                             "part) and keeps its last epoch, as the refit does"),
    ("schedule_30", {**SCHEDULE, "epochs": 30}, "the schedule over 30 epochs"),
]
# Added after schedule_30, before either ran: what the stronger stages and the rate have left to give.
# Wider: twice the channels in the last two stages (twice the weights, 1.25 times the cost of a training step:
# 193 against 156 ms for 20 10-s records on 2 threads), where the time axis is shortest; the default command's
# 90 minutes cannot afford wider early stages. Peak rate: 3e-3, the schedule's warm-up keeps the first steps small.
STAGES_AND_RATE = [
    ("wider", {"conv_channels": [32, 32, 64, 128, 128]}, "the last two stages twice as wide (128 channels)"),
    ("peak_lr", {"lr": 3e-3}, "peak learning rate 3e-3"),
]
RUNS = STEPS + ALTERNATIVES + LENGTHS + STAGES_AND_RATE
# Changes made for speed (the inference budget of one network needs the stride), decided before their run.
SPEED_CHANGES = ("stride", "bfloat16")
# Decisions taken against the rule, after seeing the run, and why; the report says so on the row.
OVERRIDDEN = {"augment": "kept against the rule: the issue's targets include the reduced-lead scores, which it "
                         "lifts far beyond any spread (I and II 0.256 to 0.424), while its 12-lead cost (0.006) "
                         "is about the two-seed spread (0.004), itself a loose estimate of the noise"}
# Phase 2, decided before any of its runs. Its baseline is the recipe phase 1 ended with (peak_lr: the same
# configuration, shown equal when this was written), then the defaults and what model/ shipped, at 20 epochs; phase 1's
# 8-epoch baseline spread (0.004) understates the noise of 20 epochs of the larger network (peak_lr's repeat
# moved 0.011), so phase 2 measures its own. Cheapest first.
# The recipe phase 1 ended with: the defaults' architecture and length then, written out where they have changed since.
SHIPPED = {"model": MODELS[0], "epochs": Config.epochs, "conv_channels": [32, 32, 64, 128, 128]}
PHASE_2 = [
    # The augmentation cost the 12-lead headline 0.006 for its reduced-lead gain, and I and II now keep 0.94x
    # of the 12-lead score against the 0.8x the issue asks: half the lead dropout may buy back 12-lead skill.
    ("half_lead_dropout", {"lead_dropout": 0.15}, "lead dropout at half the rate (0.15)"),
    # Twice the weights of the recipe that set weight decay at 0.01 may want more of it.
    ("weight_decay_5x", {"weight_decay": 0.05}, "weight decay 0.05"),
    # 30 epochs tied 20 at 64 channels (schedule_30); the wider network may use them. 1.5 times the cost: the
    # default command (42 minutes since training keeps PyTorch's OpenMP waits) could afford it.
    ("schedule_30_wider", {"epochs": 30}, "the schedule over 30 epochs"),
    # Added after the three above ran, none beyond the spread: more records for each fold model, one lever
    # set two ways. 4 folds and no validation share (each fold model keeps its last epoch, as the refit does)
    # train each on 3,660 records instead of 2,603, and tune the held-out fold's thresholds on 3/4 of the
    # records instead of 2/3. The default command would take about 64 minutes instead of 42. The refit network
    # that ships trains as before: what changes are the fold models, which give its thresholds and this estimate.
    ("four_folds_all_records", {"folds": 4, "val_fraction": 0.0},
     "4 folds (fold seed 0), each fold model trained on all its records (no validation share) to its last epoch; "
     "the refit that would ship is unchanged, its thresholds and this estimate come from these fold models"),
    # Added after the repeat above, the fresh-fold-seed estimate 0.003 short of its 0.56: width was the one
    # network change phase 1 kept beyond its spread (wider, +0.015). The last two stages 1.5 times as wide cost
    # about 1.35 times a training step here and 1.1 times a record's inference; the default command would take
    # about 75 minutes of its 90.
    ("wider_192", {"conv_channels": [32, 32, 64, 192, 192]},
     "the last two stages 1.5 times as wide (192 channels)"),
    # Added while wider_192 ran: the unscored codes of the records (24 with 5 records or more:
    # infarcts in 1,470 records, hypertrophy, ST changes, ventricular ectopics) as outputs the network learns and
    # never answers. The scored morphology classes (Q-wave and T-wave abnormalities, NSIVCB: AUROC 0.70-0.86 out
    # of fold) are what those codes describe; the cost is 24 more outputs of one dense layer.
    ("auxiliary_labels", {"auxiliary_labels": True},
     "the records' unscored codes (24) learned as outputs that are never answered"),
    # Added before its run (issue 33): training steps under CPU bfloat16 autocast, 86 against 98 ms a step of
    # the shipped network on this CPU (AVX512-BF16), a change for speed: kept if it costs no more than the spread.
    ("bfloat16", {"training_precision": "bfloat16"},
     "training steps under bfloat16 autocast (validation and inference in float32)"),
]
REDUCED = {"6 limb leads": LEAD_SETS_2021["6 leads"], "I and II": LEAD_SETS_2021["2 leads"]}


@dataclass(frozen=True)
class Phase:
    baseline_name: str  # its seed-0 run (``seeded`` names the others)
    baseline: dict      # the overrides every change starts from
    baseline_what: str
    runs: list          # (name, change, what), in order
    report: str         # docs/<report>.md and .png
    # The report's first paragraphs, given its rows and the baseline runs' headline scores.
    introduction: Callable[[list[dict], list[float]], list[str]]


def seeded(name: str, seed: int) -> str:
    """The name of run ``name`` trained with another seed (seed 0 keeps the name)."""
    return name if seed == 0 else f"{name}_seed{seed}"


def screened_config(overrides: dict) -> tuple[int, Config]:
    """A run's number of folds (``FOLDS`` unless its overrides name ``folds``) and its configuration: the
    defaults, ``EPOCHS`` epochs, ``FOLDS`` folds and a ``VAL_FRACTION`` share, then the run's overrides."""
    config = config_from_environment(**{"epochs": EPOCHS, "val_fraction": VAL_FRACTION, "folds": FOLDS, **overrides})
    return config.folds, config


def run(work: Path, name: str, overrides: dict, processes, report_only: bool = False) -> dict | None:
    """Cross-validate one configuration (or read it back) and score it out of fold; None when it has not
    run and ``report_only`` says not to run it."""
    saved = work / name / "predictions.npz"
    folds, config = screened_config(overrides)
    if saved.exists():
        earlier = np.load(saved)
        if Config.from_json(json.loads(str(earlier["config"]))) != config or len(np.unique(earlier["fold_of"])) != folds:
            raise ValueError(f"{saved} was run with another configuration or other folds: move it away to rerun {name}")
    if not saved.exists() and report_only:
        return None
    if not saved.exists():
        data = load_training_set(PTBXL, config)
        development, _ = development_and_test(data.names, data.dx)
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        started = time.time()
        oof = cross_validate(data, config, work / name, processes, resume=True, data_name=str(PTBXL),
                             rows=development, label=f"{name}: ", fold_seed=FOLD_SEED)
        reduced = {}
        for lead_set, leads in REDUCED.items():
            kept = lead_mask(leads)
            probabilities = np.zeros_like(oof.probabilities)
            for fold, model_dir in enumerate(oof.model_dirs):
                rows = oof.rows[oof.fold_of == fold]
                model = load_model(model_dir)
                probabilities[oof.fold_of == fold] = predict_probabilities(
                    model.networks[0], config, [keep_leads(data.signals[i], kept) for i in rows],
                    data.demographics[rows], model.device)
            reduced[lead_set] = probabilities
        folds = [load_checkpoint(d).description for d in oof.model_dirs]
        np.savez(saved, config=json.dumps(config.to_json()), commit=commit, classes=np.array(data.classes),
                 dx=np.array([json.dumps(data.dx[i]) for i in oof.rows]), fold_of=oof.fold_of,
                 oof=oof.probabilities, **{f"oof {k}": v for k, v in reduced.items()},
                 folds=json.dumps([{"best_epoch": f["validation"]["epoch"], "epochs": len(f["history"]),
                                    "reached_maximum": f.get("reached_maximum"),
                                    "seconds_per_epoch": float(np.mean([h["seconds"] for h in f["history"]]))}
                                   for f in folds]),
                 minutes=(time.time() - started) / 60)
    return score_run(saved)


def score_run(path: Path) -> dict:
    saved = np.load(path)
    classes, fold_of = list(saved["classes"]), saved["fold_of"]
    dx = [json.loads(d) for d in saved["dx"]]
    reduced = [saved[f"oof {k}"] for k in REDUCED]
    outputs = cross_validated_outputs(saved["oof"], dx, classes, "snomed", fold_of, reduced)
    scores = [score_predictions(dx, classes, o, p, "snomed") for o, p in zip(outputs, [saved["oof"], *reduced])]
    return {"config": json.loads(str(saved["config"])), "records": len(dx),
            "challenge": scores[0].challenge_metric, "auroc": scores[0].auroc, "f_beta": scores[0].f_beta,
            **{f"challenge {k}": s.challenge_metric for k, s in zip(REDUCED, scores[1:])},
            **{f"auroc {k}": s.auroc for k, s in zip(REDUCED, scores[1:])},
            "folds": json.loads(str(saved["folds"])), "minutes": float(saved["minutes"]),
            "commit": str(saved["commit"])}


def kept_over(result: dict, best: dict, spread: float, name: str) -> bool:
    if name in SPEED_CHANGES:  # kept for what they save when they cost no more than the spread
        return best["challenge"] - result["challenge"] <= spread
    if name == "augment":
        return (result["challenge I and II"] - best["challenge I and II"] > spread
                and best["challenge"] - result["challenge"] <= spread)
    return result["challenge"] - best["challenge"] > spread


def screen(work: Path, phase: Phase, stop_after: str | None, report_only: bool = False) -> list[dict]:
    """Every run of ``phase`` in order, trained where missing (``report_only``: up to the first missing one).
    A row says whether it was kept, and whether it is the repeat of the best recipe."""
    processes = start_processes()
    rows = []

    def record(name, what, overrides, parent, result, decision, kept=False, repeat=False):
        if result is None:  # not run yet: the report ends here
            return True
        rows.append({"name": name, "what": what, "overrides": overrides, "parent": parent, "repeat": repeat,
                     "decision": decision, "kept": kept, **result})
        print(f"{name}: Challenge {result['challenge']:.3f}, AUROC {result['auroc']:.3f}, I and II "
              f"{result['challenge I and II']:.3f}: {decision}", file=sys.stderr)
        return name == stop_after

    def repeat(best_name, best_overrides, best, report_only):
        """``record``'s arguments for the best recipe again with training seed 1 (its result and decision
        are None when it has not run)."""
        name, overrides = seeded(best_name, 1), {**best_overrides, "seed": 1}
        result = run(work, name, overrides, processes, report_only)
        decision = None if result is None else \
            f"repeat: spread {abs(result['challenge'] - best['challenge']):.3f} over {best_name}"
        return name, f"{best_name} again, training seed 1", overrides, best_name, result, decision

    for seed in SEEDS:
        name = seeded(phase.baseline_name, seed)
        overrides = {**phase.baseline, "seed": seed}
        result = run(work, name, overrides, processes, report_only)
        if record(name, f"{phase.baseline_what}, training seed {seed}", overrides, None, result, "baseline"):
            return rows
    if len(rows) < len(SEEDS):
        return rows
    baselines = [r["challenge"] for r in rows]
    spread = max(baselines) - min(baselines)
    best_name, best_overrides, best = phase.baseline_name, dict(phase.baseline), rows[0]
    alternatives = {name for name, *_ in ALTERNATIVES}
    for name, change, what in phase.runs:
        overrides = {**best_overrides, **change}
        result = run(work, name, overrides, processes, report_only)
        if name in alternatives:
            if record(name, what, overrides, best_name, result, f"alternative to {best_name}"):
                return rows
            continue
        keep = result is not None and (kept_over(result, best, spread, name) or name in OVERRIDDEN)
        decision = f"kept (over {best_name})" if keep else f"dropped (vs {best_name})"
        if name in OVERRIDDEN:
            decision += f"; {OVERRIDDEN[name]}"
        # The repeat of the recipe a kept change replaces stays in the table if it ran (it is never run
        # once replaced: it decides nothing).
        replaced = repeat(best_name, best_overrides, best, True) if keep and best_name != phase.baseline_name else None
        if replaced and replaced[4] is not None and record(*replaced, repeat=True):
            return rows
        stop = record(name, what, overrides, best_name, result, decision, kept=keep)
        if keep:
            best_name, best_overrides, best = name, overrides, result
        if stop:
            return rows
    # Added after wider was kept, before peak_lr finished: the noise at the recipe the screening ends with,
    # 20 epochs of a larger network, which the 8-epoch baseline's two seeds may not tell. Last, so that it
    # decides nothing. (A baseline that nothing beat has its repeat already.)
    if best_name == phase.baseline_name:
        return rows
    record(*repeat(best_name, best_overrides, best, report_only), repeat=True)
    return rows


def phase_1_introduction(rows: list[dict], baselines: list[float]) -> list[str]:
    return [
        "# Screening the training changes of issue 15",
        "",
        "Written by `python experiments/screen_recipes.py WORK_DIR` (CPU, 2 cores). Protocol fixed before the "
        f"runs: the **{rows[0]['records']:,} development records** of `../shared/data/ptbxl` (PTB-XL, 100 Hz, 10 s; "
        "the 1,220 test records are not read), the same 3 folds for every run (fold seed 0), at most "
        f"{EPOCHS} epochs a fold and each fold's checkpoint chosen by validation loss on 20 % of its training "
        "part, unless the row says otherwise. Scores are out of fold: the Challenge metric with thresholds tuned on the "
        "other folds, macro AUROC, and the Challenge metric of the held-out records read through the 6 limb "
        "leads or leads I and II alone (the other leads zero, limb leads derived) with those same 12-lead "
        "thresholds. The two reduced columns agree up to float rounding (within 0.001 in every run): I and II "
        "determine the other four limb leads, so both reach the network as the same six leads, those four "
        "recorded in one and computed in the other.",
        "",
        f"The baseline ran with {len(baselines)} training seeds: spread {max(baselines) - min(baselines):.3f}. "
        "Each change runs on top of the best recipe so far and is kept only if it beats it by more than the "
        "spread (augmentation: if it lifts the I-and-II score by more than the spread at a 12-lead cost no larger; "
        "the stride, a change for speed decided on before its run: if it costs no more than the spread). A decision "
        "taken against the rule says so, and why, on its row. The best recipe then runs again with training "
        "seed 1 (the last row, which decides nothing), for the spread at the recipe the screening ends with.",
        "",
        "Minutes are wall time, which includes any pauses of the run (tests run beside it were given the machine).",
    ]


def phase_2_introduction(rows: list[dict], baselines: list[float]) -> list[str]:
    return [
        "# Screening, phase 2: changes to the shipped recipe",
        "",
        "Written by `python experiments/screen_recipes.py WORK_DIR --phase 2` (CPU, 2 cores), on the protocol of "
        f"[phase 1](screening.md): the **{rows[0]['records']:,} development records**, the same 3 folds (fold seed 0) unless "
        "a row says otherwise, scores out of fold with thresholds tuned on the other folds, and the 6 limb leads and I and II alone "
        "decided with the 12-lead thresholds. The baseline is the recipe phase 1 ended with (its peak_lr, the "
        f"defaults when phase 2 began) at its own {Config.epochs} epochs, each fold's checkpoint chosen by "
        "validation loss on 20 % of its training part.",
        "",
        f"The baseline runs with {len(SEEDS)} training seeds (the configurations of phase 1's peak_lr and "
        f"peak_lr_seed1, rerun by later code): "
        + (f"spread {max(baselines) - min(baselines):.3f}. " if len(baselines) == len(SEEDS) else
           f"{len(baselines)} of them so far, so no spread yet. ") + "Each change runs on top of "
        "the best recipe so far and is kept only if it beats it by more than that spread; a kept change's recipe "
        "then runs again with training seed 1 (the last row, which decides nothing). Training keeps PyTorch's own "
        "OpenMP waits here (phase 1 ran under passive ones, which made its epochs slower). Minutes are wall time, "
        "which includes any pause of the run (weight_decay_5x's includes 5 minutes stopped while other work had the "
        "machine), and count the session that finished it: four_folds_all_records_seed1's first fold and 17 epochs "
        "of its second, 16 minutes of epochs, ran in an earlier session.",
    ]


PHASES = {1: Phase("baseline", BASELINE, "the shipped recipe", RUNS, "screening", phase_1_introduction),
          2: Phase("shipped", SHIPPED, "the recipe phase 1 ended with (peak_lr), which model/ shipped", PHASE_2,
                   "screening_2", phase_2_introduction)}


def write_report(rows: list[dict], path: Path, phase: Phase) -> None:
    baselines = [r["challenge"] for r in rows if r["decision"] == "baseline"]
    lines = phase.introduction(rows, baselines) + [
        "",
        "| run | what | on top of | Challenge | AUROC | 6 limb leads | I and II | best epochs | min | code | decision |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        epochs = ", ".join(f"{f['best_epoch']}/{f['epochs']}" for f in r["folds"])
        lines.append(f"| {r['name']} | {r['what']} | {r['parent'] or '—'} | {r['challenge']:.3f} | {r['auroc']:.3f} "
                     f"| {r['challenge 6 limb leads']:.3f} | {r['challenge I and II']:.3f} | {epochs} "
                     f"| {r['minutes']:.0f} | {r['commit']} | {r['decision']} |")
    lines += ["", "Best epochs: the epoch each fold's checkpoint came from, of the epochs it ran."]
    not_run = [name for name in [seeded(phase.baseline_name, seed) for seed in SEEDS] + [n for n, *_ in phase.runs]
               if name not in {r["name"] for r in rows}]
    # The best recipe's repeat is owed once a change has been kept (a baseline that nothing beat has its
    # repeat already).
    best = [r["name"] for r in rows if r["kept"]][-1:]
    if best and not any(r["repeat"] and r["parent"] == best[0] for r in rows):
        not_run.append("the repeat of the best recipe with training seed 1")
    if not_run:
        lines += ["", f"Not run yet: {', '.join(not_run)}."]
    lines += ["", f"![Screening]({phase.report}.png)"]
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.arange(len(rows))
    figure, axis = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    for offset, key, label in ((-0.27, "challenge", "12 leads"), (0, "challenge 6 limb leads", "6 limb leads"),
                               (0.27, "challenge I and II", "I and II")):
        axis.barh(y + offset, [r[key] for r in rows], 0.27, label=label)
    axis.set_yticks(y, [f"{r['name']} ({r['decision'].split(' ')[0]})" for r in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("Challenge metric, out of fold (thresholds tuned on other folds, 12 leads)")
    axis.set_xlim(0, 1.3 * max(r["challenge"] for r in rows))  # room for the legend beside the bars
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--phase", type=int, choices=sorted(PHASES), default=1,
                        help="1: the changes of issue 15; 2: changes to the recipe phase 1 ended with")
    parser.add_argument("--stop-after", help="stop after this run (the rest another time)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the runs made so far")
    args = parser.parse_args(argv)
    phase = PHASES[args.phase]
    rows = screen(args.work_dir, phase, args.stop_after, args.report_only)
    if not rows:
        sys.exit("screen_recipes.py: no run has finished yet: nothing to report")
    docs = ROOT / "docs"
    (args.work_dir / f"{phase.report}.json").write_text(json.dumps({"runs": rows}, indent=2))
    write_report(rows, docs / f"{phase.report}.md", phase)
    plot(rows, docs / f"{phase.report}.png")
    print((docs / f"{phase.report}.md").read_text())


if __name__ == "__main__":
    main()
