#!/usr/bin/env python
"""Train a model: python train_model.py TRAIN_DIR [TRAIN_DIR ...] MODEL_DIR [options]

Called as the organisers call it (two folders, no options) it trains the default
configuration, changed by $CINC2020_CONFIG if set. Options change it further.
Records are found in every folder below each TRAIN_DIR (the challenge's sources
extracted side by side, or its training/<source>/... tree).
"""

import argparse
import os
import sys

from cinc2020.config import CHOICES, Config, given_options
from cinc2020.recipe import MODELS
from train_12ECG_classifier import train_12ECG_classifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_directory", nargs="+", help="folders of training records (.hea + .mat), searched "
                                                           "with their subfolders")
    parser.add_argument("output_directory", help="folder to write the model into")
    parser.add_argument("--labels", choices=CHOICES["labels"], help="label scheme (default snomed)")
    parser.add_argument("--model", action="append", choices=CHOICES["model"],
                        help=f"architecture; repeat for several (default {' and '.join(MODELS)})")
    parser.add_argument("--folds", type=int, help=f"cross-validation folds, one model each, whose out-of-fold "
                                                  f"probabilities tune the thresholds; 1 trains one model on all "
                                                  f"but a stratified val_fraction, which must then be set "
                                                  f"above 0 in $CINC2020_CONFIG (default {Config.folds})")
    parser.add_argument("--stacking", action=argparse.BooleanOptionalAction,
                        help="with several architectures, fit a meta-classifier over them instead of averaging")
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction,
                        help="ship one network per architecture retrained on every record for the cross-validated "
                             f"schedule, not the fold models (default {'on' if Config.refit else 'off'})")
    parser.add_argument("--class-weights", action=argparse.BooleanOptionalAction,
                        help="weigh rare classes' positive records up in the loss")
    parser.add_argument("--epochs", type=int, help="most epochs to train each model")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run: finished folds are kept, the one under way resumes "
                             "from its last completed epoch (same data and options)")
    args = parser.parse_args(argv)

    os.makedirs(args.output_directory, exist_ok=True)  # every process of a torchrun run gets here
    print("Running training code...")
    try:
        train_12ECG_classifier(args.input_directory, args.output_directory, resume=args.resume, models=args.model,
                               stacking=args.stacking,
                               **given_options(labels=args.labels, class_weights=args.class_weights,
                                               epochs=args.epochs, seed=args.seed, folds=args.folds,
                                               refit=args.refit))
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"train_model.py: {error}")
    print("Done.")


if __name__ == "__main__":
    main()
