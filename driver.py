#!/usr/bin/env python
"""Run a trained model on a folder of records: python driver.py MODEL_DIR TEST_DIR OUT_DIR

Behaves as the organisers' driver.py (same calls, same output files
OUT_DIR/NAME.csv) and adds what a long run needs: a record that cannot be read
still gets an output file (all 0) and one line on stderr, a progress bar, a
summary, and an exit status of 1 when any record failed.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cinc2020.cpus import describe
from cinc2020.records import RecordError, parse_header, read_signal_file
from run_12ECG_classifier import load_12ECG_model, run_12ECG_classifier


def load_challenge_data(mat_file):
    data = np.asarray(read_signal_file(mat_file), dtype=np.float64)
    with open(Path(mat_file).with_suffix(".hea"), "r", errors="replace") as f:
        header_data = f.readlines()
    parse_header(header_data)  # an unreadable header is reported here, under the file's name
    return data, header_data


def save_challenge_predictions(output_directory, record, scores, labels, classes):
    lines = ["#" + record, ",".join(classes), ",".join(str(int(i)) for i in labels),
             ",".join(str(float(i)) for i in scores)]
    with open(os.path.join(output_directory, record + ".csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: python driver.py MODEL_DIR TEST_DIR OUT_DIR")
    model_input, input_directory, output_directory = argv[1:]
    records = sorted({p.stem for p in Path(input_directory).iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".mat", ".hea")})
    os.makedirs(output_directory, exist_ok=True)

    print("Loading 12ECG model...")
    model = load_12ECG_model(model_input)
    print(f"Computing on {describe()}.")
    unreadable = []
    started = time.perf_counter()
    for record in tqdm(records, desc="classifying", unit="rec", file=sys.stderr):
        try:
            data, header_data = load_challenge_data(Path(input_directory) / (record + ".mat"))
        except Exception as error:  # one bad record must never end the run
            if isinstance(error, RecordError):
                reason = str(error)
            elif isinstance(error, OSError):
                reason = f"cannot read header ({error.strerror})"
            else:
                reason = f"unexpected {type(error).__name__}: {error}"
            unreadable.append(record)
            tqdm.write(f"error: record {record}: {reason}; its outputs are all 0", file=sys.stderr)
            zeros = np.zeros(len(model.classes))
            save_challenge_predictions(output_directory, record, zeros, zeros, model.classes)
            continue
        labels, scores, classes = run_12ECG_classifier(data, header_data, model)
        save_challenge_predictions(output_directory, record, scores, labels, classes)

    failed = len(unreadable) + len(model.failures)
    note = " (their outputs are all 0; see the errors above)" if failed else ""
    print(f"Done: {len(records)} records, {len(records) - failed} classified, {failed} failed{note}.")
    seconds = time.perf_counter() - started
    print(f"{seconds:.1f} s after loading the model, {len(records) / max(seconds, 1e-9):.1f} records/s.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
