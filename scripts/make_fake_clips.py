"""Write a manifest of fake two-frame clips (a real face moved and noised) for the docs.

    python scripts/make_fake_clips.py fake/real --shift 1.0 --noise 3 --seed 0
    python scripts/make_fake_clips.py fake/clean --shift 0 --noise 0 --seed 1 --source synthetic

Each clip is the astronaut portrait (scikit-image) aligned to a 96 px canonical crop: the onset
frame as is, the apex frame moved by a random translation of ``--shift`` pixels (standard
deviation), both with Gaussian noise of ``--noise`` grey levels. AU 12 is written as the AU label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import skimage.data

from mesynth.face.canonical import align_to_canonical, warp_with_matrix
from mesynth.face.landmarks import create_detector, detect_landmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--shift", type=float, default=1.0, help="head shift std, pixels")
    parser.add_argument("--noise", type=float, default=2.0, help="noise std, grey levels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="real", choices=["real", "synthetic"])
    args = parser.parse_args()
    image = skimage.data.astronaut()
    face = align_to_canonical(image, detect_landmarks(image, create_detector("dlib")), 96)
    args.folder.mkdir(parents=True, exist_ok=True)
    lines = ["subject,clip,label,path,onset,apex,offset,fps,aus,source"]
    for i in range(args.clips):
        rng = np.random.default_rng([args.seed, i])
        matrix = np.hstack([np.eye(2), rng.normal(0, args.shift, (2, 1))])
        frames = [face.image, warp_with_matrix(face.image.astype(np.float32), matrix, 96)]
        noisy = [np.clip(np.rint(f + rng.normal(0, args.noise, f.shape)), 0, 255) for f in frames]
        np.save(args.folder / f"clip{i}.npy", np.stack(noisy).astype(np.uint8))
        label = ("happiness", "surprise", "disgust")[i % 3]
        lines.append(f"s{i % 6},clip{i},{label},clip{i}.npy,0,1,1,200,12,{args.source}")
    (args.folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.clips} clips and {args.folder / 'manifest.csv'}")


if __name__ == "__main__":
    main()
