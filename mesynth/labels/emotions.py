"""Emotion label schemes and the mapping from every release's raw spelling.

Schemes:
    ``dfme7``: anger, contempt, disgust, fear, happiness, sadness, surprise (DFME's 7 clear
    labels; "others" is excluded).
    ``casme2_5``: happiness, disgust, repression, surprise, others (the usual CASME II scheme;
    fear and sadness are excluded, too rare there).
    ``megc3``: negative, positive, surprise (MEGC2019 composite). negative = repression, anger,
    contempt, disgust, fear, sadness; positive = happiness; others excluded. For CASME II only
    disgust and repression count as negative (its fear and sadness are excluded).

Raw labels are first normalised to a canonical emotion name (case and spacing ignored,
synonyms such as 'happy', 'sad', 'Other', 'Others' folded), then mapped into the scheme.
A label that maps to ``None`` is *excluded* from that scheme (dropped by loaders, with a reason).
"""

from __future__ import annotations

from collections.abc import Iterable

SCHEMES: dict[str, tuple[str, ...]] = {
    "dfme7": ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"),
    "casme2_5": ("happiness", "disgust", "repression", "surprise", "others"),
    "megc3": ("negative", "positive", "surprise"),
}

#: canonical emotion names every raw spelling is folded into.
CANONICAL_EMOTIONS = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "repression",
    "others",
    "negative",
    "positive",
)

_SYNONYMS = {
    "angry": "anger",
    "contemptuous": "contempt",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "surprised": "surprise",
    "surprising": "surprise",
    "repressed": "repression",
    "tense": "others",
    "other": "others",
    "neg": "negative",
    "ne": "negative",
    "pos": "positive",
    "po": "positive",
    "sur": "surprise",
    "sp": "surprise",
}

_TO_SCHEME: dict[str, dict[str, str | None]] = {
    "dfme7": {e: e for e in SCHEMES["dfme7"]} | {"repression": None, "others": None},
    "casme2_5": {e: e for e in SCHEMES["casme2_5"]}
    | {"fear": None, "sadness": None, "anger": None, "contempt": None},
    "megc3": {
        "repression": "negative",
        "anger": "negative",
        "contempt": "negative",
        "disgust": "negative",
        "fear": "negative",
        "sadness": "negative",
        "negative": "negative",
        "happiness": "positive",
        "positive": "positive",
        "surprise": "surprise",
        "others": None,
    },
}

#: dataset-specific exceptions: (scheme, dataset) -> {canonical emotion: scheme label or None}.
_DATASET_EXCEPTIONS: dict[tuple[str, str], dict[str, str | None]] = {
    ("megc3", "casme2"): {"fear": None, "sadness": None},
}


class UnknownLabelError(ValueError):
    """A label that is not in the scheme (or not a known emotion); the message lists the known."""


def known_schemes() -> tuple[str, ...]:
    return tuple(SCHEMES)


def scheme_labels(scheme: str) -> tuple[str, ...]:
    """The class names of ``scheme`` in class-index order."""
    if scheme not in SCHEMES:
        raise UnknownLabelError(f"unknown scheme {scheme!r}; known schemes: {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


def normalize_emotion(raw: object) -> str:
    """Fold a raw spelling ('Happy', ' Others ', 'sad', 'Other') into a canonical emotion name.

    Raises:
        UnknownLabelError: the spelling is not a known emotion (the message lists them).
    """
    text = " ".join(str(raw).strip().lower().replace("_", " ").split())
    name = _SYNONYMS.get(text, text)
    if name not in CANONICAL_EMOTIONS:
        raise UnknownLabelError(
            f"unknown emotion {raw!r}; known emotions: {', '.join(CANONICAL_EMOTIONS)} "
            f"(and spellings {', '.join(sorted(_SYNONYMS))})"
        )
    return name


def to_scheme(raw: object, scheme: str, dataset: str | None = None) -> str | None:
    """Map a raw label into ``scheme``; ``None`` means the clip is excluded from that scheme.

    Args:
        raw: the release's spelling ('Happiness', 'Other', 'happy', 'negative'...).
        scheme: ``dfme7``, ``casme2_5`` or ``megc3``.
        dataset: loader name, for dataset-specific rules (CASME II under ``megc3``).
    """
    scheme_labels(scheme)
    name = normalize_emotion(raw)
    if dataset is not None and name in _DATASET_EXCEPTIONS.get((scheme, dataset), {}):
        return _DATASET_EXCEPTIONS[(scheme, dataset)][name]
    mapping = _TO_SCHEME[scheme]
    if name not in mapping:
        return None
    return mapping[name]


def stored_label_key(scheme: str) -> str:
    """The ``extra`` key under which a record carries its ground-truth ``scheme`` label."""
    return f"label:{scheme}"


def record_label(record: object, scheme: str) -> str | None:
    """The ``scheme`` label of a clip record, the one rule every consumer uses.

    A label the loader stored in ``record.extra["label:<scheme>"]`` (e.g. the official
    MEGC2019 ground-truth list) wins; otherwise the record's raw ``emotion`` is mapped with
    :func:`to_scheme`, with the record's ``dataset`` for dataset-specific rules. ``None``
    means the record is excluded from ``scheme``.

    Args:
        record: any object with ``emotion`` and optionally ``dataset`` and ``extra`` (a
            :class:`recognizer.data.samples.Sample`, a mesynth store record...).
        scheme: ``dfme7``, ``casme2_5`` or ``megc3``.

    Raises:
        UnknownLabelError: unknown scheme, or a stored label that is not one of its classes.
    """
    extra = getattr(record, "extra", None) or {}
    stored = extra.get(stored_label_key(scheme))
    if stored:
        return validate_label(str(stored), scheme)
    return to_scheme(getattr(record, "emotion", None), scheme, getattr(record, "dataset", None))


def validate_label(label: str, scheme: str) -> str:
    """Return ``label`` if it is a class of ``scheme``; else raise listing the known labels."""
    labels = scheme_labels(scheme)
    if label not in labels:
        raise UnknownLabelError(
            f"{label!r} is not a {scheme} label; known labels: {', '.join(labels)}"
        )
    return label


def label_indices(labels: Iterable[str], scheme: str) -> list[int]:
    """Class indices of scheme labels (each validated)."""
    order = {name: i for i, name in enumerate(scheme_labels(scheme))}
    return [order[validate_label(label, scheme)] for label in labels]
