"""recognizer: micro-expression recognition on real, synthetic or mixed data."""

__version__ = "0.1.0.dev0"
