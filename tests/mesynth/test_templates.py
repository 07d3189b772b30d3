from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mesynth.labels.au import parse_aus
from mesynth.labels.emotions import UnknownLabelError
from mesynth.templates.bank import Template, TemplateAU, TemplateBank, TemplateError
from mesynth.templates.expert import load_table, shipped_tables
from mesynth.templates.macro_onset import MacroOnsetError, early_rise_aus

# DFME Table 6 as printed in the paper (typed here independently of the shipped YAML).
DFME_TABLE6 = {
    "anger": ["AU4+AU5", "AU23"],
    "contempt": ["L/R-AU12", "AU6+L/R-AU12"],
    "disgust": ["AU4+AU7+AU10", "AU14"],
    "fear": ["AU14+AU24", "AU1+AU4", "AU4+AU5"],
    "happiness": ["AU6+AU12", "AU12"],
    "sadness": ["AU14", "AU17", "AU15", "AU14+AU24"],
    "surprise": ["AU1+AU2+AU5", "AU1+AU2", "AU5"],
}
SHARED_NEGATIVE = ["AU4", "AU4+AU7", "AU7", "AU24"]


def keyset(aus) -> frozenset:
    return frozenset((au.code, au.side) for au in aus)


def template_keys(bank: TemplateBank, emotion: str, source: str | None = None) -> set:
    return {
        keyset(t.aus) for t in bank.templates_for(emotion) if source is None or t.source == source
    }


def test_expert_bank_holds_every_dfme_table6_combination() -> None:
    bank = TemplateBank.expert("dfme7", tables=["dfme_table6"])
    expected = {e: list(c) for e, c in DFME_TABLE6.items()}
    for emotion in ("anger", "disgust", "fear", "sadness"):
        expected[emotion] += SHARED_NEGATIVE
    for emotion, combos in expected.items():
        keys = template_keys(bank, emotion, "expert:dfme_table6")
        for combo in combos:
            for reading in parse_aus(combo).readings():
                assert keyset(reading.aus) in keys, (emotion, combo)
    assert len(bank) == sum(len(c) for c in expected.values()) + 2  # two L/R rows split in two


def test_table6_weights_are_products_of_table4_rates() -> None:
    frame = TemplateBank.expert("dfme7", tables=["dfme_table6"]).to_frame()
    anger = frame[frame.emotion == "anger"].set_index("aus")["share"]
    assert anger["4+5"] / anger["23"] == pytest.approx(0.725 * 0.076 / 0.056)
    assert anger["4+7"] / anger["4"] == pytest.approx(0.291)
    assert anger.sum() == pytest.approx(1.0)
    contempt = frame[frame.emotion == "contempt"].set_index("aus")["share"]
    assert contempt["L12"] == contempt["R12"]
    assert contempt["6+L12"] / contempt["L12"] == pytest.approx(0.192)


def test_scheme_mapping_and_exclusions_are_reported() -> None:
    bank = TemplateBank.expert("casme2_5", tables=["dfme_table6"])
    # anger 2+4 rows, contempt 2, fear 3+4, sadness 4+4: 23 rows excluded under casme2_5
    assert bank.reports[0].counts() == {"emotion excluded by scheme": 23}
    assert bank.emotions == ("happiness", "disgust", "surprise")
    megc = TemplateBank.expert("megc3", tables=["dfme_table6"])
    negative = template_keys(megc, "negative")
    assert keyset([TemplateAU(12, "L")]) in negative  # contempt is negative in megc3
    assert keyset([TemplateAU(6), TemplateAU(12)]) in template_keys(megc, "positive")


def test_casme2_bank_covers_repression_and_others() -> None:
    bank = TemplateBank.expert("casme2_5")
    assert bank.emotions == ("happiness", "disgust", "repression", "surprise", "others")
    repression = template_keys(bank, "repression")
    assert repression == {keyset([TemplateAU(15)]), keyset([TemplateAU(17)]),
                          keyset([TemplateAU(15), TemplateAU(17)])}  # fmt: skip


def test_megc_objective_classes_map_to_megc3_labels() -> None:
    bank = TemplateBank.expert("megc3", tables=["megc_objective"])
    surprise = template_keys(bank, "surprise")
    assert keyset([TemplateAU(25), TemplateAU(26)]) in surprise
    assert keyset([TemplateAU(20)]) in template_keys(bank, "negative")  # class VI, fear
    # every objective class lists its AU sets; 36 rows, none excluded (class VII has no row)
    assert len(bank) == 36 and bank.reports[0].skipped == []


def test_all_shipped_tables_load_with_citations() -> None:
    assert set(shipped_tables()) >= {
        "dfme_table4", "dfme_table6", "megc_objective", "casme2_criteria", "miex_rules"
    }  # fmt: skip
    for name in shipped_tables():
        table = load_table(name)
        assert table.citation and all(row["cite"] for row in table.rows)


def test_rule_table_fires_certain_aus_always() -> None:
    bank = TemplateBank.expert("dfme7", tables=["miex_rules"])
    generator = np.random.default_rng(3)
    draws = [bank.sample("surprise", generator) for _ in range(400)]
    assert all({1, 2} <= set(d.codes) for d in draws)
    rate_5 = np.mean([5 in d.codes for d in draws])
    assert 0.4 < rate_5 < 0.6  # probability 0.5
    fear = [bank.sample("fear", generator) for _ in range(100)]
    assert all(d.aus for d in fear)  # only optional AUs, yet never empty


def test_malformed_table_names_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "kind: combinations\ncitation: x\nrows:\n"
        "  - {emotion: anger, aus: '4+5', cite: a}\n"
        "  - {emotion: anger, aus: 'soft focus', cite: b}\n"
    )
    with pytest.raises(TemplateError, match=r"mine\.yaml row 2"):
        load_table(path)
    path.write_text("kind: rules\ncitation: x\nrows:\n  - {emotion: anger, au: '4', cite: a}\n")
    with pytest.raises(TemplateError, match=r"row 1: missing probability"):
        load_table(path)
    path.write_text(
        "kind: combinations\ncitation: x\nrows:\n  - {emotion: joyful, aus: '4', cite: a}\n"
    )
    with pytest.raises(TemplateError, match=r"row 1.*known emotions"):
        TemplateBank.expert("dfme7", tables=[path])
    with pytest.raises(TemplateError, match="shipped tables"):
        load_table("no_such_table")


# --- mined ----------------------------------------------------------------------------------


def rec(subject: str, emotion: str, aus: object, dataset: str = "casme2") -> SimpleNamespace:
    return SimpleNamespace(subject=subject, emotion=emotion, aus=aus, dataset=dataset, clip="c")


RECORDS = [
    rec("s1", "happiness", "6+12"),
    rec("s1", "happiness", 12),
    rec("s2", "Happy", "AU6+AU12"),
    rec("s2", "happiness", "12A"),
    rec("s2", "disgust", "4+7"),
    rec("s1", "disgust", "L10 or R10"),
    rec("s2", "repression", "ref(7B)+15"),
    rec("s3", "others", "?"),
    rec("s3", "fear", "4"),
    rec("s4", "bored", "4"),
    rec("s4", "others", "soft focus"),
]


def mined_counts(bank: TemplateBank) -> dict:
    return {(t.emotion, t.canonical()): t.weight for t in bank.templates}


def test_mined_frequencies_match_hand_count() -> None:
    bank = TemplateBank.mined(RECORDS, "casme2_5")
    assert mined_counts(bank) == {
        ("happiness", "6+12"): 2.0,
        ("happiness", "12"): 2.0,
        ("disgust", "4+7"): 1.0,
        ("disgust", "L10"): 0.5,
        ("disgust", "R10"): 0.5,
        ("repression", "15"): 1.0,
    }
    twelve = next(t for t in bank.templates if t.canonical() == "12")
    assert twelve.aus[0].intensity == pytest.approx((1.0 + 0.5) / 2)
    report = bank.reports[0]
    assert report.rows_read == 11 and report.rows_used == 7
    assert report.counts() == {
        "no AU coded": 1,
        "emotion excluded by scheme": 1,
        "unknown emotion": 1,
        "no usable AU": 1,
    }
    assert any(n.reason == "reference-only AUs left out" for n in report.notes)


def test_mining_restricted_to_training_subjects() -> None:
    bank = TemplateBank.mined(RECORDS, "casme2_5", subjects={"s1"})
    assert mined_counts(bank) == {
        ("happiness", "6+12"): 1.0,
        ("happiness", "12"): 1.0,
        ("disgust", "L10"): 0.5,
        ("disgust", "R10"): 0.5,
    }
    assert bank.reports[0].counts() == {"subject not in the selected subjects": 8}


def test_mining_uses_dataset_rules_and_known_codes() -> None:
    records = [rec("a", "fear", "4", "casme2"), rec("b", "fear", "4", "samm")]
    bank = TemplateBank.mined(records, "megc3")
    assert mined_counts(bank) == {("negative", "4"): 1.0}  # CASME II fear is not negative
    bank = TemplateBank.mined([rec("a", "disgust", "4+99")], "casme2_5", known_codes={4})
    assert mined_counts(bank) == {("disgust", "4"): 1.0}


# --- sampling, combining, summary -----------------------------------------------------------


def test_sampling_is_deterministic_and_follows_weights() -> None:
    bank = TemplateBank.mined(RECORDS, "casme2_5")
    a = [bank.sample("happiness", np.random.default_rng(7)) for _ in range(3)]
    b = [bank.sample("happiness", np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    generator = np.random.default_rng(0)
    draws = [bank.sample("disgust", generator) for _ in range(2000)]
    share = np.mean([d.canonical() == "4+7" for d in draws])
    assert abs(share - 0.5) < 0.04  # weights 1, 0.5, 0.5
    assert all(0 < au.intensity <= 1 for d in draws for au in d.aus)


def test_sample_rejects_labels_outside_scheme_and_missing_templates() -> None:
    bank = TemplateBank.mined(RECORDS, "casme2_5")
    with pytest.raises(UnknownLabelError, match="known labels: happiness"):
        bank.sample("anger", np.random.default_rng(0))
    with pytest.raises(TemplateError, match="no template for 'others'"):
        bank.sample("others", np.random.default_rng(0))


def test_combine_gives_each_bank_its_share() -> None:
    expert = TemplateBank.expert("casme2_5")
    mined = TemplateBank.mined(RECORDS, "casme2_5")
    both = TemplateBank.combine([expert, mined], [3.0, 1.0])
    frame = both.to_frame()
    happiness = frame[frame.emotion == "happiness"]
    assert happiness[happiness.source == "mined"]["share"].sum() == pytest.approx(0.25)
    others = frame[frame.emotion == "others"]
    assert set(others.source) == {"expert:casme2_criteria"}
    with pytest.raises(TemplateError, match="different schemes"):
        TemplateBank.combine([expert, TemplateBank.expert("dfme7")])


def test_summary_is_a_per_emotion_table() -> None:
    summary = TemplateBank.expert("dfme7").summary()
    assert isinstance(summary, pd.DataFrame)
    assert list(summary.index) == [
        "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"
    ]  # fmt: skip
    assert summary.loc["happiness", "templates"] == 3  # 6+12 and 12 (Table 6), Table 4
    assert "expert:dfme_table4" in summary.loc["happiness", "sources"]
    gap = TemplateBank.mined(RECORDS, "casme2_5").summary()
    assert gap.loc["others", "templates"] == 0


def test_summary_top_template_is_one_combination_with_its_share() -> None:
    summary = TemplateBank.expert("dfme7").summary()
    assert not summary["top_template"].str.contains("·").any()  # no occurrence-rate list
    # surprise: Table 6's "5" (0.488 of Table 6, which holds half the weight next to Table 4)
    assert summary.loc["surprise", "top_template"] == "5"
    assert summary.loc["surprise", "top_share"] == pytest.approx(0.244, abs=1e-3)
    assert summary["top_share"].nunique() > 1


def test_restrict_codes_drops_unknown_aus() -> None:
    bank = TemplateBank(
        "casme2_5", [Template("disgust", (TemplateAU(4), TemplateAU(99)), "x", 1.0)]
    )
    restricted = bank.restrict_codes({4})
    assert [t.canonical() for t in restricted.templates] == ["4"]
    assert restricted.restrict_codes({7}).templates == ()


# --- macro onset ----------------------------------------------------------------------------


def write_openface(path: Path, rows: list[list[object]], header: list[str]) -> Path:
    lines = [", ".join(header)] + [", ".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def rising_clip(path: Path) -> Path:
    """AU12 rises linearly 0 -> 4 over frames 0..40, AU06 0 -> 2, AU04 stays at noise."""
    rows = []
    for t in range(61):
        level = t / 40 if t <= 40 else max(0.0, 1 - (t - 40) / 20)
        rows.append([t + 1, 1, 0.98, 4 * level, 2 * level, 0.3])
    rows.insert(5, [100, 0, 0.1, 5.0, 5.0, 5.0])  # an untracked frame: ignored
    header = ["frame", "success", "confidence", "AU12_r", "AU06_r", "AU04_r"]
    return write_openface(path, rows, header)


def test_macro_onset_takes_the_early_rise(tmp_path: Path) -> None:
    path = rising_clip(tmp_path / "v.csv")
    aus = {au.code: au.intensity for au in early_rise_aus(path)}
    # progress t/40 within [0.25, 0.5] -> t = 10..20, mean t = 15: AU12 1.5, AU06 0.75; / 5
    assert aus == pytest.approx({12: 0.3, 6: 0.15})
    later = {au.code: au.intensity for au in early_rise_aus(path, fraction=(0.5, 0.5))}
    assert later == pytest.approx({12: 0.4, 6: 0.2})
    bank = TemplateBank.macro_onset([path], ["happy"], "megc3")
    assert bank.templates[0].emotion == "positive" and bank.templates[0].source == "macro_onset"


def test_macro_onset_bad_input(tmp_path: Path) -> None:
    path = rising_clip(tmp_path / "v.csv")
    with pytest.raises(UnknownLabelError, match="known labels: negative, positive, surprise"):
        TemplateBank.macro_onset([path], ["others"], "megc3")
    bad = tmp_path / "bad.csv"
    bad.write_text("frame, success, AU12_r\n1, 1, 0.5\n2, 1, oops\n")
    with pytest.raises(MacroOnsetError, match=r"bad\.csv: line 3 .*'AU12_r'"):
        early_rise_aus(bad)
    bad.write_text("frame, AU12\n1, 0.5\n")
    with pytest.raises(MacroOnsetError, match=r"bad\.csv.*AU01_r"):
        early_rise_aus(bad)
    flat = write_openface(tmp_path / "flat.csv", [[1, 0.2], [2, 0.2]], ["frame", "AU12_r"])
    with pytest.raises(MacroOnsetError, match=r"flat\.csv: no AU rises"):
        early_rise_aus(flat)
    with pytest.raises(TemplateError, match="2 CSV paths but 1 labels"):
        TemplateBank.macro_onset([path, path], ["happy"], "megc3")


# --- command line ---------------------------------------------------------------------------


def test_templates_command_prints_the_bank(tmp_path: Path, capsys) -> None:
    from mesynth.cli.main import main

    table = tmp_path / "notes.csv"
    table.write_text("subject,emotion,aus,dataset\n006,Happiness,R12,samm\n007,Other,4,samm\n")
    clip = rising_clip(tmp_path / "macro.csv")
    args = [
        "templates",
        "scheme=casme2_5",
        f"paths.root_dir={tmp_path}",
        f"mined.table={table}",
        f"macro.csvs=[{clip}]",
        "macro.labels=[happiness]",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scheme casme2_5" in out and "repression" in out
    happiness = next(line for line in out.splitlines() if line.startswith("happiness"))
    assert (
        "mined" in happiness
        and "macro_onset" in happiness
        and "expert:casme2_criteria" in happiness
    )
    assert "mined annotations: read 2 rows, used 2" in out


def test_annotation_table_needs_its_columns(tmp_path: Path) -> None:
    from mesynth.templates.mining import read_annotation_table

    path = tmp_path / "notes.csv"
    path.write_text("subject,label\n1,happy\n")
    with pytest.raises(TemplateError, match=r"notes\.csv: missing column\(s\) emotion, aus"):
        read_annotation_table(path)


def test_mining_by_subject_keeps_one_template_per_subject_and_the_distribution() -> None:
    from types import SimpleNamespace

    from mesynth.templates.mining import mine_templates

    rows = [("casme2/sub01", "4"), ("casme2/sub01", "4"), ("samm/006", "4"), ("samm/006", "12")]
    records = [SimpleNamespace(subject=s, emotion="negative", aus=a, dataset=s.split("/")[0])
               for s, a in rows]  # fmt: skip
    pooled, _ = mine_templates(records, "megc3")
    split, _ = mine_templates(records, "megc3", by_subject=True)
    assert {t.subjects for t in pooled} == {("casme2/sub01", "samm/006"), ("samm/006",)}
    assert sorted((t.subjects, t.weight) for t in split) == [
        (("casme2/sub01",), 2.0), (("samm/006",), 1.0), (("samm/006",), 1.0),
    ]  # fmt: skip
    by_combo = {}
    for t in split:
        by_combo[t.canonical()] = by_combo.get(t.canonical(), 0) + t.weight
    assert by_combo == {t.canonical(): t.weight for t in pooled}


def test_mining_reports_bad_au_strings_with_their_row() -> None:
    from mesynth.templates.mining import AnnotationRecord

    records = [
        AnnotationRecord("s1", "happiness", "-5", clip="a"),
        AnnotationRecord("s1", "happiness", "99", clip="b"),
        AnnotationRecord("s1", "happiness", "4++7", clip="c"),
        AnnotationRecord("s1", "happiness", "6+12", clip="d"),
    ]
    bank = TemplateBank.mined(records, "dfme7")
    (report,) = bank.reports
    skipped = {s.row: s.reason for s in report.skipped}
    assert skipped == {"record 0 (s1/a)": "no usable AU", "record 1 (s1/b)": "no usable AU"}
    notes = {(n.row, n.reason, n.detail) for n in report.notes}
    assert ("record 0 (s1/a)", "unknown AU tokens ignored", "-5") in notes
    assert ("record 1 (s1/b)", "AU codes FACS does not define dropped", "[99]") in notes
    malformed = "'4++7' read as '4+7': '+' with no AU before it"
    assert ("record 2 (s1/c)", "malformed AU string", malformed) in notes
    assert sorted(t.canonical() for t in bank.templates) == ["4+7", "6+12"]
