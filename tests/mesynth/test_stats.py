import pandas as pd
import pytest

from mesynth.evaluation.stats import au_frequencies


def test_au_frequencies_are_per_class_percentages_of_clips() -> None:
    table = pd.DataFrame(
        {
            "label": ["happiness", "happiness", "happiness", "happiness", "surprise"],
            "aus": ["6+12", "12", "L12+R12", "6+12+25", "1+2+5"],
        }
    )
    freq = au_frequencies(table)
    assert list(freq.index) == ["happiness", "surprise"]
    assert list(freq.columns) == ["AU1", "AU2", "AU5", "AU6", "AU12", "AU25"]  # by code
    # a clip with AU12 on both sides counts once
    assert freq.loc["happiness"].tolist() == pytest.approx([0, 0, 0, 50, 100, 25])
    assert freq.loc["surprise"].tolist() == pytest.approx([100, 100, 100, 0, 0, 0])


def test_au_frequencies_of_clips_without_aus_have_no_columns() -> None:
    freq = au_frequencies(pd.DataFrame({"label": ["fear", "fear"], "aus": ["", ""]}))
    assert freq.shape == (1, 0)


def test_au_frequencies_keep_laterality() -> None:
    table = pd.DataFrame({"label": ["disgust"] * 4, "aus": ["L10", "R10", "10", "L10+R10+4"]})
    freq = au_frequencies(table)
    assert list(freq.columns) == ["AU4", "AU10", "L10", "R10"]
    assert freq.loc["disgust"].tolist() == pytest.approx([25, 50, 25, 25])
