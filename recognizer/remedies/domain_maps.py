"""Real against synthetic apex flow, class by class: what a synthetic run's report shows.

A synthetic remedy on an apex-flow representation writes, once per run and synthetic pool,
``<shared dir>/domain_maps/<pool key>/``: ``class_means.png`` (per class the mean motion
energy of the run's real samples, of the pool's synthetic clips, and their difference) and
``domain_maps.json`` (per class the counts, the energy ratio synthetic / real and the Pearson
correlation of the two mean maps: a ratio far from 1 says the synthetic motion is too strong
or too weak, a low correlation that it sits elsewhere on the face, e.g. another framing).
``mer report`` embeds both (:mod:`recognizer.evaluation.report`).

It is a diagnostic of the data, never training input: it reads every real sample of the run,
test subjects included, and nothing of it reaches a fold.

Convention:
    Flow images are ``(N, S, S, 3)`` uint8 ``(u, v, strain)`` as the representation sees them
    (:func:`recognizer.remedies.calibration.real_flows`); the energy of one image is
    ``|(u, v) - median(u, v)|`` per pixel on ``[0, 1]`` values
    (:meth:`mesynth.evaluation.features.ApexFlowFeature.energy`), ``(S, S)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recognizer.data.representations import SyntheticFrames

MAPS = "domain_maps.json"
FIGURE = "class_means.png"


def flow_energies(images: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 flow images -> ``(N, S, S)`` float32 motion energy."""
    from mesynth.evaluation.features import ApexFlowFeature

    if len(images) == 0:
        return np.zeros((0, *images.shape[1:3]), np.float32)
    scaled = np.asarray(images, np.float32) / 255.0
    return np.stack([ApexFlowFeature.energy(x) for x in scaled]).astype(np.float32)


def class_statistics(
    energies: dict[str, np.ndarray], labels: dict[str, np.ndarray], class_names: Sequence[str]
) -> list[dict[str, object]]:
    """Per class present in either set: ``class``, ``real``, ``synthetic`` (counts),
    ``energy_ratio`` (mean synthetic energy / mean real energy) and ``map_correlation``
    (Pearson correlation of the two ``(S, S)`` class-mean maps); ``None`` where a set lacks the
    class or a map is constant."""
    rows = []
    for index, name in enumerate(class_names):
        chosen = {side: energies[side][labels[side] == index] for side in ("real", "synthetic")}
        row: dict[str, object] = {
            "class": str(name),
            "real": int(len(chosen["real"])),
            "synthetic": int(len(chosen["synthetic"])),
            "energy_ratio": None,
            "map_correlation": None,
        }
        if not row["real"] and not row["synthetic"]:
            continue
        if row["real"] and row["synthetic"]:
            real, synthetic = chosen["real"].mean(0), chosen["synthetic"].mean(0)
            if real.mean() > 0:
                row["energy_ratio"] = float(synthetic.mean() / real.mean())
            if real.std() > 0 and synthetic.std() > 0:
                row["map_correlation"] = float(np.corrcoef(real.ravel(), synthetic.ravel())[0, 1])
        rows.append(row)
    return rows


def write_domain_maps(
    folder: str | Path,
    real: Sequence[object],
    real_labels: Sequence[int],
    synthetic: Sequence[object],
    synthetic_labels: Sequence[int],
    class_names: Sequence[str],
    frames: SyntheticFrames,
) -> Path:
    """Write ``class_means.png`` and ``domain_maps.json`` under ``folder`` (kept when
    ``domain_maps.json`` is already there); returns the JSON's path.

    Args:
        folder: the output folder (created).
        real, real_labels: the run's real samples and class indices.
        synthetic, synthetic_labels: the synthetic pool's clips (apex-flow images) and labels.
        class_names: ``(K,)`` names of the class indices.
        frames: the representation's flow (size, method) that reads the real samples.
    """
    from mesynth.evaluation.figures import plot_class_means
    from recognizer.remedies.calibration import real_flows

    out = Path(folder)
    path = out / MAPS
    if path.is_file():
        return path
    out.mkdir(parents=True, exist_ok=True)
    energies = {
        "real": flow_energies(real_flows(list(real), frames).images),
        "synthetic": flow_energies(real_flows(list(synthetic), frames).images),
    }
    labels = {
        "real": np.asarray(real_labels, np.int64),
        "synthetic": np.asarray(synthetic_labels, np.int64),
    }
    names = np.asarray([str(n) for n in class_names], dtype=object)
    named = {side: names[labels[side]] for side in labels}
    plot_class_means(energies, named, out / FIGURE)
    record = {
        "figure": FIGURE,
        "size": int(energies["real"].shape[-1]) if len(energies["real"]) else None,
        "classes": class_statistics(energies, labels, class_names),
    }
    tmp = out / f".tmp-{MAPS}"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path
