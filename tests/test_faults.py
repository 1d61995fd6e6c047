"""Every fault of the README's table, through driver.py and train_model.py as a team runs them."""

import json
import shutil

import numpy as np
import pytest
from scipy.io import savemat

from conftest import FIXTURES, ROOT, SAMPLES, run_script

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
SOURCE = SAMPLES / "A0002"  # a real CPSC record the repository carries
CLASSIFIED = ["good", "unknown_leads", "one_lead", "fifteen_leads", "few_samples", "nan_inf", "flat_line",
              "thirty_minutes"]
FAILED = ["no_standard_lead", "zero_samples", "fs_zero", "fs_missing", "lead_count_differs", "no_val",
          "truncated_mat", "not_matlab", "missing_mat", "missing_hea", "garbage_hea"]
CASES = {**{n: "classified" for n in CLASSIFIED}, **{n: "failed" for n in FAILED}}


def real_signal():
    from scipy.io import loadmat
    return loadmat(SOURCE.with_suffix(".mat"))["val"]


def write(folder, name, data, leads=LEADS, fs="500", dx="426783006"):
    savemat(folder / f"{name}.mat", {"val": np.asarray(data)}, format="4")
    lines = [f"{name} {len(leads)} {fs} {np.shape(data)[1] if np.ndim(data) == 2 else 0}"]
    lines += [f"{name}.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in leads]
    (folder / f"{name}.hea").write_text("\n".join(lines + ["#Age: NaN", "#Sex: Unknown", f"#Dx: {dx}"]) + "\n")


def build_cases(folder):
    """One record per entry of CASES, named after its fault."""
    x = real_signal()
    write(folder, "good", x)
    write(folder, "unknown_leads", x[:3], leads=["Pleth", "Resp", "II"])
    write(folder, "one_lead", x[1:2], leads=["II"])
    write(folder, "fifteen_leads", np.vstack([x, x[:3]]), leads=LEADS + ["vx", "vy", "vz"])
    write(folder, "few_samples", x[:, :7])
    nan_inf = x.astype(float)
    nan_inf[0, 100:200], nan_inf[5, 300] = np.nan, np.inf
    write(folder, "nan_inf", nan_inf)
    write(folder, "flat_line", np.full_like(x, 25))
    long = np.tile(x, (1, 360))  # 30 minutes at 500 Hz
    write(folder, "thirty_minutes", long)
    write(folder, "no_standard_lead", x[:2], leads=["Pleth", "Resp"])
    write(folder, "zero_samples", np.zeros((12, 0), dtype=np.int16))
    write(folder, "fs_zero", x, fs="0")
    write(folder, "lead_count_differs", x[:11])
    write(folder, "no_val", x)
    savemat(folder / "no_val.mat", {"signal": x}, format="4")
    write(folder, "truncated_mat", x)
    raw = (folder / "truncated_mat.mat").read_bytes()
    (folder / "truncated_mat.mat").write_bytes(raw[: len(raw) // 3])
    write(folder, "not_matlab", x)
    (folder / "not_matlab.mat").write_text("hello, I am a text file\n")
    write(folder, "missing_mat", x)
    (folder / "missing_mat.mat").unlink()
    write(folder, "missing_hea", x)
    (folder / "missing_hea.hea").unlink()
    write(folder, "garbage_hea", x)
    (folder / "garbage_hea.hea").write_bytes(b"\xff\xfe\x00 nothing useful here")
    (folder / "fs_missing.hea").write_text("fs_missing 12\n" + "\n".join(
        f"fs_missing.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS) + "\n")
    savemat(folder / "fs_missing.mat", {"val": x}, format="4")


@pytest.fixture(scope="module")
def driver_run(tmp_path_factory):
    records = tmp_path_factory.mktemp("faults")
    build_cases(records)
    expected = CASES
    outputs = tmp_path_factory.mktemp("outputs")
    result = run_script(ROOT / "driver.py", ROOT / "model", records, outputs)
    return expected, outputs, result


def test_driver_goes_on_and_counts(driver_run):
    expected, _, result = driver_run
    failed = sum(v == "failed" for v in expected.values())
    assert result.returncode == 1
    assert f"Done: {len(expected)} records, {len(expected) - failed} classified, {failed} failed" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_each_fault(driver_run, case):
    expected, outputs, result = driver_run
    classes = json.loads((ROOT / "model" / "model.json").read_text())["classes"]
    lines = (outputs / f"{case}.csv").read_text().splitlines()
    assert lines[0] == f"#{case}" and lines[1].split(",") == classes
    labels = [int(v) for v in lines[2].split(",")]
    scores = np.array([float(v) for v in lines[3].split(",")])
    errors = [line for line in result.stderr.splitlines() if f"record {case}:" in line]
    if expected[case] == "classified":
        assert sum(labels) >= 1 and np.isfinite(scores).all() and scores.max() > 0
        assert errors == []
    else:
        assert sum(labels) == 0 and not scores.any()
        assert len(errors) == 1, errors


@pytest.mark.shared_data
def test_training_skips_bad_records_and_counts_them(tmp_path):
    for name in ("A0002", "A0003", "E00001", "HR00001"):
        for suffix in (".hea", ".mat"):
            shutil.copy(FIXTURES / "cinc_snomed" / (name + suffix), tmp_path / (name + suffix))
    (tmp_path / "BROKEN.hea").write_text((tmp_path / "A0002.hea").read_text().replace("A0002", "BROKEN"))
    (tmp_path / "BROKEN.mat").write_bytes(b"not a matlab file")
    (tmp_path / "NOLABEL.hea").write_text("\n".join(
        line for line in (tmp_path / "A0003.hea").read_text().splitlines() if not line.startswith("#Dx")))
    shutil.copy(tmp_path / "A0003.mat", tmp_path / "NOLABEL.mat")
    result = run_script(ROOT / "train_model.py", tmp_path, tmp_path / "model", "--folds", "1", "--no-refit",
                        "--model", "crnn",
                        env={"CINC2020_CONFIG": json.dumps({"epochs": 1, "min_positives": 1, "val_fraction": 0.2,
                                                                  "sources": "one"})})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: skipping BROKEN: " in result.stderr and "warning: skipping NOLABEL: no #Dx labels" in result.stderr
    assert "4 records (2 skipped)" in result.stderr
    document = json.loads((tmp_path / "model" / "model.json").read_text())
    assert document["members"][0]["training_data"]["skipped"] == 2
    assert document["members"][0]["training_data"]["labels_not_learned"] == {}
