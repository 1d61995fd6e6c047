import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Preprocessed records go to a cache of this test session's own (subprocesses inherit it).
os.environ["CINC2020_CACHE"] = tempfile.mkdtemp(prefix="cinc2020-test-cache-")
SHARED = Path(os.environ.get("CINC2020_SHARED", ROOT.parent / "shared")).resolve()
DATA = SHARED / "data"
FIXTURES = DATA / "fixtures"
SAMPLES = ROOT / "samples"
# The official scorers' reference cases that the repository carries (the large official_quirks is in SHARED).
SCORER_CASES = ROOT / "tests" / "data" / "scorer_cases"
SHARED_SCORER_CASES = SHARED / "challenge" / "scorer_cases"
SHARED_PRESENT = (DATA / "ptbxl").is_dir() and FIXTURES.is_dir() and SHARED_SCORER_CASES.is_dir()
NOT_FOUND = f"the shared records and scorer cases are not in {SHARED} (set CINC2020_SHARED)"
MISSING = f"needs the shared data: {NOT_FOUND}"


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data: needs the shared records of ../shared (dev set, fixtures)")
    if not SHARED_PRESENT and os.environ.get("CI") == "true":
        raise pytest.UsageError(f"{NOT_FOUND}; under CI=true the tests that need them fail, never skip")


def pytest_collection_modifyitems(config, items):
    if SHARED_PRESENT:
        return
    for item in items:
        if item.get_closest_marker("shared_data"):
            item.add_marker(pytest.mark.skip(reason=MISSING))


def run_script(*args, cwd=ROOT, env=None):
    import subprocess
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def copy_records(headers, folder, rename=lambda name: name):
    """Links to these records in ``folder`` under new names (the header's record line renamed too)."""
    folder.mkdir(parents=True, exist_ok=True)
    for header in headers:
        name = rename(header.stem)
        lines = header.read_text().splitlines(keepends=True)
        (folder / f"{name}.hea").write_text(lines[0].replace(header.stem, name, 1)
                                            + "".join(line.replace(f"{header.stem}.mat", f"{name}.mat") for line in lines[1:]))
        (folder / f"{name}.mat").symlink_to(header.with_suffix(".mat"))
