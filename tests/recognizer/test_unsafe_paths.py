"""`mer prepare` never writes outside its cache and output folders, whatever a manifest says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recognizer.cli import main as mer_main
from recognizer.data.safe_paths import UnsafePathError, path_inside, safe_path_component


def test_manifest_cells_cannot_move_writes_outside(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "work"
    data = work / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("c1", "c2", "c3"):
        np.save(data / f"{name}.npy", rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8))
    absolute = tmp_path / "ABSOLUTE"
    (data / "manifest.csv").write_text(
        "subject,clip,label,path,dataset\n"
        "s1,c1,happiness,c1.npy,../../ESCAPED\n"
        f"s2,c2,disgust,c2.npy,{absolute}\n"
        "x/../../../../ESCAPED_SUBJECT,c3,fear,c3.npy,\n"
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
    assert out == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    outside = [
        p
        for p in written
        if not any(p.is_relative_to(work / d) for d in ("data", "cache", "outputs"))
    ]
    assert outside == []
    assert len(list((work / "cache").rglob("*.npy"))) == 3
    assert len(list((work / "outputs" / "flow").rglob("*.png"))) == 3


def test_safe_path_component_keeps_plain_names_and_refuses_empty() -> None:
    assert safe_path_component("EP02_01f", "clip") == "EP02_01f"
    assert safe_path_component("../x", "dataset") == ".._x"
    assert safe_path_component("..", "dataset") == "__"
    with pytest.raises(UnsafePathError, match="subject is empty"):
        safe_path_component("  ", "subject")


def test_path_inside_names_the_escape(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError, match="outside the output folder"):
        path_inside(tmp_path / "out", tmp_path / "out" / ".." / "x")
