"""Label schemes: the official phase's SNOMED CT codes and the unofficial phase's CPSC text.

A model speaks one scheme, saved with it:

* ``snomed``: the scored classes of ``weights.csv``, each equivalent pair merged
  into its first code (so 24 classes at most);
* ``cpsc``: the 9 text classes of the unofficial phase. Records may carry those
  words directly (``#Dx: AF``) or SNOMED codes, translated by ``SNOMED_TO_CPSC``.
"""

from __future__ import annotations

import re

import numpy as np

from .config import CHOICES

NORMAL_CLASS = "426783006"  # sinus rhythm: the always-normal baseline of the Challenge metric
EQUIVALENT_CLASSES = (
    ("713427006", "59118001"),   # complete right bundle branch block ~ right bundle branch block
    ("284470004", "63593006"),   # premature atrial contraction ~ supraventricular premature beats
    ("427172004", "17338001"),   # premature ventricular contractions ~ ventricular premature beats
)
_REPRESENTATIVE = {code: group[0] for group in EQUIVALENT_CLASSES for code in group}
# The 2021 table scores one more pair as one class: complete LBBB with LBBB, which a 2020 model learns as
# 164909002. Its tuning scheme ("2021") reads 733534002 as that class.
ALSO_EQUIVALENT_IN_2021 = {"733534002": "164909002"}

CPSC_CLASSES = ("AF", "I-AVB", "LBBB", "Normal", "PAC", "PVC", "RBBB", "STD", "STE")

# One explicit table from SNOMED CT codes to the unofficial phase's classes.
# LBBB includes complete (733534002) and incomplete (251120003) LBBB: CPSC 2018
# annotated both as LBBB. PVC includes ventricular ectopics (164884008): the
# challenge relabelled CPSC 2018's own PVC records with that code.
SNOMED_TO_CPSC = {
    "164889003": "AF",
    "270492004": "I-AVB",
    "164909002": "LBBB", "733534002": "LBBB", "251120003": "LBBB",
    "284470004": "PAC", "63593006": "PAC",
    "164884008": "PVC", "427172004": "PVC", "17338001": "PVC",
    "59118001": "RBBB", "713427006": "RBBB",
    "429622005": "STD",
    "164931005": "STE",
}
# CPSC 2018's Normal is a normal ECG, not sinus rhythm: PTB-XL writes sinus rhythm beside
# axis deviations, T-wave abnormalities and infarcts. A record is Normal only when every
# code it carries is one of these.
NORMAL_ECG_CODES = frozenset({
    NORMAL_CLASS,
    "427393009",  # sinus arrhythmia: the respiratory variation of a healthy heart
})

# Ventricular ectopics (164884008) is unscored in the official phase, where CPSC-Extra and
# Georgia write PVC as 427172004 or 17338001 and PTB-XL and CPSC write 164884008. The snomed
# scheme keeps the code unscored, as the scorer does, but a record carrying it is no evidence
# against PVC: that class's loss term is left out for it (see ``undetermined_classes``).
UNDETERMINED_BY = {"164884008": frozenset({"427172004"})}

# The challenge's sources by record-name prefix, for their names. Each labels its own subset of the
# classes (CPSC never uses left axis deviation), so a record is no negative for a class its source
# does not label: ``known_labels`` learns each source's classes from the training records.
SOURCES = {"A": "CPSC", "Q": "CPSC-Extra", "I": "St Petersburg INCART", "S": "PTB", "HR": "PTB-XL",
           "E": "Georgia", "JS": "Chapman-Shaoxing"}
UNNAMED_SOURCE = "unnamed"  # records whose names carry no letter prefix share this source
# A source labels a class when its records carry it at least this share as often as the other sources'
# records do (pooled). CPSC-Extra writes sinus rhythm on 4 of its 3,453 records (1/450 of the others'
# rate) and Q-wave abnormality on 1 (1/90): slips, not labels it gives. PTB-XL's sinus bradycardia
# (2.7 % of the development records) against Chapman-Shaoxing's (45 %, a rhythm database) is 1/17: meant.
LABELLED_SHARE = 0.05
# A class that a source writes only alone on a record, where at the other sources' rate of writing it
# beside another class at least this many of its records would carry another, is that source's word for
# "nothing else": CPSC writes sinus rhythm only on its 918 Normal records (at PTB-XL's and Georgia's rate,
# about 450 would carry another class). On its records with other classes it is unknown.
EXPECTED_BESIDE_OTHERS = 5


def representative(code: str) -> str:
    """The code that stands for ``code``'s equivalence group (itself if none)."""
    return _REPRESENTATIVE.get(code, code)


def to_scheme(dx: list[str], scheme: str) -> set[str]:
    """The classes of ``scheme`` that a record's ``#Dx`` entries name.

    Unknown entries are dropped; the caller decides whether a record with none
    left is usable. "2021" (a scoring scheme: the 2021 table) names a model's classes as "snomed" does.
    """
    if scheme == "snomed":
        return {representative(code) for code in dx}
    if scheme == "2021":
        return {representative(ALSO_EQUIVALENT_IN_2021.get(code, code)) for code in dx}
    if scheme == "cpsc":
        mapped = {SNOMED_TO_CPSC[code] for code in dx if code in SNOMED_TO_CPSC}
        mapped |= {code for code in dx if code in CPSC_CLASSES}
        if not mapped and dx and all(code in NORMAL_ECG_CODES for code in dx):
            mapped = {"Normal"}
        return mapped
    raise ValueError(f"unknown label scheme {scheme!r}: use one of {', '.join(CHOICES['labels'])}")


def label_matrix(dx_lists: list[list[str]], classes: list[str], scheme: str) -> np.ndarray:
    """Records x ``classes``, True where a record's ``#Dx`` entries name the class in ``scheme``."""
    return np.array([[c in to_scheme(dx, scheme) for c in classes] for dx in dx_lists], dtype=bool).reshape(
        len(dx_lists), len(classes))


def undetermined_classes(dx: list[str], scheme: str) -> set[str]:
    """Classes of ``scheme`` that a record's labels neither assert nor deny."""
    if scheme != "snomed":
        return set()
    return {c for code in dx for c in UNDETERMINED_BY.get(code, ())} - to_scheme(dx, scheme)


def source_of(record_name: str) -> str:
    """The source of a record, from its name's letter prefix: the challenge's name for it (``HR00001``:
    PTB-XL), else the prefix itself; ``UNNAMED_SOURCE`` for a name without one."""
    match = re.fullmatch(r"([A-Za-z]+)_?\d+", record_name)
    if not match:
        return UNNAMED_SOURCE
    return SOURCES.get(match.group(1), match.group(1))


def known_labels(sources: list[str], labels: np.ndarray, carried: np.ndarray | None = None) -> np.ndarray:
    """Records x classes, True where a record's label of a class is known: a positive, or a negative of a
    class its source labels.

    Computed from the records, never from a table of sources: a source labels a class when it carries
    it often enough (``LABELLED_SHARE`` of the other sources' rate; with no other source, once is
    enough); a class it writes only alone on a record (``EXPECTED_BESIDE_OTHERS``) is known on its
    records without another code and unknown on those with one. ``carried``: how many codes of the scheme
    each record carries, the classes' and any other (default: its classes); CPSC's PVC, STD and STE records
    carry only unscored codes in the official scheme, and sinus rhythm is unsaid on them too.
    """
    labels = np.asarray(labels, dtype=bool)
    sources = np.asarray(sources)
    carried = labels.sum(axis=1) if carried is None else np.asarray(carried)
    known = np.ones(labels.shape, dtype=bool)
    several = carried > 1  # each of the record's classes stands beside another code
    for source in np.unique(sources):
        mine = sources == source
        rate = labels[mine].mean(axis=0)
        elsewhere = labels[~mine].mean(axis=0) if (~mine).any() else np.zeros(labels.shape[1])
        labelled = (rate > 0) & (rate >= LABELLED_SHARE * elsewhere)
        known[np.ix_(mine, ~labelled)] = False
        for c in np.flatnonzero(labelled):
            theirs = ~mine & labels[:, c]
            only_alone = not (mine & labels[:, c] & several).any()
            if only_alone and theirs.any() and \
                    (mine & labels[:, c]).sum() * several[theirs].mean() >= EXPECTED_BESIDE_OTHERS:
                known[mine & (carried > 0) & ~labels[:, c], c] = False
    return known | labels


def answering_classes(requested: str, model_classes: list[str]) -> list[str]:
    """The classes among ``model_classes`` that answer for class ``requested`` of another list.

    Itself; else its equivalent code; else through the SNOMED-to-CPSC table (a code
    for a CPSC class, or a CPSC class for the codes the table maps to it). None: [].
    """
    if requested in model_classes:
        return [requested]
    if representative(requested) in model_classes:
        return [representative(requested)]
    if SNOMED_TO_CPSC.get(requested) in model_classes:
        return [SNOMED_TO_CPSC[requested]]
    if requested in CPSC_CLASSES:
        return [c for c in model_classes if SNOMED_TO_CPSC.get(c) == requested]
    return []


def loss_mask(sources: list[str], dx_lists: list[list[str]], labels: np.ndarray, classes: list[str],
              scheme: str) -> np.ndarray:
    """Which labels are known (1) and which the loss leaves out (0): those a record's source (``sources``,
    one per record) does not give (``known_labels``, each record's codes counted in ``scheme``) and those a
    record's own codes leave undetermined (``undetermined_classes``)."""
    carried = [len(to_scheme(dx, scheme)) for dx in dx_lists]
    mask = known_labels(sources, labels, carried).astype(np.float32)
    column = {c: j for j, c in enumerate(classes)}
    for i, dx in enumerate(dx_lists):
        for c in undetermined_classes(dx, scheme) & column.keys():
            mask[i, column[c]] = 0
    return mask


def refuse_unlearnable_classes(classes: list[str], labels: np.ndarray, mask: np.ndarray, sources: list[str],
                               told_by: str) -> None:
    """Stop training where a class has no known positive or no known negative: its loss would teach the
    network nothing of it (with class weights, its positives would weigh 0), and the model would answer it
    anyway. ``told_by`` says where the sources came from, for the way out."""
    sources = np.asarray(sources)
    known, positive = np.asarray(mask) > 0, np.asarray(labels) > 0
    for c, name in enumerate(classes):
        for missing, present in (("negative", known[:, c] & ~positive[:, c]), ("positive", positive[:, c])):
            if present.any():
                continue
            giving = sorted(set(sources[known[:, c]]))
            raise ValueError(
                f"class {name} has no record that counts as a {missing}: the sources that give it "
                f"({', '.join(giving) or 'none'}) have no {missing} of it, and the others "
                f"({', '.join(sorted(set(sources) - set(giving))) or 'none'}) do not label it. Sources come from "
                f"{told_by} (Config.sources): where names spell diagnoses (AF00001, N00001) set "
                '$CINC2020_CONFIG=\'{"sources": "one"}\' (one source) or "subfolder" (a folder per source); '
                f"else train with records that carry {name} and records that do not")
