"""`make demo`'s pieces: progress while generating, and the balanced set in the report."""

from __future__ import annotations

from recognizer.demo import clip_progress, describe_balanced_set, generate_balanced_set


def test_clip_progress_prints_a_few_lines_with_the_time_left(capsys) -> None:
    on_clip = clip_progress(10, "generate", lines=4)
    for _ in range(10):
        on_clip(None)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" clips")[0] for line in lines] == [
        "generate: 3/10", "generate: 6/10", "generate: 9/10", "generate: 10/10",
    ]  # fmt: skip
    assert all("s left" in line for line in lines) and lines[-1].endswith("about 0 s left")


def test_the_balanced_set_is_shown_with_counts_histogram_and_key_frames(tmp_path, capsys) -> None:
    store = generate_balanced_set(tmp_path / "out" / "balanced_store", per_class=2)
    out = capsys.readouterr().out
    assert "generate: 14/14 clips" in out and "14 written" in out
    lines = describe_balanced_set(store, tmp_path / "out" / "balanced_set", tmp_path / "out")
    text = "\n".join(lines)
    assert "14 clips from" in text
    for emotion in ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"):
        assert f"| {emotion} | 2 |" in text
    assert "(balanced_set/class_histogram.png)" in text and "(balanced_set/key_frames.png)" in text
    for name in ("class_histogram.png", "key_frames.png"):
        assert (tmp_path / "out" / "balanced_set" / name).stat().st_size > 5000
    # a rerun finds the clips there and renders none
    generate_balanced_set(store, per_class=2)
    assert "0 written, 14 already there" in capsys.readouterr().out
