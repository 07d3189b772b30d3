"""Small fake releases on disk with the real layouts, column names and quirks.

Nothing here comes from a licensed release: rows are invented, frames are tiny grey images.
Cells are written with explicit types (text ids '01', '006'; numeric ids; AU cells stored as
numbers) because those types are the traps the loaders must survive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook

JUNK = ("Thumbs.db", ".DS_Store", "notes.txt", "reg_img.db")


def write_frames(
    folder: Path,
    numbers: Iterable[int],
    *,
    name: str = "img{n}",
    suffix: str = ".jpg",
    size: int = 8,
    junk: bool = False,
) -> list[Path]:
    """Tiny frames ``<name formatted with n><suffix>`` (the pattern fixes the padding)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in numbers:
        path = folder / (name.format(n=n) + suffix)
        image = np.full((size, size, 3), (n * 7) % 256, np.uint8)
        cv2.imwrite(str(path), image)
        out.append(path)
    if junk:
        for item in JUNK:
            (folder / item).write_text("junk")
    return out


def write_xlsx(path: Path, sheets: dict[str, Sequence[Sequence[object]]]) -> Path:
    """A workbook with one sheet per entry; ``None`` cells stay empty, types are kept."""
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


@dataclass(frozen=True)
class Row:
    """One annotation row: subject and AU cells keep the Python type they are written with."""

    subject: object
    clip: str
    onset: object
    apex: object
    offset: object
    aus: object
    emotion: str


# ---------------------------------------------------------------- CASME II

CASME2_HEADER = (
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
)

#: the quirks of CASME II, one row each; comments say what each must produce.
CASME2_QUIRK_ROWS = (
    Row("01", "EP02_01f", 46, 59, 86, 12, "happiness"),  # AU cell stored as a number
    Row("04", "EP12_01f", 10, "/", 30, "4+7", "disgust"),  # erratum: apex '/', kept, no apex
    Row("05", "EP09_05f", 20, 20, 40, "15", "repression"),  # apex == onset: kept
    Row("02", "EP01_2", 1, 5, 9, "?", "others"),  # clip without trailing f; '?' AU
    Row(3, "EP08_1", 100, 110, 130, "1+2", "surprise"),  # numeric subject id; missing frames
    Row("06", "EP06_02_01", 5, 7, 9, "4", "fear"),  # no frame folder
    Row("07", "EP09f", 3, 8, 6, "6+12", "happiness"),  # apex after offset (no erratum): skip
    Row("01", "EP03_02", 46, 50, 60, "10", "disgust"),  # zero-padded frame names
)


def casme2_frame_numbers(row: Row) -> tuple[list[int], str]:
    """Frames a fake CASME II release holds for a row, and the file-name pattern."""
    onset, offset = int(row.onset), int(row.offset)
    if row.clip == "EP08_1":
        return list(range(onset, offset - 5)), "img{n}"  # the last frames are missing
    if row.clip == "EP03_02":
        return list(range(onset, offset + 1, 2)) + [offset], "img{n:03d}"
    return sorted({onset, (onset + offset) // 2, offset, *_as_int(row.apex)}), "img{n}"


def _as_int(value: object) -> list[int]:
    return [int(value)] if isinstance(value, int) else []


def fake_casme2(
    root: Path,
    rows: Sequence[Row] = CASME2_QUIRK_ROWS,
    *,
    version: str = "2014",
    trees: Sequence[str] = ("selected", "cropped"),
    orphans: Sequence[str] = ("sub09/EP02_02f",),
    no_folder: Sequence[str] = ("EP06_02_01",),
) -> Path:
    """A CASME II release: coding sheet plus frame trees (``selected``, ``raw``, ``cropped``)."""
    header = list(CASME2_HEADER)
    if version == "2019":
        header.append("Objective Classes")
    table = [header]
    for r in rows:
        line = [r.subject, r.clip, None, r.onset, r.apex, r.offset, None, r.aus, r.emotion]
        table.append(line + (["1"] if version == "2019" else []))
    name = "CASME2-coding-20140508.xlsx" if version == "2014" else "CASME2-coding-20190701.xlsx"
    write_xlsx(root / name, {"Sheet1": table})
    tree_names = {"selected": "CASME2_RAW_selected", "raw": "CASME2-RAW", "cropped": "Cropped"}
    for tree in trees:
        base = root / tree_names[tree]
        for r in rows:
            if r.clip in no_folder:
                continue
            numbers, pattern = casme2_frame_numbers(r)
            if tree == "raw":
                numbers = list(range(1, int(r.offset) + 4))
            prefix = "reg_" if tree == "cropped" else ""
            folder = base / f"sub{int(r.subject):02d}" / r.clip
            write_frames(folder, numbers, name=prefix + pattern, junk=tree == "cropped")
        for orphan in orphans:
            write_frames(base / orphan, [1, 2, 3])
    return root


# ---------------------------------------------------------------- SAMM

SAMM_HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Micro",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
)

SAMM_QUIRK_ROWS = (
    Row("006", "006_1_2", 5562, 5588, 5605, "4+7", "Anger"),  # 5-digit padding
    Row("006", "006_1_3", 1200, 1210, 1230, 12, "Happiness"),  # 4-digit padding, numeric AU
    Row("032", "032_3_1", 300, 290, 320, "L12 ", "Contempt"),  # erratum: apex before onset
    Row("028", "028_4_1", 100, 140, 130, "R14A", "Disgust"),  # erratum: apex after offset
    Row(7, "007_5_1", 10, 12, 15, "(R6 or R12)+R15", "Other"),  # numeric subject; 'Other'
    Row("009", "009_1_1", 10, "x", 15, "1+2", "Surprise"),  # unreadable apex cell
)


def samm_preamble() -> list[list[object]]:
    lines = [["SAMM micro-movement FACS codes"], ["Version 2"]] + [[None]] * 4
    lines += [[f"note {i}"] for i in range(7)]
    assert len(lines) == 13
    return lines


def fake_samm(root: Path, rows: Sequence[Row] = SAMM_QUIRK_ROWS, *, frames: int = 3) -> Path:
    """A SAMM release: ``MICRO_ONLY`` sheet (13 preamble rows) and ``<subject>/<clip>`` frames."""
    table = samm_preamble() + [list(SAMM_HEADER)]
    for r in rows:
        table.append(
            [r.subject, r.clip, "1", r.onset, r.apex, r.offset, None, "Micro", r.aus, r.emotion]
            + ["I", ""]
        )
    write_xlsx(
        root / "SAMM_Micro_FACS_Codes_v2.xlsx",
        {"MICRO_ONLY": table, "MACRO_ONLY": [["nothing"]]},
    )
    for r in rows:
        subject = f"{int(r.subject):03d}"
        onset, offset = int(r.onset), int(r.offset)
        numbers = {onset, offset, *(range(onset, offset + 1, max(1, (offset - onset) // frames)))}
        if isinstance(r.apex, int) and onset <= r.apex <= offset:
            numbers.add(r.apex)
        pad = 5 if onset >= 5000 else 4
        write_frames(
            root / subject / r.clip, sorted(numbers), name=subject + "_{n:0" + str(pad) + "d}"
        )
    return root


# ---------------------------------------------------------------- SMIC

SMIC_LABEL_CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}


def fake_smic(root: Path, clips: Sequence[tuple[str, str]], *, part: str = "HS") -> Path:
    """The original SMIC release: ``SMIC_all_raw/<part>/<s>/micro/<label>/<clip>/image<n>.bmp``.

    ``clips`` are ``(subject folder, label)`` pairs; clip names count up per subject and label.
    """
    base = root / "SMIC_all_raw" / part
    counters: dict[tuple[str, str], int] = {}
    for subject, label in clips:
        k = counters[(subject, label)] = counters.get((subject, label), 0) + 1
        clip = f"{subject}_{SMIC_LABEL_CODES[label]}_{k:02d}"
        start = 100 * k
        write_frames(
            base / subject / "micro" / label / clip,
            [start, start + 1, start + 2],
            name="image{n:06d}",
            suffix=".bmp",
        )
    return root


def fake_smic_e(root: Path) -> Path:
    """SMIC-E: ``SMIC-HS-E_annotation.xlsx`` (sheets HS, VIS) and ``SMIC-HS-E/s01/<clip>``."""
    header = ["Subject", "Filename", "OnsetF", "OffsetF", "Onset2F", "Offset2F", "FirstF"]
    header += ["LastF", "Emotion"]
    rows = [
        [1, "s1_ne_01", 10, 20, 10, 20, 1, 30, "negative"],
        [1, "s1_po_01", 5, 9, 5, 9, 1, 12, "positive"],
        [2, "s2_sur_01", 3, 40, 3, 40, 1, 41, "surprise"],  # frames stop at 30: skipped
    ]
    write_xlsx(root / "SMIC-HS-E_annotation.xlsx", {"HS": [header, *rows], "VIS": [header]})
    write_frames(root / "SMIC-HS-E" / "s01" / "s1_ne_01", range(1, 31), name="image{n}")
    write_frames(root / "SMIC-HS-E" / "s01" / "s1_po_01", range(1, 13), name="image{n}")
    write_frames(root / "SMIC-HS-E" / "s02" / "s2_sur_01", range(1, 31), name="image{n}")
    return root


# ---------------------------------------------------------------- CAS(ME)^3, MMEW, DFME


def fake_casme3(root: Path) -> Path:
    """CAS(ME)^3 part A: ``label`` sheet; ``part_A/<subject>/<video>/color/<n>.jpg`` with gaps."""
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class"]
    header.append("emotion")
    rows = [
        ["spNO.1", "a", 355, 360, 370, "L12+R12", "1", "happy"],
        ["spNO.1", "a", 400, 405, 410, "T4", "2", "disgust"],  # second ME of video a -> a2
        ["spNO.1", "b", 10, 12, 16, "1+2", "3", "surprise"],
        ["spNO.40", "e", 50, 55, 0, "4", "2", "Others"],  # erratum: offset 0
        ["spNO.2", "c", 20, 22, 24, "B15", "4", "sad"],  # no frames folder
    ]
    write_xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", {"label": [header, *rows]})
    base = root / "part_A"
    numbers_a = [n for n in range(350, 415) if n % 7 != 0]  # dropped frames
    write_frames(base / "spNO.1" / "a" / "color", numbers_a, name="{n}")
    write_frames(base / "spNO.1" / "b" / "color", range(10, 17), name="{n}")
    write_frames(base / "spNO.40" / "e" / "color", range(40, 60), name="{n}")
    return root


def fake_mmew(root: Path) -> Path:
    """MMEW: ``MMEW_Micro_Exp.xlsx`` and ``Micro_Expression/<emotion>/<clip>/<n>.jpg``."""
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units"]
    header += ["Estimated Emotion", "remarks"]
    rows = [
        ["S01", "S01-01-001", 1, 5, 9, 12, "happiness", None],
        ["S02", "S02-03-002", 2, 4, 8, "4+7", "others", "in repression folder"],
        ["S02", "S02-05-001", 1, 3, 20, "1+2", "surprise", None],  # frames end at 10
    ]
    write_xlsx(root / "MMEW_Micro_Exp.xlsx", {"Sheet1": [header, *rows]})
    base = root / "Micro_Expression"
    write_frames(base / "happiness" / "S01-01-001", range(1, 10), name="{n}")
    write_frames(base / "repression" / "S02-03-002", range(1, 10), name="{n}")
    write_frames(base / "surprise" / "S02" / "S02-05-001", range(1, 11), name="{n}")
    return root


def fake_dfme(root: Path, *, csv: bool = False) -> Path:
    """DFME with the loader's default mapping (``Part`` column, ``<Part>/<Subject>/<clip>``)."""
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units"]
    header += ["Emotion", "Part"]
    rows = [
        ["0001", "0001_01", 1, 10, 20, "4+7", "disgust", "A"],
        ["0002", "0002_03", 5, 9, 15, 12, "happiness", "B"],
        ["0003", "0003_02", 1, 4, 8, "", "others", "C"],
    ]
    if csv:
        import pandas as pd

        pd.DataFrame(rows, columns=header).to_csv(root / "DFME_labels.csv", index=False)
    else:
        write_xlsx(root / "DFME_annotation.xlsx", {"labels": [header, *rows]})
    for subject, clip, onset, _, offset, _, _, part in rows:
        numbers = sorted({*range(onset, offset + 1, 2), offset})
        write_frames(root / part / subject / clip, numbers, name="{n}")
    return root


# ---------------------------------------------------------------- clip store (CONTRACTS.md B)

STORE_COLUMNS = (
    "clip_id,identity,label,emotion,aus,template_source,onset,apex,offset,fps,n_frames,mode,"
    "frame_numbers,seed,frames_dir,npy_path"
)


def fake_store(
    root: Path,
    clips: Sequence[np.ndarray],
    *,
    labels: Sequence[str],
    apexes: Sequence[int],
    formats: Sequence[str],
    identity: str = "astronaut",
    frame_numbers: Sequence[Sequence[int]] | None = None,
) -> Path:
    """A clip store exactly as CONTRACTS.md section B describes it.

    Args:
        clips: ``(T, H, W, 3)`` uint8 clips (RGB).
        labels: class name per clip.
        apexes: full-rate apex frame number per clip.
        formats: ``"frames"`` or ``"npy"`` per clip.
        frame_numbers: full-rate frame numbers per clip (default ``0..T-1``, mode "full").
    """
    (root / "clips").mkdir(parents=True, exist_ok=True)
    lines = [STORE_COLUMNS]
    for i, clip in enumerate(clips):
        clip_id = f"{i:06d}"
        numbers = list(frame_numbers[i]) if frame_numbers else list(range(len(clip)))
        offset = max(numbers)
        mode = "full" if numbers == list(range(offset + 1)) else "keyframes"
        frames_dir = npy_path = ""
        if formats[i] == "frames":
            frames_dir = f"clips/{clip_id}"
            (root / frames_dir).mkdir(parents=True, exist_ok=True)
            for n, frame in zip(numbers, clip):
                cv2.imwrite(str(root / frames_dir / f"img{n}.png"), frame[:, :, ::-1])
        else:
            npy_path = f"clips/{clip_id}.npy"
            np.save(root / npy_path, clip)
        aus = "6+12" if labels[i] == "happiness" else "4+7"
        lines.append(
            f"{clip_id},{identity},{labels[i]},{labels[i]},{aus},expert:test,0,{apexes[i]},"
            f"{offset},200,{offset + 1},{mode},{';'.join(map(str, numbers))},{i},"
            f"{frames_dir},{npy_path}"
        )
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    meta = {"scheme": "dfme7", "class_names": sorted(set(labels)), "format": "mixed"}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


# ---------------------------------------------------------------- MEGC2019 composite

MEGC_CODES = {"negative": 0, "positive": 1, "surprise": 2}


def _spread(counts: dict[str, int], subjects: Sequence[object]) -> list[tuple[object, str]]:
    """``(subject, emotion)`` pairs, emotions dealt round-robin over the subjects."""
    pairs, i = [], 0
    for emotion, n in counts.items():
        for _ in range(n):
            pairs.append((subjects[i % len(subjects)], emotion))
            i += 1
    return pairs


def fake_megc2019(root: Path) -> dict[str, Path]:
    """Fake CASME II, SAMM and SMIC-HS whose MEGC2019 membership mirrors the official one.

    Official counts: SMIC 70/51/43 (16 subjects), CASME II 88/32/25 (24), SAMM 92/26/15 (28);
    every release also holds clips the composite leaves out (others, CASME II fear/sadness and
    two bad-apex negatives, SAMM 'Other'). The ground-truth CSV spells names as the official
    list does: CASME II ``sub01``; SAMM ``6`` with clip ``006_1_2``; SMIC ``s01`` and
    ``s01_ne_01`` (zero-padded, while the folders are ``s1/.../s1_ne_01``). CASME II sub17
    holds the real pair ``EP05_03`` (happiness) and ``EP05_03f`` (repression). Returns the
    three roots and the ground-truth CSV.
    """
    gt: list[str] = []
    # CASME II: 26 subjects; 24 hold members, 25 and 26 only 'others'
    casme_subjects = [f"{n:02d}" for n in range(1, 25)]
    members = _spread({"disgust": 45, "repression": 42}, casme_subjects)
    members += _spread({"happiness": 31, "surprise": 25}, casme_subjects)
    extra = _spread({"others": 8}, casme_subjects) + [("25", "others"), ("26", "others")]
    extra += _spread({"fear": 2, "sadness": 7}, casme_subjects)
    rows, counter = [], {}
    for subject, emotion in members + extra:
        k = counter[subject] = counter.get(subject, 0) + 1
        rows.append(Row(subject, f"EP{20 + k // 10:02d}_{k % 10:02d}f", 1, 2, 3, "4", emotion))
    rows.append(Row("17", "EP05_03", 1, 2, 3, "12", "happiness"))
    rows.append(Row("17", "EP05_03f", 1, 2, 3, "14", "repression"))
    for r in rows:
        code = {"happiness": 1, "surprise": 2, "disgust": 0, "repression": 0}.get(r.emotion)
        if code is not None:
            gt.append(f"casme2,sub{r.subject},{r.clip},{code}")
    rows.append(Row("04", "EP12_01f", 1, "/", 3, "4+7", "disgust"))
    rows.append(Row("05", "EP09_05f", 1, 1, 3, "14", "repression"))
    fake_casme2(root / "CASME2", rows, trees=("selected",), orphans=())

    # SAMM: 29 subjects; 037 holds only 'Other'
    samm_subjects = [n for n in range(6, 37) if n not in (8, 10, 27)]
    samm_counts = {"Anger": 57, "Contempt": 11, "Disgust": 8, "Fear": 8, "Sadness": 6}
    samm_counts |= {"Happiness": 26, "Surprise": 15}
    samm_members = _spread(samm_counts, samm_subjects)
    samm_rows, counter = [], {}
    for subject, emotion in samm_members + _spread({"Other": 25}, samm_subjects) + [(37, "Other")]:
        k = counter[subject] = counter.get(subject, 0) + 1
        clip = f"{subject:03d}_{10 + k}_1"
        samm_rows.append(Row(f"{subject:03d}", clip, 100, 101, 102, "4", emotion))
    samm_rows.append(Row("032", "032_3_1", 100, 99, 102, "L12", "Contempt"))
    samm_rows.append(Row("028", "028_4_1", 100, 105, 102, "9", "Disgust"))
    for r in samm_rows:
        code = {"Happiness": 1, "Surprise": 2, "Other": None}.get(r.emotion, 0)
        if code is not None:
            gt.append(f"samm,{int(r.subject)},{r.clip},{code}")
    fake_samm(root / "SAMM", samm_rows, frames=1)

    # SMIC-HS (original): 16 subjects
    smic_clips = _spread(
        {"negative": 70, "positive": 51, "surprise": 43}, [f"s{n}" for n in range(1, 17)]
    )
    fake_smic(root / "SMIC", smic_clips)
    counter = {}
    for subject, label in smic_clips:
        k = counter[(subject, label)] = counter.get((subject, label), 0) + 1
        padded = f"s{int(subject[1:]):02d}"
        code = SMIC_LABEL_CODES[label]
        gt.append(f"smic,{padded},{padded}_{code}_{k:02d},{MEGC_CODES[label]}")
    gt_csv = root / "megc2019_gt.csv"
    gt_csv.write_text("\n".join(gt) + "\n")
    return {"casme2": root / "CASME2", "samm": root / "SAMM", "smic": root / "SMIC", "gt": gt_csv}


# ---------------------------------------------------------------- frames of a real face


def astronaut_frames(
    folder: Path,
    numbers: Sequence[int],
    *,
    size: int = 200,
    shift_per_frame: float = 1.5,
    scale_per_frame: float = 0.01,
    name: str = "img{n}",
) -> list[np.ndarray]:
    """Frames made from the astronaut portrait (public domain), shifted and scaled per frame.

    Frame k (k-th number) is the face crop moved by ``k * shift_per_frame`` px right and down
    and scaled by ``1 + k * scale_per_frame`` about the centre. Returns the RGB frames written.
    """
    from skimage import data

    face = data.astronaut()[20:260, 120:360]  # the face with some margin, RGB
    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for k, n in enumerate(numbers):
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, 1 + k * scale_per_frame)
        matrix[:, 2] += k * shift_per_frame
        frame = cv2.warpAffine(face, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(folder / (name.format(n=n) + ".jpg")), frame[:, :, ::-1])
        frames.append(frame)
    return frames
