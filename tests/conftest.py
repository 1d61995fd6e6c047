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
SCORER_CASES = SHARED / "challenge" / "scorer_cases"


@pytest.fixture(scope="session", autouse=True)
def shared_data_present():
    if not (DATA / "ptbxl").is_dir():
        pytest.exit(f"the shared records are missing: expected {DATA} (set CINC2020_SHARED)", returncode=2)


def run_script(*args, cwd=ROOT, env=None):
    import subprocess
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
