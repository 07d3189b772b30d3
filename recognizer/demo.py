"""``make demo``: the main job on the built-in default, in its current form.

The final demo (generate a balanced set from the built-in identities, train a small recognizer
with and without synthetic balancing, write ``demo_out/report.md``) grows with the library.
Each stage below runs when the part it needs exists and says plainly when it does not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mesynth.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.environment import environment_report, format_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    print("== installation")
    print(format_report(environment_report()))

    print("\n== canonical face (shared by synthesis and real-data preprocessing)")
    points = canonical_landmarks(224)
    iod = inter_ocular_distance(points)
    print(f"68 landmarks in a 224x224 crop; inter-ocular distance {iod:.1f} px")
    np.save(args.out / "canonical_landmarks_224.npy", points)

    stages = [
        ("mesynth generate", "mesynth.generate"),
        ("recognizer training", "recognizer.train"),
        ("experiment report", "recognizer.experiment"),
    ]
    print("\n== stages")
    for label, module in stages:
        try:
            __import__(module)
            status = "available"
        except ModuleNotFoundError:
            status = "not built yet (skipped)"
        print(f"{label:22s}: {status}")
    print(f"\nwrote {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
