"""The key-frame sheet: onset, apex and their magnified difference, one row per clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mesynth.evaluation.preview as preview
from mesynth.evaluation.preview import apex_position, choose_clips, key_frame_sheet
from mesynth.generation.store import StoreError

HEADER = (
    "clip_id,identity,label,emotion,aus,template_source,onset,apex,offset,fps,n_frames,mode,"
    "frame_numbers,seed,frames_dir,npy_path"
)


def _store(root: Path) -> Path:
    """Two clips of 4 stored frames (numbers 0, 3, 6, 9; apex 5 and 9) whose pixel values
    say which frame they are: frame ``t`` of clip ``c`` is ``10 * t + c`` everywhere."""
    (root / "clips").mkdir(parents=True)
    lines = [HEADER]
    for c, (label, apex) in enumerate((("anger", 5), ("fear", 9))):
        clip = np.stack([np.full((6, 6, 3), 10 * t + c, np.uint8) for t in range(4)])
        np.save(root / "clips" / f"{c:06d}.npy", clip)
        lines.append(f"{c:06d},face,{label},{label},4,expert:test,0,{apex},9,30,10,key,"
                     f"0;3;6;9,{c},,clips/{c:06d}.npy")  # fmt: skip
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def test_apex_position_is_the_stored_frame_nearest_the_apex() -> None:
    assert apex_position({"frame_numbers": "0;3;6;9", "apex": "5"}) == 2
    assert apex_position({"frame_numbers": "0;3;6;9", "apex": "9"}) == 3
    assert apex_position({"frame_numbers": "2;4", "apex": "0"}) == 0


def test_key_frame_sheet_shows_onset_apex_and_the_magnified_difference(
    tmp_path, monkeypatch
) -> None:
    store = _store(tmp_path / "store")
    figures = []
    save = preview._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(preview, "_save", keep)
    rows = choose_clips(store)
    path = key_frame_sheet(store, rows, tmp_path / "sheet.png", difference_gain=2.0)
    assert path.stat().st_size > 1000
    axes = np.asarray(figures[0].axes).reshape(2, 3)
    for r, (c, apex) in enumerate(((0, 2), (1, 3))):
        onset, peak, diff = (ax.images[0].get_array() for ax in axes[r])
        assert (np.asarray(onset) == c).all()  # frame 0
        assert (np.asarray(peak) == 10 * apex + c).all()
        assert np.asarray(diff) == pytest.approx(np.full((6, 6), 2.0 * 10 * apex))
        assert axes[r][1].get_title() == f"apex f{(0, 3, 6, 9)[apex]}"
    assert "anger" in axes[0][0].get_ylabel() and "fear" in axes[1][0].get_ylabel()
    with pytest.raises(StoreError, match="no clips"):
        key_frame_sheet(store, [], tmp_path / "empty.png")
