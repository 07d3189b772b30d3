"""The clip store: a folder of synthetic clips with a manifest, written atomically and resumably.

Layout (read by ``recognizer``'s ``mesynth`` loader; see CONTRACTS.md section B)::

    <store>/
      meta.json          generation config + its hash, versions, scheme, class names, format, mode
      manifest.csv       one row per finished clip (columns: MANIFEST_COLUMNS)
      clips/<clip_id>/img<frame>.jpg|png      format "frames" (frame number in the name, unpadded)
      clips/<clip_id>.npy                     format "npy": uint8 (T, H, W, C)
      params/<clip_id>.json                   every sampled parameter of the clip

Writes are atomic: files are written under a temporary name and renamed, a clip's frame folder
is renamed into place when complete, and its manifest row is appended (and flushed to disk)
only after that. A clip is finished if and only if its row is in the manifest, so after a kill a
rerun skips finished clips and redoes partial ones. Sharded runs (``RANK``/``WORLD_SIZE``, as
set by ``torchrun``) write ``manifest.rank<r>.csv``; :func:`merge_shards` makes one manifest.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from mesynth.face.frame_files import FrameNumberError, discover_frames, parse_frame_numbers
from mesynth.face.image_io import decode_rgb
from mesynth.keyframes import sample_key_frames

MANIFEST_COLUMNS = (
    "clip_id",
    "identity",
    "label",
    "emotion",
    "aus",
    "template_source",
    "onset",
    "apex",
    "offset",
    "fps",
    "n_frames",
    "mode",
    "frame_numbers",
    "seed",
    "frames_dir",
    "npy_path",
)
FORMATS = ("frames", "npy")
MODES = ("full", "keyframes", "onset_apex")
SAMPLINGS = ("uniform", "adaptive", "onset_apex")
IMAGE_FORMATS = ("jpg", "png")
MANIFEST = "manifest.csv"
META = "meta.json"
TMP_PREFIX = ".tmp-"


class StoreError(RuntimeError):
    """A clip store problem; the message names the path and what to do."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The folder is not a clip store (no ``manifest.csv``)."""


class StoreConfigError(StoreError):
    """The output folder was made with another configuration."""


class StoreFullError(StoreError):
    """The disk filled up (ENOSPC) while writing a clip."""


class StoreArgumentError(ValueError):
    """A store or frame-selection argument that cannot work; the message names it. Raised
    before anything is written."""


def check_store_arguments(
    formats: str | Sequence[str], mode: str, image_format: str, jpeg_quality: int
) -> tuple[str, ...]:
    """The checks :class:`ClipStore` makes on its arguments, callable before a store exists.

    Returns:
        ``formats`` as a tuple.

    Raises:
        StoreArgumentError: unknown formats, mode or image format, or ``jpeg_quality`` outside
            0..100.
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    if not formats or any(f not in FORMATS for f in formats):
        raise StoreArgumentError(f"formats must be a non-empty subset of {FORMATS}, got {formats}")
    if image_format not in IMAGE_FORMATS:
        raise StoreArgumentError(
            f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}"
        )
    if mode not in MODES:
        raise StoreArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int):
        raise StoreArgumentError(f"jpeg_quality must be an integer, got {jpeg_quality!r}")
    if not 0 <= jpeg_quality <= 100:
        raise StoreArgumentError(f"jpeg_quality must be in 0..100, got {jpeg_quality}")
    return formats


def check_frame_arguments(num_frames: int, sampling: str) -> None:
    """The key-frame arguments of :func:`select_frames`, checked before any clip is drawn.

    Raises:
        StoreArgumentError: ``num_frames`` < 2 or an unknown ``sampling``.
    """
    if sampling not in SAMPLINGS:
        raise StoreArgumentError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise StoreArgumentError(f"num_frames must be an integer >= 2, got {num_frames!r}")


def select_frames(
    mode: str, n_frames: int, apex: int, num_frames: int = 16, sampling: str = "uniform"
) -> np.ndarray:
    """Full-rate frame numbers a clip stores, ``(T,)`` int64, increasing and distinct.

    Args:
        mode: ``"full"`` (every frame ``0..n_frames-1``), ``"onset_apex"`` (``[0, apex]``) or
            ``"keyframes"`` (``num_frames`` frames a recognizer consumes).
        n_frames: frames from onset to offset inclusive.
        apex: apex frame number.
        num_frames: key-frame count T; a clip with at most T frames stores all of them.
        sampling: the key-frame rule of :mod:`mesynth.keyframes` (``"uniform"``,
            ``"adaptive"`` or ``"onset_apex"``); the clip stores the distinct frames that rule
            picks from the full-rate clip (its deterministic, test-time choice), so a recognizer
            sampling the stored clip sees the frames it would have picked from the full-rate one.
    """
    if mode not in MODES:
        raise ValueError(f"unknown store mode {mode!r}; use one of {', '.join(MODES)}")
    if n_frames < 1 or not 0 <= apex < n_frames:
        raise ValueError(f"need n_frames >= 1 and 0 <= apex < n_frames, got {n_frames}, {apex}")
    offset = n_frames - 1
    if mode == "full":
        return np.arange(n_frames, dtype=np.int64)
    if mode == "onset_apex":
        return np.array([0, apex] if apex > 0 else [0], dtype=np.int64)
    check_frame_arguments(num_frames, sampling)
    picked = sample_key_frames(sampling, range(n_frames), 0, apex, offset, num_frames)
    return np.unique(np.asarray(picked.frame_numbers, dtype=np.int64))


def config_hash(config: Mapping[str, object]) -> str:
    """SHA-1 of the canonical JSON of ``config`` (sorted keys)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def shard_from_env() -> tuple[int, int]:
    """``(rank, world_size)`` from ``RANK``/``WORLD_SIZE`` (torchrun); ``(0, 1)`` when unset."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise StoreError(f"RANK/WORLD_SIZE must be integers ({err})") from err
    if world < 1 or not 0 <= rank < world:
        raise StoreError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def _write_file(path: Path, data: bytes) -> None:
    """Write bytes and flush them to disk (the filesystem boundary of the store)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _format_row(row: Mapping[str, object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([row.get(c, "") for c in MANIFEST_COLUMNS])
    return buffer.getvalue()


def _header() -> str:
    return ",".join(MANIFEST_COLUMNS) + "\n"


def package_versions() -> dict[str, str | None]:
    """Versions that affect the bytes of a clip."""
    out: dict[str, str | None] = {"opencv": cv2.__version__, "numpy": np.__version__}
    for dist in ("mesynth", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def read_manifest_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest file; a torn last line (no newline: a write cut short) is ignored."""
    if not path.is_file():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and list(rows[0].keys()) != list(MANIFEST_COLUMNS):
        columns = list(rows[0].keys())
        missing = [c for c in MANIFEST_COLUMNS if c not in columns]
        raise StoreError(
            f"{path}: not a clip-store manifest; unexpected columns {columns} (missing {missing})"
        )
    return rows


def _sort_key(clip_id: str) -> tuple[int, str]:
    return (len(clip_id), clip_id)


class ClipStore:
    """Writes clips into a store folder; see the module docs for the layout and guarantees.

    Args:
        root: store folder (created if missing).
        config: everything that determines the clips' content (hashed into ``meta.json``; a
            folder made with another hash is refused). Batch size, device and sharding must not
            be part of it.
        formats: ``"frames"``, ``"npy"`` or both.
        mode: the store mode recorded in ``meta.json`` and every row (see :func:`select_frames`).
        image_format: ``"jpg"`` or ``"png"`` for the frames format.
        jpeg_quality: quality of stored JPEG frames.
        info: extra, non-hashed facts for ``meta.json`` (scheme, class names, identities).
        rank, world_size: this process's shard; default from the environment.

    Raises:
        StoreArgumentError: bad formats, mode, image format or JPEG quality (nothing is created).
        StoreConfigError: ``root`` holds a store made with another configuration.
    """

    def __init__(
        self,
        root: str | Path,
        config: Mapping[str, object],
        *,
        formats: Sequence[str] = ("npy",),
        mode: str = "keyframes",
        image_format: str = "jpg",
        jpeg_quality: int = 95,
        info: Mapping[str, object] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        formats = check_store_arguments(formats, mode, image_format, jpeg_quality)
        env_rank, env_world = shard_from_env()
        self.rank = env_rank if rank is None else rank
        self.world_size = env_world if world_size is None else world_size
        self.root = Path(root)
        self.formats = formats
        self.mode = mode
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        full_config = {
            **dict(config),
            "store": {"formats": list(formats), "mode": mode, "image_format": image_format}
            | ({"jpeg_quality": jpeg_quality} if image_format == "jpg" else {}),
        }
        self.config_hash = config_hash(full_config)
        self.clips_dir = self.root / "clips"
        self.params_dir = self.root / "params"
        self.manifest_path = self.root / (
            MANIFEST if self.world_size == 1 else f"manifest.rank{self.rank}.csv"
        )
        try:
            self.clips_dir.mkdir(parents=True, exist_ok=True)
            self.params_dir.mkdir(exist_ok=True)
            self._open_meta(full_config, dict(info or {}))
            self._finished = self._recover_manifest()
        except OSError as err:
            raise self._os_error(err, self.root) from err

    # -- opening ---------------------------------------------------------------------------
    def _open_meta(self, config: dict[str, object], info: dict[str, object]) -> None:
        path = self.root / META
        # look for manifests before meta.json: every shard writes meta.json before its manifest,
        # so a manifest seen first means meta.json exists now, unless the folder has none at all
        # (shards opening the store at once must not take each other's manifests for strays)
        has_manifests = any(self.root.glob("manifest*.csv"))
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise StoreConfigError(
                    f"{path} is not valid JSON ({err}); delete {self.root} or choose another "
                    "output folder"
                ) from err
            if old.get("config_hash") != self.config_hash:
                old_cfg = old.get("config", {})
                new_cfg = json.loads(json.dumps(config, default=str))  # as meta.json holds it
                keys = sorted(
                    k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k)
                )
                raise StoreConfigError(
                    f"{self.root} was made with another configuration (config hash "
                    f"{old.get('config_hash')} != {self.config_hash}; differing keys: "
                    f"{', '.join(keys) or '?'}). Choose a new output folder, or delete "
                    f"{self.root} to regenerate it with this configuration."
                )
            return
        if has_manifests:
            raise StoreConfigError(
                f"{self.root} holds manifests but no {META}; it is not a store written by this "
                "version. Choose a new output folder."
            )
        meta = {
            "config_hash": self.config_hash,
            "config": config,
            "format": list(self.formats),
            "mode": self.mode,
            "versions": package_versions(),
            "manifest_columns": list(MANIFEST_COLUMNS),
            **info,
        }
        _atomic_write(path, (json.dumps(meta, indent=2, default=str) + "\n").encode())

    def _recover_manifest(self) -> set[str]:
        """Drop a torn last row, remove this shard's temporaries, and return the finished clip
        ids."""
        path = self.manifest_path
        if path.is_file():
            text = path.read_text()
            if not text.endswith("\n"):
                _atomic_write(path, text[: text.rfind("\n") + 1].encode())
        else:
            _atomic_write(path, _header().encode())
        for folder in (self.clips_dir, self.params_dir):
            for leftover in folder.glob(f"{TMP_PREFIX}*"):
                if not self._owns_temporary(leftover.name):
                    continue  # another shard may be writing it right now
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        return {row["clip_id"] for row in read_manifest_rows(path)}

    def _owns_temporary(self, name: str) -> bool:
        """Whether a temporary (``.tmp-<clip_id>[.<ext>.<pid>]``) is this shard's to remove:
        every one when unsharded, else those of the clips this shard owns."""
        if self.world_size == 1:
            return True
        clip = name[len(TMP_PREFIX) :].split(".", 1)[0]
        return clip.isdigit() and self.owns(int(clip))

    # -- writing ---------------------------------------------------------------------------
    def is_finished(self, clip_id: str) -> bool:
        return clip_id in self._finished

    @property
    def finished(self) -> frozenset[str]:
        return frozenset(self._finished)

    def owns(self, index: int) -> bool:
        """Whether clip ``index`` belongs to this shard (``index % world_size == rank``)."""
        return index % self.world_size == self.rank

    def write(
        self,
        row: Mapping[str, object],
        frames: np.ndarray,
        params: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """Store one finished clip and append its manifest row.

        Args:
            row: manifest values (``clip_id``, ``frame_numbers`` as a sequence of ints, ...);
                ``mode``, ``frames_dir`` and ``npy_path`` are filled in here.
            frames: ``(T, H, W, C)`` uint8 RGB, one per entry of ``row["frame_numbers"]``.
            params: every sampled parameter, stored as ``params/<clip_id>.json``.

        Returns:
            The manifest row as written.

        Raises:
            StoreFullError: the disk is full (the message names the path; finished clips are
                intact and a rerun resumes).
            StoreError: any other failed write.
        """
        frames = np.asarray(frames)
        numbers = [int(n) for n in row["frame_numbers"]]  # type: ignore[union-attr]
        clip_id = str(row["clip_id"])
        if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != len(numbers):
            raise ValueError(
                f"clip {clip_id}: frames must be uint8 (T, H, W, C) with T = "
                f"{len(numbers)} frame numbers, got {frames.dtype} {frames.shape}"
            )
        out = dict(row) | {"mode": self.mode, "frames_dir": "", "npy_path": ""}
        out["frame_numbers"] = ";".join(map(str, numbers))
        current: Path = self.root
        try:
            if "frames" in self.formats:
                current = self.clips_dir / clip_id
                self._write_frames(clip_id, frames, numbers)
                out["frames_dir"] = f"clips/{clip_id}"
            if "npy" in self.formats:
                current = self.clips_dir / f"{clip_id}.npy"
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(frames), allow_pickle=False)
                _atomic_write(current, buffer.getvalue())
                out["npy_path"] = f"clips/{clip_id}.npy"
            if params is not None:
                current = self.params_dir / f"{clip_id}.json"
                text = json.dumps(dict(params), indent=1, sort_keys=True, default=str)
                _atomic_write(current, (text + "\n").encode())
            current = self.manifest_path
            with open(self.manifest_path, "a") as handle:
                handle.write(_format_row(out))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            raise self._os_error(err, current) from err
        self._finished.add(clip_id)
        return out

    def _write_frames(self, clip_id: str, frames: np.ndarray, numbers: list[int]) -> None:
        final = self.clips_dir / clip_id
        tmp = self.clips_dir / f"{TMP_PREFIX}{clip_id}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            ext = f".{self.image_format}"
            flags = (
                [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
                if self.image_format == "jpg"
                else [cv2.IMWRITE_PNG_COMPRESSION, 3]
            )
            for frame, number in zip(frames, numbers):
                image = frame[:, :, ::-1] if frame.shape[2] == 3 else frame
                ok, data = cv2.imencode(ext, np.ascontiguousarray(image), flags)
                if not ok:
                    raise StoreError(f"OpenCV could not encode frame {number} of clip {clip_id}")
                _write_file(tmp / f"img{number}{ext}", data.tobytes())
            if final.exists():  # left by a run killed between the rename and its manifest row
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _os_error(self, err: OSError, path: Path) -> StoreError:
        resume = (
            "Finished clips are intact; rerun the same command to resume."
            if self.manifest_path.parent.is_dir()
            else ""
        )
        if err.errno == errno.ENOSPC:
            return StoreFullError(
                f"disk full while writing {path} ({err.strerror}). Free space on that disk (or "
                f"choose another output folder) and rerun. {resume}".strip()
            )
        return StoreError(f"could not write {path}: {err}. {resume}".strip())

    def finalize(self) -> Path:
        """Rewrite this shard's manifest sorted by clip id (atomically); returns its path."""
        rows = sorted(read_manifest_rows(self.manifest_path), key=lambda r: _sort_key(r["clip_id"]))
        text = _header() + "".join(_format_row(r) for r in rows)
        try:
            _atomic_write(self.manifest_path, text.encode())
        except OSError as err:
            raise self._os_error(err, self.manifest_path) from err
        return self.manifest_path


def merge_shards(root: str | Path, remove: bool = True) -> Path:
    """Merge ``manifest.rank*.csv`` (and any existing ``manifest.csv``) into one ``manifest.csv``.

    Rows are sorted by clip id, duplicates (a clip finished twice) kept once. Returns the path.

    Raises:
        StoreError: no store at ``root`` or nothing to merge.
    """
    root = Path(root)
    shards = sorted(root.glob("manifest.rank*.csv"))
    if not (root / META).is_file():
        raise StoreError(f"{root}: no {META}; not a clip store")
    if not shards and not (root / MANIFEST).is_file():
        raise StoreError(f"{root}: no manifest.rank*.csv shard manifests to merge")
    rows: dict[str, dict[str, str]] = {}
    for path in [root / MANIFEST, *shards]:
        for row in read_manifest_rows(path):
            rows.setdefault(row["clip_id"], row)
    ordered = [rows[k] for k in sorted(rows, key=_sort_key)]
    _atomic_write(root / MANIFEST, (_header() + "".join(_format_row(r) for r in ordered)).encode())
    if remove:
        for path in shards:
            path.unlink()
    return root / MANIFEST


def clip_id_for(index: int) -> str:
    """Clip id of plan index ``index``: zero-padded to 6 digits (``"000042"``)."""
    return f"{index:06d}"


def iter_manifest(root: str | Path) -> Iterable[dict[str, str]]:
    """Rows of ``<root>/manifest.csv``.

    Raises:
        StoreNotFoundError: ``root`` has no manifest.
        StoreError: the manifest's columns are not :data:`MANIFEST_COLUMNS`.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise StoreNotFoundError(
            f"{root} is not a clip store: no {MANIFEST} (run `mesynth generate` to make one)"
        )
    return read_manifest_rows(path)


def load_clip(root: str | Path, row: Mapping[str, str]) -> np.ndarray:
    """Frames of one manifest row, ``(T, H, W, C)`` uint8 RGB (the ``.npy`` when present).

    Raises:
        StoreError: the clip's files are missing or unreadable (the message names them).
    """
    root = Path(root)
    if row.get("npy_path"):
        path = root / row["npy_path"]
        if not path.is_file():
            raise StoreError(f"{path} listed in the manifest is missing")
        return np.load(path, allow_pickle=False)
    folder = root / row["frames_dir"]
    try:
        files, numbers = discover_frames(folder) if folder.is_dir() else ((), ())
    except FrameNumberError as err:
        raise StoreError(str(err)) from err
    by_number = dict(zip(numbers, files))
    frames = []
    for number in parse_frame_numbers(row["frame_numbers"]):
        image = decode_rgb(by_number[number]) if number in by_number else None
        if image is None:
            raise StoreError(f"{folder}/img{number}.* listed in the manifest is missing")
        frames.append(image)
    return np.stack(frames)
