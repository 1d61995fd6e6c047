#!/usr/bin/env python
"""Score the shipped recipe once, honestly (issues 15 and 32): trained exactly as ``train_model.py``
trains it, on the development records alone.

    python experiments/evaluate_recipe.py WORK_DIR [--seed 1] [--leave-one-source-out [SOURCE ...]
                                                   [--without-development]] [--report-only]

The records of the development folders (../shared/data/ptbxl and ../shared/data/chapman) split per
source as the screening split PTB-XL (``splits.development_and_test``: 80 % to develop, 20 % that no choice
has seen; PTB-XL's 1,220 test records are those of every earlier figure). WORK_DIR/development links the
development records; the default recipe (``train_12ECG_classifier`` with no option) trains on it with
``--seed`` (default 1: folds and training seeds new to the screening, which used 0). Scored, per source,
by the official scorer on the records' own labels, with 95 % bootstrap intervals where fewer than 1,000
records are scored:

* **cross-validated**: the out-of-fold probabilities the model's thresholds were tuned on, decided with
  thresholds tuned on the other folds (tuned as the recipe tunes them: labels a source does not give count
  neither as hits nor as misses);
* **test**: the trained model through the driver's own path (``inference.classify``) with its thresholds,
  on each source's test records read whole and through each 2021 reduced-lead set
  (``lead_sets.score_lead_sets``: thresholds never tuned per lead set);
* **fixtures**: the same for the labelled records from other sources (500 and 1000 Hz) that are not PTB-XL
  records: too few to rank anything;
* with ``--leave-one-source-out``: the recipe trained on one source's development records alone, scored on
  every record of the other source (none of which it saw): how the model meets a source it has never seen.
  Followed by source names (``PTB-XL``, ``Chapman-Shaoxing``; after WORK_DIR), only those sources train
  alone. Leave-one-source-out results saved in WORK_DIR by earlier runs are always kept (a new run of a
  source replaces its own).

Every network the recipe trained is kept (``WORK_DIR/model/folds``: the fold models and the refit), and each
one's probabilities on every scored record are saved, per lead set, in ``WORK_DIR/predictions/*.npz``
(``save_predictions``), so that a decision rule or an ensemble is re-scored in seconds without training.

A finished model in WORK_DIR is reused (a killed run resumes); then docs/results.md and docs/results.png
are written (``--report-only``: from the scores saved in WORK_DIR), with the tables that
``experiments/decision_rules.py`` and each screen (``WORK_DIR/screen*``, ``experiments/screen_unseen.py``) saved
there. One process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cinc2020.checkpoint import MODEL_FILE  # noqa: E402
from cinc2020.config import ENVIRONMENT_VARIABLE, Config, config_from_environment  # noqa: E402
from cinc2020.crossval import REDUCED_LEAD_SETS, WithLeads  # noqa: E402
from cinc2020.data import load_training_set  # noqa: E402
from cinc2020.decisions import cross_validated_outputs, decide, tune_thresholds  # noqa: E402
from cinc2020.inference import load_model, predict_probabilities  # noqa: E402
from cinc2020.intervals import bootstrap_intervals  # noqa: E402
from cinc2020.labels import source_of  # noqa: E402
from cinc2020.lead_sets import INTERVALS_BELOW, labelled_records, score_lead_sets  # noqa: E402
from cinc2020.recipe import MODELS, OUT_OF_FOLD_FILE, WORK_FOLDER  # noqa: E402
from cinc2020.records import LEAD_SETS_2021, find_records, probabilities_key, with_leads  # noqa: E402
from cinc2020.scoring import score_predictions  # noqa: E402
from cinc2020.splits import development_and_test  # noqa: E402
from train_12ECG_classifier import train_12ECG_classifier  # noqa: E402

SHARED = ROOT.parent / "shared"
PTBXL = SHARED / "data" / "ptbxl"
DEVELOPMENT_FOLDERS = [PTBXL, SHARED / "data" / "chapman"]
FIXTURES = SHARED / "data" / "fixtures" / "cinc_snomed"
# The rank-2 entry's code trained on the 6,100 dev records, on the project's own held-out PTB-XL records
# (not this test split): the reference.
RANK_2_REFERENCE = 0.54
PTBXL_PREFIX = "HR"  # the challenge's names for PTB-XL records
# The recipe before Chapman-Shaoxing joined, trained on PTB-XL alone: this script's figures for it at commit
# 484f3d3 (its 4,880 development records, the same 1,220 test records), and the model it shipped at commit
# e306040 (all 6,100 PTB-XL records) on all 767 Chapman-Shaoxing records, which it never saw: that commit's
# `driver.py model ../shared/data/chapman OUT` scored by `evaluate_12ECG_score.py ../shared/data/chapman OUT`,
# the intervals by intervals.bootstrap_intervals.
PTBXL_ONLY = {"commit": "484f3d3", "test": 0.562, "test_auroc": 0.915, "six_leads": 0.93}
PTBXL_ONLY_ON_CHAPMAN = {"commit": "e306040", "trained": 6100, "records": 767, "headline": 0.376,
                         "headline_95": [0.35, 0.40], "auroc": 0.862, "auroc_95": [0.84, 0.89]}


def link_records(headers: list[Path], folder: Path) -> Path:
    """A folder of links to these records' header and signal files."""
    folder.mkdir(parents=True, exist_ok=True)
    for header in headers:
        for path in (header, header.with_suffix(".mat")):
            link = folder / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    return folder


def trained_with_the_defaults(model_dir: Path, seed: int) -> bool:
    """Whether the finished model in ``model_dir`` is the default recipe's, trained with ``seed``."""
    document = json.loads((model_dir / MODEL_FILE).read_text())
    configs = [Config.from_json(member["config"]) for member in document["members"]]
    return (document["recipe"]["folds"] == Config().folds and document["recipe"]["models"] == list(MODELS)
            and all(c == config_from_environment(model=c.model, seed=seed) for c in configs))


def threshold_shrink(model_dir: Path) -> float:
    """How far the model's thresholds were shrunk toward one global (0 where it predates the choice)."""
    return json.loads((model_dir / MODEL_FILE).read_text())["members"][0]["config"].get("threshold_shrink", 0.0)


def split() -> tuple[list[Path], list[Path]]:
    """The development and test records' header files, every development source's."""
    data = load_training_set(DEVELOPMENT_FOLDERS, Config())
    development, test = development_and_test(data.names, data.dx)
    headers = {p.stem: p for p in find_records(DEVELOPMENT_FOLDERS)}
    return [headers[data.names[i]] for i in development], [headers[data.names[i]] for i in test]


def train(records: list[Path], model_dir: Path, seed: int) -> float | None:
    """The default recipe trained on ``records`` into ``model_dir`` (or the finished one kept); the training
    minutes (None when kept and not timed)."""
    timed = model_dir.parent / f"{model_dir.name}-minutes.json"
    if (model_dir / MODEL_FILE).exists():
        if not trained_with_the_defaults(model_dir, seed):
            raise SystemExit(f"{model_dir} holds a model of another recipe or seed than the defaults': use a new "
                             "WORK_DIR")
        return json.loads(timed.read_text()) if timed.exists() else None
    started = time.time()
    train_12ECG_classifier(link_records(records, model_dir.parent / f"{model_dir.name}-records"), model_dir,
                           resume=True, seed=seed, keep_networks=True)
    minutes = (time.time() - started) / 60
    timed.write_text(json.dumps(minutes))
    return minutes


def kept_networks(model_dir: Path) -> dict[str, Path]:
    """The networks the recipe trained for ``model_dir``, kept beside it: ``fold1`` ... and ``refit``."""
    work = model_dir / WORK_FOLDER / MODELS[0]
    named = {f"fold{k}": work / f"fold{k}" for k in range(1, Config().folds + 1)} | {"refit": work / "all"}
    return {name: folder for name, folder in named.items() if (folder / MODEL_FILE).exists()}


def save_predictions(path: Path, model_dir: Path, headers: list[Path], lead_sets=tuple(LEAD_SETS_2021)) -> None:
    """Each kept network's probabilities on these records as the driver computes them, each record read with
    each lead set's leads alone (``records.with_leads``): arrays ``probabilities_<k>_leads``, networks x
    records x classes (NaN where a record failed), beside ``names``, ``dx`` (comma-joined), ``classes`` and
    ``networks``. An existing file that holds every lead set asked for is kept."""
    if path.exists() and {probabilities_key(s) for s in lead_sets} <= set(np.load(path).files):
        return
    from tqdm import tqdm

    networks = {name: load_model(folder) for name, folder in kept_networks(model_dir).items()}
    classes = next(iter(networks.values())).classes
    records = labelled_records(headers)
    arrays = {}
    for lead_set in lead_sets:
        probabilities = np.full((len(networks), len(records), len(classes)), np.nan)
        for j, (data, lines, _) in enumerate(tqdm(records, desc=f"{path.stem}, {lead_set}", unit="rec",
                                                  file=sys.stderr, leave=False)):
            reduced = with_leads(data, lines, LEAD_SETS_2021[lead_set])
            for i, network in enumerate(networks.values()):
                try:
                    probabilities[i, j] = network.probabilities(*reduced)
                except Exception as error:  # noqa: BLE001 - the record's failure, as the driver takes it
                    print(f"warning: {lead_set}, {lines[0].split()[0]}: {error}", file=sys.stderr)
        arrays[probabilities_key(lead_set)] = probabilities
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, names=np.array([lines[0].split()[0] for _, lines, _ in records]),
                        dx=np.array([",".join(dx) for *_, dx in records]), classes=np.array(classes),
                        networks=np.array(list(networks)), **arrays)


def by_source(headers: list[Path]) -> dict[str, list[Path]]:
    sources: dict[str, list[Path]] = {}
    for header in headers:
        sources.setdefault(source_of(header.stem), []).append(header)
    return dict(sorted(sources.items()))


def cross_validated(model_dir: Path, development: Path) -> dict[str, dict]:
    """The out-of-fold scores per source (and over all), thresholds tuned on the other folds as the recipe
    tunes them."""
    saved = np.load(model_dir / OUT_OF_FOLD_FILE)
    classes, probabilities = list(saved["classes"]), saved["probabilities"].mean(axis=0)
    data = load_training_set(development, Config(), classes=classes)
    row_of = {name: i for i, name in enumerate(data.names)}
    rows = np.array([row_of[str(name)] for name in saved["names"]])
    dx = [data.dx[i] for i in rows]
    outputs = cross_validated_outputs(probabilities, dx, classes, "snomed", saved["fold"],
                                      known=data.mask[rows] > 0, shrink=threshold_shrink(model_dir))[0]
    sources = np.array([data.sources[i] for i in rows])
    results = {}
    for source in ["all", *sorted(set(sources))]:
        chosen = np.ones(len(rows), dtype=bool) if source == "all" else sources == source
        chosen_dx = [d for d, c in zip(dx, chosen) if c]
        scores = score_predictions(chosen_dx, classes, outputs[chosen], probabilities[chosen], "snomed")
        results[source] = {"records": int(chosen.sum()), "folds": int(saved["fold"].max()) + 1,
                           "headline": scores.challenge_metric, "auroc": scores.auroc, "f_beta": scores.f_beta,
                           "g_beta": scores.g_beta}
        if chosen.sum() < INTERVALS_BELOW:
            intervals = bootstrap_intervals(chosen_dx, classes, outputs[chosen], probabilities[chosen], "snomed")
            results[source] |= {"headline_95": intervals["headline"], "auroc_95": intervals["auroc"]}
    return results


def lead_set_out_of_fold(model_dir: Path, development: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The out-of-fold probabilities per 2021 lead set (with the rows' fold), as the recipe saves them; for a model
    trained before it saved them, predicted again by the kept fold networks on their held-out records."""
    saved = np.load(model_dir / OUT_OF_FOLD_FILE)
    found = {"12 leads": saved["probabilities"].mean(axis=0)}
    slug = {name: probabilities_key(name) for name in REDUCED_LEAD_SETS}
    if all(key in saved.files for key in slug.values()):
        return saved["fold"], found | {name: saved[key].mean(axis=0) for name, key in slug.items()}
    data = load_training_set(development, Config(), classes=list(saved["classes"]))
    row_of = {name: i for i, name in enumerate(data.names)}
    rows = np.array([row_of[str(name)] for name in saved["names"]])
    networks = kept_networks(model_dir)
    for name in REDUCED_LEAD_SETS:
        found[name] = np.full_like(found["12 leads"], np.nan)
    for fold in np.unique(saved["fold"]):
        model = load_model(networks[f"fold{fold + 1}"])
        held = rows[saved["fold"] == fold]
        signals, person = data.signals.subset(held), data.demographics[held]
        for name in REDUCED_LEAD_SETS:
            found[name][saved["fold"] == fold] = predict_probabilities(
                model.networks[0], model.configs[0], WithLeads(signals, LEAD_SETS_2021[name]), person, model.device)
    return saved["fold"], found


def results_2021(model_dir: Path, development: Path, work: Path) -> dict:
    """The 2021 contract scored per lead set: thresholds tuned for the 2021 metric on each lead set's out-of-fold
    probabilities (as the recipe tunes them now), applied to the shipped networks' probabilities on the test
    records read with that set's leads, per source and on the fixtures of other sources; beside it, the same
    networks decided with the 2020 thresholds on every set, as before."""
    fold_of, by_lead_set = lead_set_out_of_fold(model_dir, development)
    saved_oof = np.load(model_dir / OUT_OF_FOLD_FILE)
    classes = [str(c) for c in saved_oof["classes"]]
    data = load_training_set(development, Config(), classes=classes)
    row_of = {name: i for i, name in enumerate(data.names)}
    rows = np.array([row_of[str(name)] for name in saved_oof["names"]])
    dx, known = [data.dx[i] for i in rows], data.mask[rows] > 0
    shipped_model = json.loads((model_dir / MODEL_FILE).read_text())
    shrink = threshold_shrink(model_dir)
    thresholds = {name: tune_thresholds(p, dx, classes, "2021", known, shrink=shrink)[0]
                  for name, p in by_lead_set.items()}
    thresholds_2020 = np.asarray(load_model(model_dir).thresholds)
    results = {"thresholds_2021": {name: t.tolist() for name, t in thresholds.items()}, "scored": {}}
    for group, file in (("test", "test.npz"), ("fixtures", "fixtures.npz")):
        saved = np.load(work / "predictions" / file)
        networks = [str(n) for n in saved["networks"]]
        shipped = [networks.index("refit")] if shipped_model["members"][0]["fold"] == "all records" else \
            [i for i, n in enumerate(networks) if n.startswith("fold")]  # what the model ships: its mean
        group_dx = [d.split(",") for d in saved["dx"]]
        sources = np.array([source_of(str(n)) for n in saved["names"]]) if group == "test" else \
            np.array(["other sources"] * len(group_dx))
        read = ~np.isnan(np.stack([saved[k] for k in saved.files if k.startswith("probabilities")])).any(axis=(0, 1, 3))
        for source in sorted(set(sources)):
            mine = (sources == source) & read  # a record that failed in some set is left out of every set
            chosen = [d for d, m in zip(group_dx, mine) if m]
            for name in LEAD_SETS_2021:
                probabilities = saved[probabilities_key(name)][shipped].mean(axis=0)[mine]
                entry = {"records": int(mine.sum())}
                for how, used in (("2021", thresholds[name]), ("2020", thresholds_2020)):
                    scores = score_predictions(chosen, classes, decide(probabilities, used), probabilities, "2021")
                    entry |= {f"challenge_{how}_thresholds": scores.challenge_metric, "auroc": scores.auroc}
                results["scored"].setdefault(f"{group}, {source}", {})[name] = entry
    return results


def interval(result: dict, key: str) -> str:
    """A score with its 95 % interval when it has one."""
    bounds = result.get(f"{key}_95")
    return f"{result[key]:.3f}" + (f" ({bounds[0]:.2f} to {bounds[1]:.2f})" if bounds else "")


def write_results(path: Path, model_dir: Path, results: dict, minutes: float | None) -> None:
    cv, test, fixtures, loso = (results.get(k) for k in ("cv", "test", "fixtures", "leave_one_source_out"))
    described = json.loads((model_dir / "model.json").read_text())
    config = described["members"][0]["config"]
    members = described["members"]
    epochs = ", ".join(f"{(m.get('validation') or {}).get('epoch', len(m['history']))}/{len(m['history'])}"
                       for m in members)
    # the median: robust to epochs that were paused while tests ran on the same cores
    seconds = np.median([h["seconds"] for m in members for h in m["history"]])
    sources = [s for s in cv if s != "all"]
    lines = [
        "# The shipped recipe, scored once",
        "",
        *stale_recipe(described),
        "Written by `python experiments/evaluate_recipe.py WORK_DIR` (CPU, 2 cores). The recipe is what "
        "`python train_model.py TRAIN_DIR MODEL_DIR` trains with no option: "
        f"{described['recipe']['folds']}-fold cross-validation of {' and '.join(described['recipe']['models'])} for "
        f"the thresholds, and as what ships {described['recipe']['networks']}; its changes were screened on "
        "PTB-XL's development records alone ([screening.md](screening.md), [screening_2.md](screening_2.md)). Here "
        f"it is trained on the **{cv['all']['records']:,} development records** of "
        + ", ".join(f"{s} ({cv[s]['records']:,})" for s in sources)
        + f" with seed {config['seed']} (a fold assignment new to the screening), then scored once on the test "
        "records no choice has seen: " + ", ".join(f"{s} {test[s]['12 leads']['records']:,}" for s in test)
        + f"; and on **{fixtures['12 leads']['records']} fixture records from other sources** "
        "(`../shared/data/fixtures/cinc_snomed` less its PTB-XL records: CPSC, CPSC-Extra, Georgia, "
        "Chapman-Shaoxing, PTB at 500 and 1000 Hz: too few to rank anything). Every figure is the official "
        "scorer's on the records' own labels; brackets hold 95 % bootstrap intervals (1,000 draws of the "
        "records) where fewer than 1,000 records are scored.",
        "",
        (f"Training: {minutes:.0f} minutes for the whole recipe (wall time, pauses included); " if minutes is not None
         else "Training: ")
        + f"{seconds:.0f} s an epoch of the shipped network over {members[0]['training_data']['train_records']:,} "
        f"records (median); it kept epoch {epochs} of those it ran.",
        "",
        "| records | how | Challenge | AUROC | F-beta | G-beta | of 12 leads |",
        "|---|---|---|---|---|---|---|",
    ]
    for source, r in cv.items():
        lines.append(f"| development, {source} ({r['records']:,}), out of fold ({r['folds']} folds) | 12 leads, "
                     f"thresholds tuned on the other folds | {interval(r, 'headline')} | {interval(r, 'auroc')} | "
                     f"{r['f_beta']:.3f} | {r['g_beta']:.3f} | |")
    for where, per_set in [*((f"test, {s}", test[s]) for s in test), ("fixtures", fixtures)]:
        for lead_set, r in per_set.items():
            lines.append(f"| {where} ({r['records']:,}) | {lead_set}, the model's thresholds | "
                         f"{interval(r, 'headline')} | {interval(r, 'auroc')} | {r['f_beta']:.3f} | {r['g_beta']:.3f} "
                         f"| {r['of_12_leads']:.2f} |")
    lines += [
        "",
        "Reduced-lead rows read each record as stored with only that set's leads (`records.with_leads`); the "
        "model derives the limb leads that I and II determine, so the 6- and 2-lead sets reach it as the same six "
        "limb leads, and the 4- and 3-lead sets as those six and V2.",
    ]
    if loso:
        lines += ["", "Leave one source out: the recipe trained on one source's development records alone, scored "
                  "on every record of the other source (12 leads, that model's thresholds):", "",
                  "| trained on | scored on | Challenge | AUROC |", "|---|---|---|---|"]
        for trained_on, r in loso.items():
            lines.append(f"| {trained_on} ({r['trained']:,}) | {r['scored_on']} ({r['records']:,}) | "
                         f"{interval(r, 'headline')} | {interval(r, 'auroc')} |")
    scored_2021 = results.get("2021", {}).get("scored")
    if scored_2021:
        lines += ["", "The 2021 contract (`team_code.py`): the same shipped network on the same records read with each 2021 "
                  "lead set, scored by the 2021 scorer (26 classes). Decided with thresholds tuned for the 2021 metric on "
                  "that lead set's out-of-fold probabilities (what `training_code` saves), against the 2020 thresholds "
                  "on every set:", "",
                  "| records | " + " | ".join(LEAD_SETS_2021) + " |", "|---|" + "---|" * len(LEAD_SETS_2021)]
        for where, per_set in scored_2021.items():
            full = per_set["12 leads"]["challenge_2021_thresholds"] or float("nan")
            lines.append(f"| {where} ({per_set['12 leads']['records']:,}) | " + " | ".join(
                f"{r['challenge_2021_thresholds']:.3f} ({r['challenge_2021_thresholds'] / full:.2f}x; 2020: "
                f"{r['challenge_2020_thresholds']:.3f})" for r in per_set.values()) + " |")
    rules = model_dir.parent / "decision_rules.json"
    for part, results_of_part in (json.loads(rules.read_text()) if rules.exists() else {}).items():
        lines += ["", *decision_rules_table(part, results_of_part)]
    lead_set_rules = model_dir.parent / "decision_rules_2021.json"
    if lead_set_rules.exists():
        lines += ["", "The 2021 contract per lead set under each decision rule (`experiments/decision_rules.py`): thresholds "
                  "tuned for the 2021 metric on that lead set's out-of-fold probabilities, applied to the networks' "
                  "probabilities on the test records read with that set's leads; in brackets, the share of 12 leads:",
                  "", "| records | networks | rule | " + " | ".join(LEAD_SETS_2021) + " |",
                  "|---|---|---|" + "---|" * len(LEAD_SETS_2021)]
        for key, per_set in json.loads(lead_set_rules.read_text()).items():
            where, networks, rule = key.split(" | ")
            lines.append(f"| {where} | {networks} | {rule} | " + " | ".join(
                f"{v:.3f} ({share(v, per_set['12 leads'])})" for v in per_set.values()) + " |")
    for screen in sorted(model_dir.parent.glob("screen*/screen.json")):
        from screen_unseen import screen_table

        screened = json.loads(screen.read_text())
        lines += ["", f"**Screen `{screen.parent.name}`.**",
                  *screen_table(screened["choices"], screened["spread"], screened.get("baseline_config"))]
    ptbxl = test.get("PTB-XL", {}).get("12 leads")
    if ptbxl:
        lines += ["", f"Against the recipe trained on PTB-XL alone (commit {PTBXL_ONLY['commit']}, the same split): on the "
                  f"same {ptbxl['records']:,} PTB-XL test records {ptbxl['headline']:.3f} (AUROC {ptbxl['auroc']:.3f}) "
                  f"against {PTBXL_ONLY['test']:.3f} ({PTBXL_ONLY['test_auroc']:.3f}); its 6 limb leads kept "
                  f"{PTBXL_ONLY['six_leads']:.2f}x of 12 there. The model it shipped (commit "
                  f"{PTBXL_ONLY_ON_CHAPMAN['commit']}, all {PTBXL_ONLY_ON_CHAPMAN['trained']:,} PTB-XL records) scored "
                  f"{interval(PTBXL_ONLY_ON_CHAPMAN, 'headline')}, AUROC {interval(PTBXL_ONLY_ON_CHAPMAN, 'auroc')}, on all "
                  f"{PTBXL_ONLY_ON_CHAPMAN['records']} Chapman-Shaoxing records, none of which it had seen."]
    full = {s: test[s]["12 leads"]["headline"] for s in test}
    lines += [
        "",
        f"For scale: the 2020 rank-2 entry's code trained on the 6,100 PTB-XL dev records scores "
        f"{RANK_2_REFERENCE:.2f} on the project's own held-out PTB-XL records (not this test split). The 6 limb "
        "leads keep " + ", ".join(f"{test[s]['6 leads']['headline'] / full[s]:.2f}x on {s}" for s in test)
        + " of the 12-lead score on the test records; I and II "
        + ", ".join(f"{test[s]['2 leads']['headline'] / full[s]:.2f}x" for s in test) + ".",
        "",
        "Configuration of each network:",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
        "![Scores of the shipped recipe](results.png)",
    ]
    path.write_text("\n".join(lines) + "\n")


def share(score: float, full: float) -> str:
    """A lead set's score as a share of the 12-lead one ("0.95x"; "-" where 12 leads score nothing)."""
    return f"{score / full:.2f}x" if full > 0 else "-"


def changed_defaults(config: dict) -> list[str]:
    """Where a saved configuration (a model.json member's) differs from today's defaults, the seed aside, as
    Markdown phrases."""
    today = Config().to_json()
    was = Config.from_json({k: v for k, v in config.items() if k in today}).to_json()  # lists and tuples alike
    return [f"`{k}` {json.dumps(config[k])} (today {json.dumps(today[k])})" for k in config
            if k in today and k != "seed" and was[k] != today[k]]


def stale_recipe(described: dict) -> list[str]:
    """A warning, as Markdown lines, where the judged model (its model.json) was trained with other defaults than
    today's."""
    config, today = described["members"][0]["config"], Config().to_json()
    changed = changed_defaults(config)
    ships = "one per architecture, refit on every record" if today["refit"] else "the fold models"
    if described["recipe"]["networks"] != ships:
        changed.append(f"it ships {described['recipe']['networks']} (today {ships})")
    if "threshold_shrink" not in config and today["threshold_shrink"]:
        changed.append(f"per-class thresholds (today shrunk {today['threshold_shrink']} of the way to one global)")
    if not changed:
        return []
    return ["**The networks judged here were trained with earlier defaults**: " + "; ".join(changed) + ". Their "
            "figures are not today's recipe's until this script runs again in a new WORK_DIR; the tables of "
            "decision rules and training choices below are what changed the defaults.", ""]


def decision_rules_table(part: str, results: dict) -> list[str]:
    """The lines of ``experiments/decision_rules.py``'s figures on one part (the test records, or a source
    never trained on): one row a rule and set of networks, a column a source, and the mean of the sources (a
    rule "without the fallback" is listed only where it decided a record otherwise)."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for key, figures in results.items():
        where, networks, rule = key.split(" | ")
        rows.setdefault((networks, rule), {})[where] = figures
    sources = sorted({where for row in rows.values() for where in row})
    scores = {k: {s: round(f["challenge"], 9) for s, f in v.items()} for k, v in rows.items()}
    shown = {k: v for k, v in rows.items() if not (k[1].endswith(", no fallback")
                                                   and scores[k] == scores.get((k[0], k[1][:-len(", no fallback")])))}
    where = ("the test records of the sources it trained on (a first look: no choice is made on them)"
             if part == "test split" else f"the recipe {part}, every record of the source it never saw")
    lines = [f"Decision rules and ensembles, {part}: re-scored on the saved predictions (`experiments/decision_rules.py "
             f"WORK_DIR`), every rule tuned on the out-of-fold probabilities alone, scored on {where}; in brackets "
             "the paired difference from the row without them (per-class thresholds tuned pooled, unshrunk, on the "
             "refit where the run kept one, else on the 4 fold networks), 95 % bootstrap interval. Rules without the "
             "most probable class when none passes scored the same as with it wherever they are not listed.", "",
             "| networks | rule | " + " | ".join(sources) + " | mean |", "|---|---|" + "---|" * (len(sources) + 1)]
    for (networks, rule), per_source in shown.items():
        cells = [f"{per_source[s]['challenge']:.3f}" + (" ({:+.3f} to {:+.3f})".format(*per_source[s]["paired_difference_95"])
                                                       if "paired_difference_95" in per_source[s] else "")
                 for s in sources]
        mean = np.mean([per_source[s]["challenge"] for s in sources])
        lines.append(f"| {networks} | {rule} | " + " | ".join(cells) + f" | {mean:.3f} |")
    return lines


def plot(path: Path, results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {**{f"test, {s}": r for s, r in results["test"].items()}, "other sources": results["fixtures"]}
    lead_sets = list(results["fixtures"])
    x = np.arange(len(lead_sets))
    width = 0.8 / len(groups)
    figure, axis = plt.subplots(figsize=(9, 4.8))
    for k, (name, per_set) in enumerate(groups.items()):
        axis.bar(x - 0.4 + width * (k + 0.5), [per_set[s]["headline"] for s in lead_sets], width,
                 label=f"{name} ({per_set['12 leads']['records']:,})")
    for source, r in results["cv"].items():
        if source != "all":
            axis.axhline(r["headline"], linestyle="--", linewidth=1, color="black" if source == "PTB-XL" else "grey",
                         label=f"cross-validated, {source}, 12 leads ({r['records']:,})")
    axis.axhline(RANK_2_REFERENCE, color="grey", linestyle=":", linewidth=1, label="rank-2 reference (own held-out)")
    axis.set_xticks(x, lead_sets)
    axis.set_ylabel("Challenge metric (the model's thresholds)")
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def leave_one_source_out(work: Path, development: list[Path], seed: int, trained_alone: list[str]) -> dict:
    """Per development source of ``trained_alone`` (every one when empty): the recipe trained on its development
    records alone, scored (12 leads) on every record of the others."""
    results = {}
    sources = by_source(development)
    everything = by_source(find_records(DEVELOPMENT_FOLDERS))
    for source, records in sources.items():
        if trained_alone and source not in trained_alone:
            continue
        model_dir = work / f"only-{source}" / "model"
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        train(records, model_dir, seed)
        others = [h for s, headers in everything.items() if s != source for h in headers]
        scored = score_lead_sets(load_model(model_dir), others, lead_sets=("12 leads",))["12 leads"]
        save_predictions(work / "predictions" / f"only-{source}-on-others.npz", model_dir, others, ("12 leads",))
        results[source] = {**scored, "trained": len(records),
                           "scored_on": ", ".join(s for s in everything if s != source)}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--seed", type=int, default=1, help="training and fold seed (default 1)")
    parser.add_argument("--leave-one-source-out", nargs="*", metavar="SOURCE",
                        help="also train on each source alone (or on these alone) and score on the others")
    parser.add_argument("--without-development", action="store_true",
                        help="with --leave-one-source-out: train only the sources alone, print their scores (the "
                             "pages need the development model: they are left as they are)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the pages from the saved scores")
    args = parser.parse_args(argv)
    if args.without_development and not args.leave_one_source_out:
        parser.error("--without-development needs --leave-one-source-out SOURCE")
    if os.environ.get(ENVIRONMENT_VARIABLE):
        parser.error(f"${ENVIRONMENT_VARIABLE} is set: it would change the default recipe this scores")
    saved = args.work_dir / "results.json"
    model_dir = args.work_dir / "model"
    timed = args.work_dir / "model-minutes.json"
    if args.report_only and not saved.exists():
        parser.error(f"--report-only: no scores saved in {saved}")
    earlier = json.loads(saved.read_text()) if saved.exists() else {}
    if args.report_only:
        results = earlier
        minutes = json.loads(timed.read_text()) if timed.exists() else None
    else:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        development, test = split()
        unknown = set(args.leave_one_source_out or ()) - set(by_source(development))
        if unknown:  # before hours of training, not after
            parser.error(f"--leave-one-source-out: no development source named {', '.join(sorted(unknown))} "
                         f"(the sources: {', '.join(by_source(development))})")
        if args.without_development:
            loso = leave_one_source_out(args.work_dir, development, args.seed, args.leave_one_source_out)
            saved.write_text(json.dumps(earlier | {"leave_one_source_out": earlier.get("leave_one_source_out", {})
                                                   | loso}, indent=2))
            print(json.dumps(loso, indent=2))
            return
        minutes = train(development, model_dir, args.seed)
        fixtures = [h for h in find_records(FIXTURES) if not h.name.startswith(PTBXL_PREFIX)]
        save_predictions(args.work_dir / "predictions" / "test.npz", model_dir, test)
        save_predictions(args.work_dir / "predictions" / "fixtures.npz", model_dir, fixtures)
        model = load_model(model_dir)
        results = {"cv": cross_validated(model_dir, args.work_dir / "model-records"),
                   "test": {s: score_lead_sets(model, headers) for s, headers in by_source(test).items()},
                   "fixtures": score_lead_sets(model, fixtures),
                   "2021": results_2021(model_dir, args.work_dir / "model-records", args.work_dir)}
        loso = earlier.get("leave_one_source_out", {})
        if args.leave_one_source_out is not None:
            loso |= leave_one_source_out(args.work_dir, development, args.seed, args.leave_one_source_out)
        if loso:
            results["leave_one_source_out"] = loso
        saved.write_text(json.dumps(results, indent=2))
    docs = ROOT / "docs"
    write_results(docs / "results.md", model_dir, results, minutes)
    plot(docs / "results.png", results)
    print((docs / "results.md").read_text())


if __name__ == "__main__":
    main()
