import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesynth.labels.au import ActionUnit, AUCombination, letter_to_relative, parse_aus


def au(code: int, **kw) -> ActionUnit:
    return ActionUnit(code, **kw)


@pytest.mark.parametrize(
    ("text", "aus", "canonical"),
    [
        ("4+7", (au(4), au(7)), "4+7"),
        ("L10", (au(10, side="L"),), "L10"),
        ("R12", (au(12, side="R"),), "R12"),
        ("AU4", (au(4),), "4"),
        ("15A", (au(15, intensity="A"),), "15A"),
        ("10A/B", (au(10, intensity="A/B"),), "10A/B"),
        ("T23", (au(23, region="T"),), "T23"),
        ("B28", (au(28, region="B"),), "B28"),
        ("A/L12", (au(12, side="L", asymmetric=True),), "A/L12"),
        ("ref(7B)+43", (au(7, intensity="B", reference_only=True), au(43)), "ref(7B)+43"),
        ("R14A", (au(14, side="R", intensity="A"),), "R14A"),
        (4, (au(4),), "4"),
        (4.0, (au(4),), "4"),
        (np.int64(17), (au(17),), "17"),
        ("4，7", (au(4), au(7)), "4+7"),
        ("  7 +  4 ", (au(4), au(7)), "4+7"),
        ("AU 4, AU 7", (au(4), au(7)), "4+7"),
        ("12?", (au(12, uncertain=True),), "12?"),
        ("r12+l14", (au(12, side="R"), au(14, side="L")), "R12+L14"),
        ("L12+R12", (au(12, side="L"), au(12, side="R")), "L12+R12"),
    ],
)
def test_plain_cells(text, aus, canonical) -> None:
    combo = parse_aus(text)
    assert combo.aus == aus
    assert combo.alternatives == ()
    assert combo.unknown_tokens == ()
    assert combo.canonical() == canonical
    assert combo.codes == tuple(sorted({a.code for a in aus}))


@pytest.mark.parametrize(
    "text", ["/", "NULL", "null", "", "   ", None, math.nan, float("nan"), "-"]
)
def test_empty_cells(text) -> None:
    combo = parse_aus(text)
    assert combo.is_empty and combo.codes == () and not combo.uncertain
    assert combo.canonical() == ""


def test_question_mark_is_uncertain_not_empty_string() -> None:
    combo = parse_aus("?")
    assert combo.is_empty and combo.uncertain and combo.canonical() == "?"
    partial = parse_aus("4+?")
    assert partial.codes == (4,) and partial.uncertain and partial.canonical() == "4+?"


def test_alternatives_stay_alternatives() -> None:
    combo = parse_aus("L12 or L14")
    assert combo.has_alternatives and combo.aus == ()
    assert [a.aus for a in combo.alternatives] == [(au(12, side="L"),), (au(14, side="L"),)]
    assert combo.codes == (12, 14)
    assert combo.canonical() == "L12 or L14"


def test_grouped_alternatives_expand_and_keep_shared_aus() -> None:
    combo = parse_aus("(R6 or R12)+R15")
    assert combo.aus == (au(15, side="R"),)
    assert [a.canonical() for a in combo.alternatives] == ["R6+R15", "R12+R15"]
    assert combo.codes == (6, 12, 15)


def test_left_or_right_half_is_one_sided_alternative() -> None:
    combo = parse_aus("AU6+L/R-AU12")
    assert combo.aus == (au(6),)
    assert [a.canonical() for a in combo.readings()] == ["6+L12", "6+R12"]


def test_unknown_tokens_are_reported_and_kept() -> None:
    combo = parse_aus("R14+17+soft focus")
    assert combo.aus == (au(14, side="R"), au(17))
    assert combo.unknown_tokens == ("soft focus",)
    assert combo.canonical() == "R14+17+soft focus"
    assert parse_aus("4.5").unknown_tokens == ("4.5",)
    assert parse_aus("1+2)+5").unknown_tokens == (")",)
    assert parse_aus("blink").is_empty and parse_aus("blink").unknown_tokens == ("blink",)


@pytest.mark.parametrize(
    "text",
    [
        "4+7", "L10", "R12", "L/R-AU12", "AU4", "15A", "10A/B", "T23", "B28", "A/L12",
        "ref(7B)+43", "(R6 or R12)+R15", "L12 or L14", "?", "/", "NULL", "R14+17+soft focus",
        "4，7", " 4 + 7 ", "1+2)+5", "(4+7",
    ],
)  # fmt: skip
def test_canonical_round_trip(text: str) -> None:
    once = parse_aus(text)
    assert parse_aus(once.canonical()) == once


def test_intensity_letters_map_to_relative_intensities() -> None:
    assert letter_to_relative(None) == 1.0
    assert letter_to_relative("A") == 0.5
    assert letter_to_relative("A/B") == pytest.approx(0.625)
    assert parse_aus("15B").aus[0].relative_intensity == 0.75
    with pytest.raises(ValueError, match="intensity"):
        letter_to_relative("Z")


def test_invalid_action_unit_fields_raise() -> None:
    with pytest.raises(ValueError, match="code"):
        ActionUnit(0)
    with pytest.raises(ValueError, match="side"):
        ActionUnit(12, side="X")


# --- generated combinations -----------------------------------------------------------------

action_units = st.builds(
    ActionUnit,
    code=st.integers(1, 99),
    side=st.sampled_from([None, "L", "R"]),
    intensity=st.sampled_from([None, "A", "B", "C", "D", "E", "A/B", "B/C"]),
    region=st.sampled_from([None, "T", "B"]),
    uncertain=st.booleans(),
    reference_only=st.booleans(),
    asymmetric=st.booleans(),
)


def _messy(unit: ActionUnit, style: int) -> str:
    """Spell one AU the way sheets do: optional 'AU', spaces, lower case."""
    body = unit.canonical().replace("ref(", "").replace(")", "")
    digits = str(unit.code)
    if style == 1 and not unit.asymmetric and unit.region is None:
        body = body.replace(digits, "AU" + digits, 1)
    if style == 2:
        body = body.lower()
    return f"ref({body})" if unit.reference_only else body


@settings(max_examples=150, deadline=None)
@given(
    st.lists(action_units, min_size=1, max_size=6),
    st.lists(st.sampled_from(["+", " + ", ",", "，", "+ "]), min_size=6, max_size=6),
    st.integers(0, 2),
)
def test_generated_combinations_lose_nothing(units, separators, style) -> None:
    text = separators[0].join(_messy(u, style) for u in units)
    combo = parse_aus(text)
    assert combo.unknown_tokens == ()
    assert set(combo.aus) == set(units)
    assert combo.codes == tuple(sorted({u.code for u in units}))
    assert parse_aus(combo.canonical()) == combo


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(action_units, min_size=1, max_size=3), min_size=2, max_size=3),
)
def test_generated_alternatives_round_trip(groups) -> None:
    text = " or ".join("+".join(u.canonical() for u in g) for g in groups)
    combo = parse_aus(text)
    readings = {frozenset(r.aus) for r in combo.readings()}
    assert readings == {frozenset(g) for g in groups}
    assert parse_aus(combo.canonical()) == combo
    assert isinstance(combo, AUCombination)
