"""A PhysioNet/CinC Challenge 2020 entry: 12-lead ECG records in, cardiac diagnoses out."""
