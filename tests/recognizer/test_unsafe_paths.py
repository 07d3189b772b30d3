"""`mer prepare` never writes outside its cache and output folders, whatever a manifest says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recognizer.cli import main as mer_main
from recognizer.data.safe_paths import UnsafePathError, path_inside, safe_path_component


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("s1,c1,happiness,c1.npy,../../ESCAPED", "dataset"),
        ("s2,c1,happiness,c1.npy,{absolute}", "dataset"),
        ("x/../../../../ESCAPED_SUBJECT,c1,happiness,c1.npy,", "subject"),
    ],
)
def test_manifest_cells_cannot_move_writes_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, column: str
) -> None:
    """A path-like subject or dataset cell is refused naming its row, before any write (the
    cache and flow writers also clean each path part: :func:`safe_path_component`)."""
    work = tmp_path / "a" / "b" / "work"
    data = work / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("c1", "c2"):
        np.save(data / f"{name}.npy", rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8))
    absolute = tmp_path / "ABSOLUTE"
    (data / "manifest.csv").write_text(
        "subject,clip,label,path,dataset\n"
        "s0,c2,disgust,c2.npy,\n" + row.format(absolute=absolute) + "\n"
    )
    out = mer_main(
        [
            "prepare",
            "data=manifest",
            f"data.loader.root={data}",
            f"paths.root_dir={work}",
            f"paths.cache_dir={work}/cache",
            "preprocess.backend=none",
            "preprocess.size=16",
            "progress=false",
            "select_scheme=false",
            "representation=apex_flow",
            "representation.size=12",
            "write_apex_flow=true",
            f"apex_flow_dir={work}/outputs/flow",
        ]
    )
    assert out == 2
    assert f"manifest.csv, row 3: {column} cell " in capsys.readouterr().err
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(data) for p in written)


def test_safe_path_component_keeps_plain_names_and_refuses_empty() -> None:
    assert safe_path_component("EP02_01f", "clip") == "EP02_01f"
    assert safe_path_component("../x", "dataset") == ".._x"
    assert safe_path_component("..", "dataset") == "__"
    with pytest.raises(UnsafePathError, match="subject is empty"):
        safe_path_component("  ", "subject")


def test_path_inside_names_the_escape(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError, match="outside the output folder"):
        path_inside(tmp_path / "out", tmp_path / "out" / ".." / "x")
