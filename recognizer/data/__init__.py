"""Data side of the recognizer: sample records, loaders, preprocessing, representations."""
