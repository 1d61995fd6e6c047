#!/usr/bin/env python
"""Write the 2021 scorer's reference cases (tests/data/scorer_cases_2021): label and output folders with the
2021 scorer's quirks, and expected.json with what the organisers' own evaluate_model.py computes for each,
run unchanged from ../shared/challenge/2021 in a temporary folder holding its weights.csv.

    python scripts/scorer_cases_2021.py [--shared ../shared]
"""

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "scorer_cases_2021"


def header(name: str, dx_lines: list[str]) -> str:
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    lines = [f"{name} 12 500 5000"] + [f"{name}.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in leads]
    return "\n".join(lines + ["#Age: 60", "#Sex: Male", *dx_lines, "#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]) + "\n"


def output(name: str, classes: list[str], labels: list[str], probabilities: list[str]) -> str:
    return "\n".join([f"#{name}", ",".join(classes), ",".join(labels), ",".join(probabilities)]) + "\n"


SR, AF, LBBB, CLBBB, RBBB, CRBBB, PVC, VPB, IAVB, BBB = ("426783006", "164889003", "164909002", "733534002",
                                                      "59118001", "713427006", "427172004", "17338001",
                                                      "270492004", "6374002")
QUIRKS = {  # name: (#Dx lines, output file text)
    "R01": (["#Dx: 164889003,426783006"], output("R01", [AF, SR, IAVB], ["1", "0", "0"], ["0.9", "0.4", "0.1"])),
    # equivalent codes written apart: binary any, scalar their mean
    "R02": (["#Dx: 733534002"], output("R02", [LBBB, CLBBB, SR], ["0", "1", "0"], ["0.2", "0.8", "0.3"])),
    "R03": (["#Dx: 59118001, 270492004"], output("R03", [f"{CRBBB}|{RBBB}", IAVB], ["1.0", "True"], ["0.7", "0.6"])),
    # positives spelled every way the scorer takes, and ways it does not
    "R04": (["#Dx: 427172004"], output("R04", [PVC, VPB, AF, SR, IAVB, BBB], ["T", "t", "true", "yes", "2", "1e0"],
                                       ["0.5", "nan", "inf", "", "abc", "0.25"])),
    # '# Dx:' (a space after #) and '#Dx:' without the space after the colon give no labels
    "R05": (["# Dx: 164889003"], output("R05", [AF, SR], ["1", "0"], ["0.8", "0.2"])),
    "R06": (["#Dx:164889003"], output("R06", [AF, SR], ["0", "1"], ["0.1", "0.9"])),
    # two #Dx lines both count; codes the table does not score are ignored
    "R07": (["#Dx: 426783006", "#Dx: 6374002,251146004,999999999"], output("R07", [SR, BBB, "251146004"],
                                                                         ["1", "1", "0"], ["0.9", "0.6", "0.4"])),
    # reordered classes, unknown classes, a class missing
    "R08": (["#Dx: 426783006"], output("R08", ["999", SR, AF], ["1", "1", "0"], ["0.99", "0.95", "0.05"])),
    # a run that failed: the organisers' test_model.py writes empty lines
    "R09": (["#Dx: 164889003"], "#R09\n\n\n\n"),
    "R10": (["#Dx: 270492004,164889003"], output("R10", [IAVB, AF, SR], ["1", "0", "0"], ["0.55", "0.45", "-1"])),
    # rows longer than the classes (a trailing comma), and one ending early where no scored class is left
    "R11": (["#Dx: 164889003"], output("R11", [AF, SR], ["1", "0", ""], ["0.7", "0.2", ""])),
    "R12": (["#Dx: 426783006"], output("R12", [SR, AF, "999"], ["1", "0"], ["0.6", "0.3"])),
}
ONLY_SINUS = {f"S{i}": (["#Dx: 426783006"], output(f"S{i}", [SR, AF], ["1", str(i % 2)], ["0.9", "0.3"]))
              for i in range(1, 4)}  # correct and inactive score alike: the metric is 0.0, not NaN


def official(labels: Path, outputs: Path, shared: Path) -> dict:
    """evaluate_model() of the organisers' file, run unchanged in a temporary folder with their table."""
    import importlib
    import os

    with tempfile.TemporaryDirectory() as scratch:
        for name in ("evaluate_model.py", "helper_code.py", "weights.csv"):
            shutil.copy(shared / "challenge" / "2021" / name, scratch)
        here = os.getcwd()
        sys.path.insert(0, scratch)
        os.chdir(scratch)
        try:
            for module in ("evaluate_model", "helper_code"):
                sys.modules.pop(module, None)
            evaluate = importlib.import_module("evaluate_model")
            (classes, auroc, auprc, auroc_classes, auprc_classes, accuracy, f_measure, f_measure_classes,
             challenge) = evaluate.evaluate_model(str(labels.resolve()), str(outputs.resolve()))
        finally:
            os.chdir(here)
            sys.path.remove(scratch)
    number = lambda v: None if math.isnan(v) else float(v)  # noqa: E731 - JSON has no NaN
    return {"classes": ["|".join(sorted(c)) for c in classes], "auroc": number(auroc), "auprc": number(auprc),
            "accuracy": number(accuracy), "f_measure": number(f_measure), "challenge_metric": number(challenge),
            "auroc_classes": [number(v) for v in auroc_classes], "auprc_classes": [number(v) for v in auprc_classes],
            "f_measure_classes": [number(v) for v in f_measure_classes]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    for case, records in (("quirks", QUIRKS), ("only_sinus_rhythm", ONLY_SINUS)):
        folder = CASES / case
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "labels").mkdir(parents=True)
        (folder / "outputs").mkdir()
        for name, (dx_lines, text) in records.items():
            (folder / "labels" / f"{name}.hea").write_text(header(name, dx_lines))
            (folder / "outputs" / f"{name}.csv").write_text(text)
        expected = official(folder / "labels", folder / "outputs", args.shared)
        (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        print(f"{case}: {len(records)} records, Challenge metric {expected['challenge_metric']}")


if __name__ == "__main__":
    main()
