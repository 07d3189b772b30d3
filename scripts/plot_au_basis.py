"""Draw the expert AU motion basis: one panel per AU, displacement arrows on the canonical face.

Usage: python scripts/plot_au_basis.py [--out docs/img/au_basis.png] [--gain 8]
The arrows are magnified ``--gain`` times (ME motion is 1-2 px on a 224 px face).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mesynth.face.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.motion.au_basis import MotionModel, expert_au_names

# polylines of the 68-point face, for a readable outline
_OUTLINE = [
    range(0, 17), range(17, 22), range(22, 27), range(27, 31), range(31, 36),
    [*range(36, 42), 36], [*range(42, 48), 42], [*range(48, 60), 48], [*range(60, 68), 60],
]  # fmt: skip


def plot_basis(out: Path, gain: float, size: int = 224) -> None:
    model = MotionModel.expert()
    names = expert_au_names()
    face = canonical_landmarks(size)
    iod = float(inter_ocular_distance(face))
    codes = model.known_codes
    cols = 7
    rows = math.ceil(len(codes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.1))
    for ax, code in zip(axes.flat, codes):
        arrows = model.basis(code) * iod * gain
        for line in _OUTLINE:
            idx = list(line)
            ax.plot(face[idx, 0], face[idx, 1], color="0.7", lw=0.6)
        moving = np.linalg.norm(arrows, axis=1) > 1e-9
        ax.quiver(
            face[moving, 0], face[moving, 1], arrows[moving, 0], arrows[moving, 1],
            angles="xy", scale_units="xy", scale=1.0, color="tab:red", width=0.012,
        )  # fmt: skip
        ax.set_title(f"AU{code} {names[code]}", fontsize=6.5)
        ax.set_xlim(size * 0.08, size * 0.92)
        ax.set_ylim(size * 0.98, size * 0.08)
        ax.set_aspect("equal")
        ax.axis("off")
    for ax in list(axes.flat)[len(codes) :]:
        ax.axis("off")
    fig.suptitle(
        f"Expert AU basis at intensity 1 (largest point {model.apex_iod} IOD), arrows x{gain:g}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/au_basis.png"))
    parser.add_argument("--gain", type=float, default=8.0)
    args = parser.parse_args()
    plot_basis(args.out, args.gain)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
