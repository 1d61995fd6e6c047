"""Label schemes: the official phase's SNOMED CT codes and the unofficial phase's CPSC text.

A model speaks one scheme, saved with it:

* ``snomed``: the scored classes of ``weights.csv``, each equivalent pair merged
  into its first code (so 24 classes at most);
* ``cpsc``: the 9 text classes of the unofficial phase. Records may carry those
  words directly (``#Dx: AF``) or SNOMED codes, translated by ``SNOMED_TO_CPSC``.
"""

from __future__ import annotations

NORMAL_CLASS = "426783006"  # sinus rhythm: the always-normal baseline of the Challenge metric
EQUIVALENT_CLASSES = (
    ("713427006", "59118001"),   # complete right bundle branch block ~ right bundle branch block
    ("284470004", "63593006"),   # premature atrial contraction ~ supraventricular premature beats
    ("427172004", "17338001"),   # premature ventricular contractions ~ ventricular premature beats
)
_REPRESENTATIVE = {code: group[0] for group in EQUIVALENT_CLASSES for code in group}

CPSC_CLASSES = ("AF", "I-AVB", "LBBB", "Normal", "PAC", "PVC", "RBBB", "STD", "STE")
SCHEMES = ("snomed", "cpsc")

# One explicit table from SNOMED CT codes to the unofficial phase's classes.
# LBBB includes complete (733534002) and incomplete (251120003) LBBB: CPSC 2018
# annotated both as LBBB. 426783006 (sinus rhythm) maps to Normal only when the
# record has no other code of this table (PTB-XL writes it beside other findings).
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


def representative(code: str) -> str:
    """The code that stands for ``code``'s equivalence group (itself if none)."""
    return _REPRESENTATIVE.get(code, code)


def to_scheme(dx: list[str], scheme: str) -> set[str]:
    """The classes of ``scheme`` that a record's ``#Dx`` entries name.

    Unknown entries are dropped; the caller decides whether a record with none
    left is usable.
    """
    if scheme == "snomed":
        return {representative(code) for code in dx}
    if scheme == "cpsc":
        mapped = {SNOMED_TO_CPSC[code] for code in dx if code in SNOMED_TO_CPSC}
        mapped |= {code for code in dx if code in CPSC_CLASSES}
        if not mapped - {"Normal"} and (NORMAL_CLASS in dx or "Normal" in dx):
            mapped = {"Normal"}
        return mapped
    raise ValueError(f"unknown label scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
