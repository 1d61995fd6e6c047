"""The image built from ./Dockerfile with podman gives the host's outputs and scores, with no network.

Needs podman (scripts/container.sh setup installs and configures it, as root). Where it cannot be used the
test is skipped with the reason, except under CI, where it must run.
"""

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, run_script

IMAGE = "localhost/cinc2020-test"
FOLDERS = ("cinc_snomed", "cpsc_text")


def podman_problem() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (bash scripts/container.sh setup installs it, as root)"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"podman does not work here: {info.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="module")
def image():
    problem = podman_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must build the image, but {problem}")
        pytest.skip(problem)
    started = time.time()
    build = subprocess.run(["bash", str(ROOT / "scripts" / "container.sh"), "build", IMAGE],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    size = subprocess.run(["podman", "image", "inspect", IMAGE, "--format", "{{.Size}}"],
                          capture_output=True, text=True).stdout.strip()
    print(f"\nimage {IMAGE}: built in {time.time() - started:.0f} s, {int(size) / 2**30:.2f} GiB")
    yield IMAGE
    subprocess.run(["podman", "rmi", "--force", IMAGE], capture_output=True)


def in_image(image, data, out, *command):
    os.chmod(out, 0o777)  # the image runs as an unprivileged user
    return subprocess.run(["podman", "run", "--rm", "--network", "none", "-v", f"{data}:/data:ro",
                           "-v", f"{out}:/out", image, *command], capture_output=True, text=True)


def test_image_layout(image):
    listing = subprocess.run(["podman", "run", "--rm", "--network", "none", image, "sh", "-c",
                              "id -u; pwd; ls -A; ls model"], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    uid, cwd, *names = listing.stdout.split()
    assert uid != "0" and cwd == "/physionet"
    assert {"driver.py", "train_model.py", "run_12ECG_classifier.py", "evaluate_12ECG_score.py", "weights.csv",
            "model.json", "requirements.txt"} <= set(names)
    assert not {"tests", "samples", ".git", ".venv", "bench", "__pycache__"} & set(names)


@pytest.mark.shared_data
@pytest.mark.parametrize("folder", FOLDERS)
def test_image_outputs_and_scores_equal_the_host(image, folder, tmp_path):
    data = FIXTURES / folder
    host_out, image_out = tmp_path / "host", tmp_path / "image"
    image_out.mkdir()
    host = run_script(ROOT / "driver.py", ROOT / "model", data, host_out)
    assert host.returncode == 0, host.stderr[-2000:]
    ran = in_image(image, data, image_out, "python", "driver.py", "model", "/data", "/out")
    assert ran.returncode == 0, ran.stderr[-2000:]
    names = sorted(p.name for p in host_out.glob("*.csv"))
    assert names == sorted(p.name for p in image_out.glob("*.csv")) and len(names) == len(list(data.glob("*.hea")))
    for name in names:
        ours, theirs = (host_out / name).read_text().splitlines(), (image_out / name).read_text().splitlines()
        assert ours[:3] == theirs[:3], name
        np.testing.assert_allclose([float(v) for v in theirs[3].split(",")],
                                   [float(v) for v in ours[3].split(",")], atol=1e-6, err_msg=name)
    if folder == "cinc_snomed":  # the shipped model speaks SNOMED CT: score it on SNOMED-labelled records
        host_scores = run_script(ROOT / "evaluate_12ECG_score.py", data, host_out)
        image_scores = in_image(image, data, image_out, "python", "evaluate_12ECG_score.py", "/data", "/out")
        assert host_scores.returncode == 0 and image_scores.returncode == 0, image_scores.stderr
        assert image_scores.stdout == host_scores.stdout and "Challenge metric" in host_scores.stdout
