"""The README stays short and quotes the shipped model as its model.json describes it."""

import json
import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_reads_in_five_minutes():
    assert len(README.splitlines()) <= 250


def test_the_readme_quotes_the_shipped_models_out_of_fold_figures():
    """Each row `| model/, out of fold, SOURCE (N records) | ... | Challenge | AUROC |` is model.json's."""
    cross_validation = json.loads((ROOT / "model" / "model.json").read_text())["cross_validation"]
    tuned = cross_validation["tuned_thresholds"]
    figures = {"all": {**tuned, "records": cross_validation["records"]}, **tuned.get("per_source", {})}
    rows = re.findall(r"^\| `model/`, out of fold, (.+?) \(([\d,]+) records\) \|[^|]*\| ([\d.]+) \| ([\d.]+) \|$",
                      README, flags=re.M)
    assert {source for source, *_ in rows} == set(figures)
    for source, records, challenge, auroc in rows:
        assert int(records.replace(",", "")) == figures[source]["records"]
        assert (challenge, auroc) == (f"{figures[source]['challenge_metric']:.3f}", f"{figures[source]['auroc']:.3f}")
