"""Each planted leak is caught; a clean fold passes."""

from dataclasses import replace
from pathlib import Path

import pytest

from recognizer.data.samples import Sample
from recognizer.protocols.leakage import LeakageError, check_fold, find_leaks, provenance, split_key


def _real(subject: str, clip: str) -> Sample:
    return Sample(
        dataset="casme2",
        subject=f"casme2/{subject}",
        clip=clip,
        frames=(Path(f"{clip}/img1.jpg"),),
        frame_numbers=(1,),
        onset=1,
        apex=1,
        offset=1,
        fps=200.0,
        emotion="happiness",
    )


def _synthetic(clip: str, **extra: object) -> Sample:
    return Sample(
        dataset="mesynth",
        subject="mesynth/astronaut",
        clip=clip,
        frames=(),
        frame_numbers=(),
        onset=0,
        apex=10,
        offset=40,
        fps=200.0,
        emotion="happiness",
        source="synthetic",
        identity="astronaut",
        extra=provenance(**extra),
    )


TRAIN = [_real("sub01", "EP01"), _real("sub02", "EP02")]
TEST = [_real("sub03", "EP03")]
TRAIN_SUBJECTS = ["casme2/sub01", "casme2/sub02"]


def test_clean_fold_with_fold_specific_synthesis_passes() -> None:
    synth = _synthetic("syn1", template_subjects=TRAIN_SUBJECTS, train_subjects=TRAIN_SUBJECTS)
    check_fold(0, [*TRAIN, synth], TEST)
    assert find_leaks([*TRAIN, synth], TEST) == []


def test_test_subject_in_training_is_caught() -> None:
    with pytest.raises(LeakageError, match=r"\[subject\].*casme2/sub03/EP99"):
        check_fold(0, [*TRAIN, _real("sub03", "EP99")], TEST)


def test_test_subject_in_validation_is_caught() -> None:
    with pytest.raises(LeakageError, match=r"validation clip casme2/sub03/EP99"):
        check_fold(0, TRAIN, TEST, val=[_real("sub03", "EP99")])


def test_duplicate_from_resampling_before_split_is_caught() -> None:
    leaks = find_leaks([*TRAIN, TEST[0]], TEST, test_subjects=["casme2/sub09"])
    assert [v.kind for v in leaks] == ["duplicate"]


def test_template_mined_from_test_subject_is_caught() -> None:
    synth = _synthetic("syn1", template_subjects=["casme2/sub01", "casme2/sub03"])
    with pytest.raises(LeakageError, match=r"\[template\].*casme2/sub03") as err:
        check_fold(3, [*TRAIN, synth], TEST)
    assert "fold 3" in str(err.value)


def test_identity_of_test_subject_is_caught() -> None:
    synth = _synthetic("syn1", identity_subject="casme2/sub03")
    leaks = find_leaks([*TRAIN, synth], TEST)
    assert [v.kind for v in leaks] == ["identity"]


def test_synthesis_for_another_split_is_caught() -> None:
    all_subjects = [*TRAIN_SUBJECTS, "casme2/sub03"]
    synth = _synthetic("syn1", train_subjects=all_subjects)
    leaks = find_leaks([*TRAIN, synth], TEST)
    assert [v.kind for v in leaks] == ["split"]


def test_split_key_ignores_order_and_duplicates() -> None:
    assert split_key(["b", "a", "a"]) == split_key(["a", "b"])
    assert split_key(["a"]) != split_key(["a", "b"])


def test_every_violation_is_listed() -> None:
    bad = [
        _real("sub03", "EP99"),
        _synthetic("s1", template_subjects=["casme2/sub03"], identity_subject="casme2/sub03"),
    ]
    with pytest.raises(LeakageError) as err:
        check_fold(1, [*TRAIN, *bad], TEST)
    kinds = sorted(v.kind for v in err.value.violations)
    assert kinds == ["identity", "subject", "template"]


@pytest.mark.parametrize(
    "face",
    ["sub03", "casme2/sub3", "CASME2/SUB003"],  # unqualified, unpadded, other case and padding
)
def test_face_provenance_in_another_spelling_is_caught(face: str) -> None:
    clip = _synthetic("s9", identity_subject=face)
    kinds = [v.kind for v in find_leaks([*TRAIN, clip], TEST)]
    assert kinds == ["identity"]


def test_padding_does_not_merge_different_subjects() -> None:
    clip = _synthetic("s10", identity_subject="casme2/sub30", template_subjects=["samm/sub03"])
    assert find_leaks([*TRAIN, clip], TEST) == []


def test_synthetic_clip_without_provenance_is_unknown_not_clean() -> None:
    bare = replace(_synthetic("s11"), extra={})
    assert [v.kind for v in find_leaks([*TRAIN, bare], TEST)] == ["provenance"]
    # with synthetic test subjects only (a protocol over a store), nothing real can leak
    synthetic_test = [replace(_synthetic("t1"), subject="mesynth/hopper", extra={})]
    assert find_leaks([bare], synthetic_test) == []


def test_provenance_on_a_sample_marked_real_is_still_checked() -> None:
    relabelled = replace(_synthetic("s12", template_subjects=["casme2/sub03"]), source="real")
    assert "template" in [v.kind for v in find_leaks([*TRAIN, relabelled], TEST)]


def _copy(subject: str, person: str, clip: str) -> Sample:
    """A 'real' clip of an augmented copy of a portrait: its subject is the copy, its person
    the portrait."""
    return replace(_real(subject, clip), subject=f"target/{subject}", extra={"person": person})


def test_a_copy_of_a_test_persons_face_in_training_is_caught() -> None:
    test = [_copy("hopper~aug0", "hopper", "t1")]
    train = [_copy("astronaut~aug0", "astronaut", "a1")]
    assert find_leaks(train, test) == []
    planted = _copy("hopper~aug1", "hopper", "h1")  # another subject, the same person
    with pytest.raises(LeakageError, match=r"\[person\].*target/hopper~aug1.*hopper") as err:
        check_fold(0, [*train, planted], test)
    assert [v.kind for v in err.value.violations] == ["person"]
    assert [v.kind for v in find_leaks(train, test, val=[planted])] == ["person"]


def test_a_synthetic_clip_animating_a_test_persons_face_is_caught() -> None:
    test = [_copy("hopper~aug0", "hopper", "t1")]
    portrait = replace(_synthetic("s1", identity_person="hopper"), subject="mesynth/hopper")
    assert [v.kind for v in find_leaks([portrait], test)] == ["person"]
    other = replace(_synthetic("s2", identity_person="astronaut"), subject="mesynth/astronaut")
    assert find_leaks([other], test) == []


def test_a_test_subjects_own_clip_is_a_subject_leak_not_also_a_person_leak() -> None:
    test = [_copy("hopper~aug0", "hopper", "t1")]
    assert [v.kind for v in find_leaks([_copy("hopper~aug0", "hopper", "t2")], test)] == ["subject"]
