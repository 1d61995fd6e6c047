"""A labelled training set: the records of one folder or several, cleaned (through ``cache``), with their
classes in the model's label scheme, the mask of labels their sources give, and their demographic inputs."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import SignalStore, cached_records
from .config import Config
from .labels import CPSC_CLASSES, SNOMED_TO_CPSC, label_matrix, loss_mask, representative, source_of, to_scheme
from .records import as_folders, find_records
from .scoring import load_weights


def model_classes(dx_lists: list[list[str]], config: Config) -> list[str]:
    """The classes a model learns: the scheme's classes with enough labelled records.

    The cpsc scheme always answers all 9 text classes, as the unofficial phase's
    output files must list them.
    """
    if config.labels == "cpsc":
        return list(CPSC_CLASSES)
    scored, _ = load_weights()
    counts = {c: 0 for c in scored}
    for dx in dx_lists:
        for c in to_scheme(dx, "snomed") & counts.keys():
            counts[c] += 1
    return [c for c in scored if counts[c] >= config.min_positives]


def auxiliary_codes(dx_lists: list[list[str]], classes: list[str], config: Config) -> list[str]:
    """The codes a network learns beside its ``classes`` and never answers (``Config.auxiliary_labels``):
    every code the records carry, with ``min_positives`` records or more, that is no class itself (or its
    equivalent) and, in the cpsc scheme, that the translation table maps to none. Sinus rhythm stays one
    there: beside other codes it is no normal ECG."""
    if not config.auxiliary_labels:
        return []
    table = SNOMED_TO_CPSC if config.labels == "cpsc" else {}
    counts = Counter(code for dx in dx_lists for code in {representative(c) for c in dx}
                     if table.get(code, code) not in classes)
    return sorted(code for code, n in counts.items() if n >= config.min_positives)



ONE_SOURCE = "every record"  # the source of all records with Config.sources "one"
SOURCES_TOLD_BY = {"name_prefix": "the letters the record names start with", "subfolder":
                   "the top-level subfolders of the training folders", "one": "nowhere: one source"}


def sources_of(names: list[str], folders, how: str) -> list[str]:
    """Each record's source, as ``Config.sources`` (``how``) says: its name's prefix (``labels.source_of``),
    the top-level subfolder of the training folder that holds it (a record directly in a training folder: that
    folder's name), or ``ONE_SOURCE``."""
    if how == "name_prefix":
        return [source_of(name) for name in names]
    if how == "one":
        return [ONE_SOURCE] * len(names)
    top: dict[str, str] = {}
    for folder in as_folders(folders):
        for header in find_records(folder):
            parts = header.relative_to(folder).parts
            top.setdefault(header.stem, parts[0] if len(parts) > 1 else folder.resolve().name)
    return [top[name] for name in names]


@dataclass
class TrainingSet:
    names: list[str]
    sources: list[str]            # each record's source (``sources_of``): which labels it gives
    signals: SignalStore          # clean signals (``clean``): augment, then ``normalise``
    labels: np.ndarray            # records x classes, float32 0/1
    classes: list[str]
    dx: list[list[str]]           # each record's #Dx entries as written
    mask: np.ndarray              # records x classes, float32: 1 where the label is known, 0 where its loss is left out
    demographics: np.ndarray      # records x N_DEMOGRAPHICS, float32 (``demographic_inputs``)
    auxiliary: list[str]          # codes learned beside the classes, never answered (``auxiliary_codes``)
    auxiliary_labels: np.ndarray  # records x auxiliary, float32 0/1
    auxiliary_mask: np.ndarray    # records x auxiliary, as ``mask``
    skipped: dict[str, str] = field(default_factory=dict)   # record -> reason
    unknown_labels: dict[str, int] = field(default_factory=dict)  # label -> records

    @property
    def lengths(self) -> np.ndarray:
        return self.signals.lengths

    def loss_targets(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the training loss reads for ``rows``: the classes' labels then the auxiliary codes', and its mask."""
        return (np.concatenate([self.labels[rows], self.auxiliary_labels[rows]], axis=1),
                np.concatenate([self.mask[rows], self.auxiliary_mask[rows]], axis=1))


def load_training_set(directory: str | Path, config: Config, classes: list[str] | None = None) -> TrainingSet:
    """The labelled records of ``directory``, preprocessed (through the cache).

    A record that cannot be read, that has no label, or (``records_without_class =
    "skip"``) none of the scheme's classes, is skipped with one warning; a folder
    with no usable record is an error.
    """
    store, names, dx_lists, demographics, skipped = cached_records(directory, config)
    skipped = dict(skipped)
    # A record without a class adds nothing to the class counts, so the classes come first.
    classes = classes or model_classes([dx for dx in dx_lists if dx], config)
    keep = []
    for i, (name, dx) in enumerate(zip(names, dx_lists)):
        if not dx:
            reason = "no #Dx labels"
        elif config.records_without_class == "skip" and not to_scheme(dx, config.labels) & set(classes):
            reason = f"none of its labels ({', '.join(dx)}) names a class of the model"
        else:
            keep.append(i)
            continue
        skipped[name] = reason
        print(f"warning: skipping {name}: {reason}", file=sys.stderr)
    if not keep:
        raise ValueError(f"no usable labelled record in {directory} ({len(skipped)} skipped)")
    names = [names[i] for i in keep]
    dx_lists = [dx_lists[i] for i in keep]
    labels = label_matrix(dx_lists, classes, config.labels).astype(np.float32)
    auxiliary = auxiliary_codes(dx_lists, classes, config)
    learned = set(classes) | set(auxiliary)
    unknown = dict(Counter(c for dx in dx_lists for c in to_scheme(dx, config.labels) if c not in learned))
    sources = sources_of(names, directory, config.sources)
    mask = loss_mask(sources, dx_lists, labels, classes, config.labels)
    auxiliary_labels = label_matrix(dx_lists, auxiliary, "snomed").astype(np.float32)  # the records' own codes
    return TrainingSet(names, sources, store.subset(np.array(keep)), labels, classes, dx_lists, mask,
                       demographics[keep], auxiliary, auxiliary_labels,
                       loss_mask(sources, dx_lists, auxiliary_labels, auxiliary, "snomed"), skipped, unknown)



