import pytest

from mesynth.labels.emotions import (
    SCHEMES,
    UnknownLabelError,
    label_indices,
    normalize_emotion,
    scheme_labels,
    to_scheme,
    validate_label,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Happiness", "happiness"),
        ("happy", "happiness"),
        (" Others ", "others"),
        ("Other", "others"),
        ("sad", "sadness"),
        ("Sadness", "sadness"),
        ("Anger", "anger"),
        ("repression", "repression"),
        ("negative", "negative"),
    ],
)
def test_raw_spellings_fold(raw: str, expected: str) -> None:
    assert normalize_emotion(raw) == expected


def test_megc3_mapping_and_casme2_exception() -> None:
    for raw in ("Anger", "Contempt", "disgust", "Fear", "sad", "repression"):
        assert to_scheme(raw, "megc3") == "negative"
    assert to_scheme("happy", "megc3") == "positive"
    assert to_scheme("Surprise", "megc3") == "surprise"
    assert to_scheme("Other", "megc3") is None
    # CASME II: only disgust and repression are negative
    assert to_scheme("disgust", "megc3", dataset="casme2") == "negative"
    assert to_scheme("repression", "megc3", dataset="casme2") == "negative"
    assert to_scheme("fear", "megc3", dataset="casme2") is None
    assert to_scheme("sadness", "megc3", dataset="casme2") is None
    assert to_scheme("fear", "megc3", dataset="samm") == "negative"


def test_casme2_5_and_dfme7() -> None:
    assert to_scheme("others", "casme2_5") == "others"
    assert to_scheme("fear", "casme2_5") is None
    assert to_scheme("Contempt", "dfme7") == "contempt"
    assert to_scheme("others", "dfme7") is None
    # DFME's seven basic emotions, spelled out (not derived from the module's own tables)
    dfme = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert set(SCHEMES["dfme7"]) == set(dfme)


def test_unknown_inputs_list_the_known() -> None:
    with pytest.raises(UnknownLabelError, match="known emotions"):
        normalize_emotion("bored")
    with pytest.raises(UnknownLabelError, match="known schemes: dfme7"):
        scheme_labels("nope")
    with pytest.raises(UnknownLabelError, match="known labels: negative, positive, surprise"):
        validate_label("happiness", "megc3")
    assert label_indices(["surprise", "negative"], "megc3") == [2, 0]
