"""A PhysioNet/CinC Challenge 2020 entry: 12-lead ECG records in, cardiac diagnoses out."""

import os

# OpenMP reads this once, when PyTorch loads: idle threads sleep instead of spinning, so that a busy
# machine's cores go to threads with work (cinc2020/cpus.py). A value set by the user stands.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
