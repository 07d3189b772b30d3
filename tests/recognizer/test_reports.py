"""Reports a researcher reads: per-class scores, labelled metric bars, one-seed tables without
a spread, and training curves (collect, write_report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from sklearn.metrics import precision_recall_fscore_support

import recognizer.evaluation.report as report_module
from recognizer.evaluation.grid import collect
from recognizer.evaluation.metrics import confusion_matrix, per_class, summarize
from recognizer.evaluation.report import per_class_table, plot_curves, write_report

NAMES = ["anger", "disgust", "fear"]


def fake_run(root: Path, remedy: str, seed: int, rng: np.random.Generator) -> Path:
    """A run folder as :func:`recognizer.experiments.runner.run_protocol` writes it: two folds of
    random predictions (better than chance), ``results.json`` and per-fold ``curves.csv``."""
    run = root / remedy / f"seed{seed}"
    true = rng.integers(0, 3, 40)
    predicted = np.where(rng.random(40) < 0.6, true, rng.integers(0, 3, 40))
    table = pd.DataFrame({"index": range(40), "fold": np.arange(40) % 2, "true": true,
                          "predicted": predicted, "dataset": "d"})  # fmt: skip
    result = summarize(table)
    result["confusion_matrix"] = confusion_matrix(true, predicted, labels=range(3)).tolist()
    result["per_class"] = per_class(true, predicted, labels=range(3))
    result["settings"] = {
        "model": "m", "protocol_name": "kfold", "remedy": {"name": remedy},
        "trainer": {"seed": seed}, "num_classes": 3, "class_names": NAMES,
    }  # fmt: skip
    for fold in range(2):
        (run / f"fold_{fold:02d}").mkdir(parents=True)
        epochs = np.arange(1, 5)
        pd.DataFrame({"epoch": epochs, "lr": 0.01, "loss": 1.0 / epochs, "train_acc": 0.2 * epochs,
                      "train_uf1": 0.1 * epochs}).to_csv(run / f"fold_{fold:02d}/curves.csv",
                                                        index=False)  # fmt: skip
    table.to_csv(run / "predictions.csv", index=False)
    (run / "results.json").write_text(json.dumps(result))
    return run


@pytest.fixture
def captured_figures(monkeypatch) -> dict[str, object]:
    """Figures the report functions save, by file name (saved as usual)."""
    figures: dict[str, object] = {}
    save = report_module._save

    def keep(fig, path):
        figures[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(report_module, "_save", keep)
    return figures


def test_per_class_matches_sklearn_and_the_counts() -> None:
    true, predicted = [0, 0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 3, 2, 0, 2]
    scores = per_class(true, predicted, labels=range(5))
    p, r, f, s = precision_recall_fscore_support(true, predicted, labels=range(5), zero_division=0)
    assert scores["precision"] == pytest.approx(p) and scores["recall"] == pytest.approx(r)
    assert scores["f1"] == pytest.approx(f) and scores["support"] == s.tolist()
    # by hand: class 0 TP 2 FP 1 FN 1; class 2 TP 2 FP 0 FN 1; class 3 predicted once, never true
    assert scores["precision"][:4] == pytest.approx([2 / 3, 1 / 2, 1.0, 0.0])
    assert scores["recall"][:3] == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert scores["f1"][2] == pytest.approx(0.8) and scores["support"] == [3, 2, 3, 0, 0]


def test_one_seed_reports_have_no_spread_and_bars_carry_their_values(
    tmp_path, captured_figures
) -> None:
    rng = np.random.default_rng(0)
    runs = [fake_run(tmp_path / "runs", r, 0, rng) for r in ("none", "cb")]
    collected = collect([tmp_path / "runs"], tmp_path / "report", title="t")
    text = collected.report.read_text()
    summary_part = text.split("## ", 1)[0]
    assert "±" not in summary_part and "one seed per remedy" in summary_part
    uf1s = [json.loads((r / "results.json").read_text())["pooled"]["uf1"] for r in runs]
    assert all(f"| {v:.4f} |" in summary_part for v in uf1s)
    bars = captured_figures["metrics.png"]
    uf1_axis = bars.axes[0]
    assert sorted(t.get_text() for t in uf1_axis.texts) == sorted(f"{v:.3f}" for v in uf1s)
    assert not any(isinstance(c, ErrorbarContainer) for c in uf1_axis.containers)
    assert "one seed" in bars._suptitle.get_text()


def test_several_seeds_show_mean_and_std_and_error_bars(tmp_path, captured_figures) -> None:
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        fake_run(tmp_path / "runs", "none", seed, rng)
    text = collect([tmp_path / "runs"], tmp_path / "report").report.read_text()
    assert "mean ± std over seeds" in text and " ± " in text.split("## ", 1)[0]
    uf1_axis = captured_figures["metrics.png"].axes[0]
    assert any(isinstance(c, ErrorbarContainer) for c in uf1_axis.containers)


def test_per_class_table_is_the_mean_over_seeds_of_sklearn_scores(tmp_path) -> None:
    rng = np.random.default_rng(2)
    runs = [fake_run(tmp_path / "runs", "none", seed, rng) for seed in (0, 1, 2)]
    collected = collect([tmp_path / "runs"], tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "per_class.csv")
    assert table["class"].tolist() == NAMES and (table["seeds"] == 3).all()
    expected = []
    for run in runs:
        pred = pd.read_csv(run / "predictions.csv")
        scores = precision_recall_fscore_support(
            pred["true"], pred["predicted"], labels=range(3), zero_division=0
        )
        expected.append(np.stack(scores[:3], axis=1))
    assert table[["precision", "recall", "F1"]].to_numpy() == pytest.approx(
        np.mean(expected, axis=0)
    )
    text = collected.report.read_text()
    assert "| class | support | none P | none R | none F1 |" in text
    assert f"| anger | {int(table['support'][0])} | {table['precision'][0]:.3f} |" in text
    assert (tmp_path / "report" / "per_class_f1_m_kfold.png").stat().st_size > 1000


def test_runs_written_before_per_class_are_scored_from_their_predictions(tmp_path) -> None:
    run = fake_run(tmp_path, "none", 0, np.random.default_rng(3))
    with_scores = per_class_table(run / "results.json")
    result = json.loads((run / "results.json").read_text())
    del result["per_class"]
    (run / "results.json").write_text(json.dumps(result))
    assert per_class_table(run / "results.json").equals(with_scores)
    (run / "predictions.csv").unlink()
    assert per_class_table(run / "results.json") is None


def test_reports_draw_every_folds_training_curves(tmp_path, captured_figures) -> None:
    fake_run(tmp_path / "runs", "none", 0, np.random.default_rng(4))
    text = collect([tmp_path / "runs"], tmp_path / "report").report.read_text()
    assert "## Training curves per fold" in text and "(curves_m_kfold_none.png)" in text
    loss_axis = captured_figures["curves_m_kfold_none.png"].axes[0]
    assert [line.get_label() for line in loss_axis.lines] == ["fold 0 train", "fold 1 train"]
    assert loss_axis.lines[0].get_ydata().tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])

    single = write_report([tmp_path / "runs"], tmp_path / "single").read_text()
    assert "(curves_00.png)" in single and "| class | support | precision | recall | F1 |" in single
    with pytest.raises(ValueError, match="no training curves"):
        plot_curves({}, tmp_path / "none.png")
